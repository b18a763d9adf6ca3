"""Page routes: the Control Panel (/), the alarm list (/alarms) and trends (/trends).

Each page draws the shared frame, its body, and hands its sinks to the page's LiveView; nothing is
polled. `?kiosk=1` (or `ui: {kiosk: true}` in the config) gives the touchscreen layout.
"""

from __future__ import annotations

from nicegui import context, ui

from ui import layout, state
from ui.alarms import AlarmList
from ui.controls import Commander
from ui.panel import ControlPanel
from ui.trends import TrendView


def register() -> None:
    @ui.page("/", title="Control Panel · BevForge OS")
    def control_panel(kiosk: str | None = None) -> None:
        runtime = state.current()
        live = layout.frame(runtime, "/", layout.kiosk_mode(runtime, kiosk))
        panel = ControlPanel(runtime, Commander(runtime, context.client))
        live.watch(panel.endpoint_ids)
        live.add(panel)

    @ui.page("/alarms", title="Alarms · BevForge OS")
    def alarms_page(kiosk: str | None = None) -> None:
        runtime = state.current()
        live = layout.frame(runtime, "/alarms", layout.kiosk_mode(runtime, kiosk))
        live.add(AlarmList(runtime, context.client))

    @ui.page("/trends", title="Trends · BevForge OS")
    async def trends_page(kiosk: str | None = None, endpoint: int | None = None) -> None:
        runtime = state.current()
        live = layout.frame(runtime, "/trends", layout.kiosk_mode(runtime, kiosk))
        view = TrendView(runtime, live, endpoint)
        live.add(view)
        await view.load()
