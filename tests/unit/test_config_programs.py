"""The `programs:` section: units, templates and their steps; every mistake named with its line and field."""

from __future__ import annotations

import pytest

from bevforge.config import ConfigError, parse_config
from tests.unit.test_config_controllers import GOOD

PROGRAMS = GOOD + """
programs:
  units:
    - {id: brewhouse, name: Brewhouse, controllers: [mlt_rims]}
    - {id: fv1, name: FV1, kind: fermenter, controllers: [fv1]}
  templates:
    - id: mash
      name: Mash
      unit: brewhouse
      steps:
        - {type: heat, controller: mlt_rims, target_c: 72}
        - {type: prompt, message: Add the grain, overdue_min: 10}
        - {type: hold, controller: mlt_rims, target_c: 66, minutes: 60, grace_s: 30}
        - {type: ramp, controller: mlt_rims, to_c: 76, rate_c_per_min: 1}
        - {type: transfer, pump: 40, valves: [51], until: {endpoint: 41, op: "==", value: false}}
        - {type: wait, minutes: 5}
        - {type: set, endpoint: 51, value: false}
        - {type: chill, endpoint: 20, below_c: 25, controller: mlt_rims}
    - id: ferment
      name: Ale
      unit: fv1
      steps:
        - {type: hold, controller: fv1, target_c: 18, days: 5}
        - {type: ramp, controller: fv1, to_c: 21, rate_c_per_day: 1.5}
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "plant.yaml")
    return [(p.line, p.field, p.message) for p in info.value.problems]


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_a_complete_programs_section_is_valid() -> None:
    config = parse_config(PROGRAMS, "plant.yaml")
    units = {u.id: u for u in config.programs.units}
    assert units["brewhouse"].resume_rule == "paused" and units["fv1"].resume_rule == "schedule"
    mash = config.programs.templates[0]
    assert [s.type for s in mash.steps] == ["heat", "prompt", "hold", "ramp", "transfer", "wait", "set", "chill"]
    assert mash.steps[2].duration_s == 3600 and config.programs.templates[1].steps[0].duration_s == 5 * 86400


@pytest.mark.parametrize(("old", "new", "field", "message"), [
    ("{type: heat, controller: mlt_rims, target_c: 72}", "{type: heat, controller: mlt_rims}",
     "programs.templates[0].steps[0]", "a heat step needs target_c"),
    ("{type: heat, controller: mlt_rims, target_c: 72}", "{type: heat, controller: mlt_rims, target_c: 72, minutes: 3}",
     "programs.templates[0].steps[0]", "a heat step takes no minutes"),
    ("{type: heat, controller: mlt_rims, target_c: 72}", "{type: heat, controller: nowhere, target_c: 72}",
     "programs.templates[0].steps[0].controller", "unknown controller 'nowhere'"),
    ("{type: heat, controller: mlt_rims, target_c: 72}", "{type: heat, controller: fv1, target_c: 12}",
     "programs.templates[0].steps[0].controller", "controller 'fv1' does not belong to unit 'brewhouse'"),
    ("{type: heat, controller: mlt_rims, target_c: 72}", "{type: heat, controller: mlt_rims, target_c: 95}",
     "programs.templates[0].steps[0].target_c", "95 lies outside the setpoint range 20…80 of controller 'mlt_rims'"),
    ("{type: heat, controller: mlt_rims, target_c: 72}", "{type: heet, controller: mlt_rims, target_c: 72}",
     "programs.templates[0].steps[0].type", None),
    ("to_c: 76, rate_c_per_min: 1}", "to_c: 76, rate_c_per_min: 1, minutes: 5}",
     "programs.templates[0].steps[3]",
     "a ramp step takes exactly one of rate_c_per_min, rate_c_per_day, minutes, days"),
    ("{type: transfer, pump: 40,", "{type: transfer, pump: 20,",
     "programs.templates[0].steps[4].pump", "endpoint 20 is not writable"),
    ("valves: [51]", "valves: [42]", "programs.templates[0].steps[4].valves[0]",
     "endpoint 42 is not an on/off (bool) endpoint"),
    ("until: {endpoint: 41,", "until: {endpoint: 99,", "programs.templates[0].steps[4].until.endpoint",
     "unknown endpoint id 99"),
    ("{type: wait, minutes: 5}", "{type: wait}", "programs.templates[0].steps[5]",
     "a wait step takes minutes or until (one of them)"),
    ("{type: set, endpoint: 51, value: false}", "{type: set, endpoint: 50, value: 3}",
     "programs.templates[0].steps[6].endpoint", "endpoint 50 is not writable"),
    ("{type: chill, endpoint: 20,", "{type: chill, endpoint: 41,", "programs.templates[0].steps[7].endpoint",
     "endpoint 41 is not numeric"),
    ("      unit: brewhouse", "      unit: cellar", "programs.templates[0].unit", "unknown unit 'cellar'"),
    ("kind: fermenter, controllers: [fv1]}", "kind: fermenter, controllers: [mlt_rims]}",
     "programs.units[1].controllers[0]",
     "controller 'mlt_rims' already belongs to unit 'brewhouse'"),
])
def test_a_wrong_step_or_reference_is_named_with_its_line(old: str, new: str, field: str, message: str | None) -> None:
    assert old in PROGRAMS
    text = PROGRAMS.replace(old, new, 1)
    found = problems(text)
    line = line_of(text, new.splitlines()[0])
    assert any(f == field and ln == line and (message is None or m == message) for ln, f, m in found), found


def test_a_boil_addition_must_fall_within_the_boil() -> None:
    text = PROGRAMS.replace("        - {type: wait, minutes: 5}\n", "        - {type: boil, controller: mlt_rims, "
                            "minutes: 60, additions: [{at_min: 75, message: Hops}]}\n", 1)
    assert ("programs.templates[0].steps[5]", "a boil addition's at_min must lie within the boil's minutes") in \
        [(f, m) for _, f, m in problems(text)]
