"""The frame every page shares: theme, header with navigation and alarm banner, the critical-alarm
dialog, the connection indicator, and the page's LiveView."""

from __future__ import annotations

from nicegui import context, ui

from bevforge.runtime import Runtime
from ui import connection, theme
from ui.alarms import AlarmBanner, CriticalAlarmDialog
from ui.controls import tag
from ui.live import LiveView

PAGES = (("/", "CONTROL PANEL"), ("/alarms", "ALARMS"), ("/trends", "TRENDS"))


def kiosk_mode(runtime: Runtime, kiosk: str | None) -> bool:
    """`?kiosk=1` forces kiosk mode on, `?kiosk=0` off; otherwise the config's `ui.kiosk` decides."""
    if kiosk is not None:
        return kiosk.lower() in ("1", "true", "yes", "on")
    return runtime.config.ui.kiosk


def frame(runtime: Runtime, current: str, kiosk: bool) -> LiveView:
    """Draw the shared frame and return the page's LiveView (alarm banner and dialog already added)."""
    client = context.client
    theme.apply(kiosk)
    connection.add_indicator()
    suffix = "?kiosk=1" if kiosk else ""
    live = LiveView(runtime, client, endpoint_ids=set())
    with ui.header().classes("bf-header items-center justify-between gap-2 px-3 py-1"):
        with ui.row().classes("items-center gap-2"):
            ui.label(runtime.config.site.name).classes("text-lg font-bold")
            with ui.row().classes("bf-nav gap-1"):
                for path, label in PAGES:
                    button = ui.button(label, on_click=lambda p=path: ui.navigate.to(p + suffix)).props(
                        "flat" if path != current else "outline").classes("text-white")
                    tag(button, f"nav-{path.strip('/') or 'panel'}")
        with ui.row().classes("items-center gap-2"):
            live.add(AlarmBanner(runtime))
            if kiosk:
                full = ui.fullscreen()
                ui.button("FULL SCREEN", on_click=full.toggle).props("outline").classes("text-white bf-btn")
    live.add(CriticalAlarmDialog(runtime, client))
    return live
