"""The `layout:` section (the process mimic's drawing) is checked like the rest: file:line and field."""

from __future__ import annotations

import pytest

from bevforge.config import ConfigError, load_config, parse_config
from tests.support.server import PLANT_FIXTURE

PLANT = """\
nodes:
  - {id: HLT, name: Hot liquor tank, volume_l: 80}
  - {id: MLT, name: Mash tun}
devices:
  - {id: io, driver: simulator}
endpoints:
  - {id: 10, name: hlt_temperature, node: HLT, device: io, kind: temperature, unit: "°C"}
  - {id: 14, name: hlt_volume, node: HLT, device: io, kind: volume, unit: L}
  - {id: 13, name: hlt_level_high, node: HLT, device: io, kind: level, data_type: bool}
  - {id: 22, name: hlt_out_valve, node: MLT, device: io, kind: valve, data_type: bool, writable: true,
     safe_value: false}
  - {id: 23, name: pump_1, node: MLT, device: io, kind: pump, data_type: bool, writable: true, safe_value: false}
  - {id: 20, name: mlt_temperature, node: MLT, device: io, kind: temperature, unit: "°C"}
"""

LAYOUT = """\
layout:
  width: 1000
  height: 500
  symbols:
    - {id: hlt, kind: vessel, node: HLT, x: 100, y: 150, temperature: 10, volume: 14, level: 13}
    - {id: v1, kind: valve, x: 250, y: 400, endpoint: 22}
    - {id: pump_1, kind: pump, x: 350, y: 400, endpoint: 23}
    - {id: mlt, kind: vessel, x: 500, y: 150, temperature: 20}
  pipes:
    - {id: hlt_to_mlt, from: hlt, to: mlt, points: [[100, 400], [500, 400]], valves: [v1], pump: pump_1}
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "plant.yaml")
    return [(p.line, p.field, p.message) for p in info.value.problems]


def test_a_layout_is_read_with_its_symbols_and_pipes() -> None:
    config = parse_config(PLANT + LAYOUT)
    assert config.layout is not None
    assert [s.id for s in config.layout.symbols] == ["hlt", "v1", "pump_1", "mlt"]
    pipe = config.layout.pipes[0]
    assert (pipe.source, pipe.target, pipe.valves, pipe.pump) == ("hlt", "mlt", ["v1"], "pump_1")
    assert pipe.points == [(100, 400), (500, 400)]
    assert config.layout.symbol("hlt").endpoint_ids == [10, 14, 13]
    assert config.layout.symbol("v1").size == (44.0, 28.0)  # the kind's default size


def test_no_layout_is_fine_but_a_mimic_kiosk_start_needs_one() -> None:
    assert parse_config(PLANT).layout is None
    assert problems(PLANT + "ui: {kiosk_start: mimic}\n") == [
        (len(PLANT.splitlines()) + 1, "ui.kiosk_start", "the mimic needs a layout: section to draw")]
    assert parse_config(PLANT + LAYOUT + "ui: {kiosk_start: mimic}\n").ui.kiosk_start == "mimic"


def test_unknown_endpoints_symbols_and_duplicates_are_named_at_their_line() -> None:
    text = PLANT + LAYOUT.replace("endpoint: 23}", "endpoint: 99}").replace(
        "{id: mlt, kind: vessel", "{id: hlt, kind: vessel").replace("to: mlt", "to: mash_tun")
    lines = text.splitlines()
    found = problems(text)
    assert (lines.index("    - {id: pump_1, kind: pump, x: 350, y: 400, endpoint: 99}") + 1,
            "layout.symbols[2].endpoint", "unknown endpoint id 99") in found
    assert (lines.index("    - {id: hlt, kind: vessel, x: 500, y: 150, temperature: 20}") + 1,
            "layout.symbols[3].id", "duplicate id 'hlt'") in found
    pipe_line = next(n for n, line in enumerate(lines, 1) if "id: hlt_to_mlt" in line)
    assert (pipe_line, "layout.pipes[0].to", "unknown symbol 'mash_tun'") in found


def test_pipes_name_real_valves_and_pumps_that_make_them_flow() -> None:
    text = PLANT + LAYOUT.replace("valves: [v1], pump: pump_1", "valves: [pump_1, v9], pump: v1") + \
        "    - {id: hlt_to_mlt, from: hlt, to: hlt}\n"
    fields = {(field, message) for _line, field, message in problems(text)}
    assert fields >= {
        ("layout.pipes[0].valves[0]", "symbol 'pump_1' is a pump, not a valve"),
        ("layout.pipes[0].valves[1]", "unknown symbol 'v9'"),
        ("layout.pipes[0].pump", "symbol 'v1' is a valve, not a pump"),
        ("layout.pipes[1].id", "duplicate id 'hlt_to_mlt'"),
        ("layout.pipes[1].to", "a pipe joins two different symbols"),
        ("layout.pipes[1].valves", "name the valves and/or the pump that make this pipe carry flow"),
    }


def test_each_kind_shows_only_its_own_points_of_the_right_type() -> None:
    text = PLANT + LAYOUT.replace("{id: v1, kind: valve, x: 250, y: 400, endpoint: 22}",
                                  "{id: v1, kind: valve, x: 250, y: 400, endpoint: 10, temperature: 10}").replace(
        "volume: 14, level: 13}", "volume: 13, level: 14, controller: rims}").replace(
        "{id: pump_1, kind: pump, x: 350, y: 400, endpoint: 23}", "{id: pump_1, kind: pump, x: 350, y: 400}")
    fields = {(field, message) for _line, field, message in problems(text)}
    assert fields >= {
        ("layout.symbols[1].endpoint", "endpoint 10 is not a bool (on/off, open/closed) point"),
        ("layout.symbols[1].temperature", "a valve symbol does not show temperature"),
        ("layout.symbols[0].volume", "endpoint 13 is not numeric"),
        ("layout.symbols[0].level", "endpoint 14 is not a bool (on/off, open/closed) point"),
        ("layout.symbols[0].controller", "unknown controller 'rims'"),
        ("layout.symbols[2].endpoint", "a pump symbol needs endpoint"),
    }


def test_points_off_the_canvas_and_unknown_keys_are_refused() -> None:
    text = PLANT + LAYOUT.replace("x: 500, y: 150", "x: 1500, y: 150").replace(
        "[[100, 400], [500, 400]]", "[[100, 400], [500, 900]]").replace("node: HLT,", "node: HLX, colour: red,")
    fields = {(field, message) for _line, field, message in problems(text)}
    assert ("layout.symbols[0].colour", "unknown key") in fields  # the schema's own check comes first
    text = PLANT + LAYOUT.replace("x: 500, y: 150", "x: 1500, y: 150").replace(
        "[[100, 400], [500, 400]]", "[[100, 400], [500, 900]]").replace("node: HLT,", "node: HLX,")
    fields = {(field, message) for _line, field, message in problems(text)}
    assert fields >= {
        ("layout.symbols[3].x", "outside the canvas (1000 × 500)"),
        ("layout.pipes[0].points[1]", "outside the canvas (1000 × 500)"),
        ("layout.symbols[0].node", "unknown node 'HLX'"),
    }


def test_the_fixture_brewhouse_has_a_layout_of_its_own_points() -> None:
    config = load_config(PLANT_FIXTURE)
    assert config.layout is not None
    assert {s.id for s in config.layout.symbols} >= {"hlt", "mlt", "bk", "v1", "pump_1", "fv1", "glycol"}


def test_a_changed_layout_is_applied_by_a_live_reload() -> None:
    """An edit of only the drawing is a live change (the screens redraw), not "unchanged"."""
    from bevforge.reload import compare

    old = parse_config(PLANT + LAYOUT)
    new = parse_config(PLANT + LAYOUT.replace("x: 250, y: 400", "x: 260, y: 400"))
    diff = compare(old, new)
    assert diff.sections == {"layout": {"changed": ["layout.symbols"]}}
    assert not diff.needs_restart
    assert compare(parse_config(PLANT), old).sections == {"layout": {"changed": ["layout"]}}
