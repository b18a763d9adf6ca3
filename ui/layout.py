"""The frame every page shares: theme, header with navigation, the signed-in user and SIGN OUT, the
alarm banner, the flood banner, the critical-alarm dialog, the program-prompt dialog (ui/programs.py), the
kiosk's alarm tone, the connection indicator, and the page's LiveView."""

from __future__ import annotations

from nicegui import context, ui

from bevforge.domain import Actor
from bevforge.runtime import Runtime
from ui import connection, restart_watch, session, theme
from ui.alarms import AlarmBanner, CriticalAlarmDialog, FloodBanner
from ui.annunciator import Annunciator
from ui.controls import tag
from ui.feedback import MessageLine
from ui.live import LiveView
from ui.programs import PromptDialog

PAGES = (("/", "CONTROL PANEL", "viewer"), ("/mimic", "PLANT", "viewer"), ("/alarms", "ALARMS", "viewer"),
         ("/trends", "TRENDS", "viewer"), ("/programs", "PROGRAMS", "viewer"), ("/recipes", "RECIPES", "viewer"),
         ("/batches", "BATCHES", "viewer"),
         ("/audit", "AUDIT", "technician"), ("/notifications", "NOTIFY", "technician"))
# the brew-day pages: the header shows PROGRAMS (outlined on any of them), and the three pages show
# PROGRAMS · RECIPES · BATCHES as tabs in their first row (`brew_day_tabs`), so the header stays one row,
# clear of the alarm counts, on a 1024 px kiosk; none of them without program units
BREW_DAY = ("/programs", "/recipes", "/batches")


def kiosk_mode(runtime: Runtime, kiosk: str | None) -> bool:
    """`?kiosk=1` forces kiosk mode on, `?kiosk=0` off; otherwise the config's `ui.kiosk` decides."""
    if kiosk is not None:
        return kiosk.lower() in ("1", "true", "yes", "on")
    return runtime.config.ui.kiosk


def starts_on_mimic(runtime: Runtime, kiosk: str | None) -> bool:
    """A kiosk opened at `/` shows the mimic when the config says so (`ui.kiosk_start: mimic`) and has a layout."""
    return (kiosk_mode(runtime, kiosk) and runtime.config.ui.kiosk_start == "mimic"
            and runtime.config.layout is not None)


def _target(runtime: Runtime, path: str, kiosk: bool) -> str:
    """Where a header button goes: the page, in kiosk mode if this screen is; the tiles stay reachable
    on a kiosk that starts on the mimic."""
    if path == "/" and kiosk and starts_on_mimic(runtime, "1"):
        return "/?view=tiles&kiosk=1"
    return path + ("?kiosk=1" if kiosk else "")


def frame(runtime: Runtime, current: str, kiosk: bool, actor: Actor) -> LiveView:
    """Draw the shared frame and return the page's LiveView (alarm banner and dialog already added)."""
    client = context.client
    theme.apply(kiosk)
    connection.add_indicator()
    restart_watch.add_watch()
    suffix = "?kiosk=1" if kiosk else ""
    live = LiveView(runtime, client, endpoint_ids=set())
    live.redraw_path = _target(runtime, current, kiosk)  # a live config reload redraws the page (ui/live.py)
    with ui.header().classes("bf-header items-center justify-between gap-2 px-3 py-1 flex-wrap"):
        with ui.row().classes("items-center gap-2"):
            ui.label(runtime.config.site.name).classes("bf-site-name text-lg font-bold")
            with ui.row().classes("bf-nav gap-1"):
                for path, label, role in PAGES:
                    if not session.may(actor, role) or (path == "/mimic" and runtime.config.layout is None) \
                            or (path in BREW_DAY and not runtime.config.programs.units) or path in BREW_DAY[1:] \
                            or (path == "/notifications" and runtime.config.notifications is None):
                        continue
                    target = _target(runtime, path, kiosk)
                    here = path == current or (path == BREW_DAY[0] and current in BREW_DAY)
                    button = ui.button(label, on_click=lambda t=target: ui.navigate.to(t)).props(
                        "outline" if here else "flat").classes("text-white")
                    tag(button, f"nav-{path.strip('/') or 'panel'}")
        annunciator = None
        with ui.row().classes("items-center gap-2"):
            if kiosk:
                annunciator = Annunciator(runtime, client, actor)
                live.add(annunciator)
            live.add(MessageLine(client, actor))
            live.add(AlarmBanner(runtime, actor, suffix))
            session.sign_out_button(actor)
            if kiosk:
                full = ui.fullscreen()
                ui.button("FULL SCREEN", on_click=full.toggle).props("outline").classes("text-white bf-btn")
        live.add(FloodBanner(runtime, actor, suffix))
    live.add(CriticalAlarmDialog(runtime, client, actor, annunciator))
    live.add(PromptDialog(runtime, client, actor, annunciator))
    return live


def brew_day_tabs(runtime: Runtime, current: str, kiosk: bool) -> None:
    """PROGRAMS · RECIPES · BATCHES at the start of the brew-day pages' first row (the current one outlined):
    where an operator goes from running a program to importing a recipe or reading a batch."""
    with ui.row().classes("bf-brew-tabs gap-1 items-center"):
        for path in BREW_DAY:
            label = next(label for p, label, _role in PAGES if p == path)
            target = _target(runtime, path, kiosk)
            button = ui.button(label, on_click=lambda t=target: ui.navigate.to(t)).props(
                "outline" if path == current else "flat").classes("bf-btn")
            tag(button, f"tab-{path.strip('/')}" if path == BREW_DAY[0] else f"nav-{path.strip('/')}")
