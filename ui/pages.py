"""Page routes. The first page lists every tile with its live values."""

from __future__ import annotations

from nicegui import ui

from bevforge.domain import Quality
from ui import state


def format_value(value: object, unit: str, kind: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        words = {"pump": ("RUNNING", "STOPPED"), "valve": ("OPEN", "CLOSED"), "level": ("HIGH", "LOW")}
        on, off = words.get(kind, ("ON", "OFF"))
        return on if value else off
    if isinstance(value, float):
        return f"{value:.1f} {unit}".strip()
    return f"{value} {unit}".strip()


def register() -> None:
    @ui.page("/")
    def control_panel() -> None:
        runtime = state.current()
        ui.label(runtime.config.site.name).classes("text-2xl font-bold")
        labels: dict[int, tuple[ui.label, ui.label]] = {}
        with ui.row().classes("flex-wrap gap-4"):
            for tile in runtime.config.tiles:
                with ui.card().classes("min-w-64"):
                    ui.label(tile.title).classes("text-lg font-semibold")
                    for eid in tile.endpoints:
                        endpoint = runtime.plant.endpoints[eid]
                        with ui.row().classes("justify-between w-full"):
                            ui.label(endpoint.display_name)
                            value = ui.label("—").props(f"data-endpoint={eid}")
                            quality = ui.label("")
                        labels[eid] = (value, quality)

        def refresh() -> None:
            for eid, (value_label, quality_label) in labels.items():
                st = runtime.plant.states[eid]
                endpoint = runtime.plant.endpoints[eid]
                text = format_value(st.value, endpoint.unit, endpoint.kind.value)
                if value_label.text != text:
                    value_label.text = text
                badge = "" if st.quality is Quality.GOOD else ("STALE" if st.quality is Quality.UNCERTAIN else "BAD")
                if quality_label.text != badge:
                    quality_label.text = badge

        refresh()
        ui.timer(0.5, refresh)
