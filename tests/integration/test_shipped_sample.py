"""The shipped config.yaml — the technician's sample — is itself a working brewhouse.

This is the only test module that reads config.yaml (tests/unit/test_fixture_plant.py checks that);
every other test builds its plant from tests/fixtures/plant.yaml. So a technician may change the
sample freely, and this module alone says whether the change still checks and still starts.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from bevforge.config import ConfigError, load_config, parse_config
from bevforge.domain import Quality
from bevforge.recipes import read
from bevforge.recipes.generate import from_json, program, to_json
from drivers import check
from drivers.sim.ports import use_simulator_ports
from tests.support.server import PLANT_FIXTURE, ROOT, LiveServer, build_runtime, free_port, wait_for

SAMPLE = ROOT / "config.yaml"


def test_check_config_passes_on_the_shipped_sample() -> None:
    """`python main.py --check-config config.yaml`, exactly as the sample's first lines tell a technician."""
    done = subprocess.run([sys.executable, "main.py", "--check-config", "config.yaml"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "config.yaml: OK" in done.stdout


def test_the_sample_and_the_fixture_are_loaded_separately() -> None:
    """Both files are valid on their own; they are two files, so editing one never edits the other."""
    sample, fixture = load_config(SAMPLE), load_config(PLANT_FIXTURE)
    assert SAMPLE.resolve() != PLANT_FIXTURE.resolve()
    assert sample.nodes and sample.devices and sample.endpoints
    assert fixture.nodes and fixture.devices and fixture.endpoints


async def test_the_simulated_brewhouse_starts_with_the_shipped_sample(tmp_path: Path) -> None:
    """The sample as shipped (only the simulator moved to a free port and a private pty) starts
    its simulated brewhouse, and every device it declares comes online over its real driver."""
    doc = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    assert doc["simulator"]["enabled"] is True
    use_simulator_ports(doc, free_port(), str(Path(tempfile.mkdtemp(prefix="bevforge-sample-")) / "probe"))
    config = parse_config(yaml.safe_dump(doc, allow_unicode=True), str(SAMPLE))
    live = LiveServer(build_runtime(config, tmp_path / "bevforge.db"), free_port())
    await live.start()
    try:
        online = live.runtime.plant.device_online
        await wait_for(lambda: len(online) == len(config.devices) and all(online.values()), timeout=20)
        endpoints = (await live.http.get("/api/os/endpoints")).json()
        assert {e["endpointId"] for e in endpoints} == {e.id for e in config.endpoints}
    finally:
        await live.stop()


def test_check_config_rejects_a_broken_controller_with_file_line_and_field(tmp_path: Path) -> None:
    """The sample's controllers are checked like every other section: a heater loop pointed at a
    read-only endpoint is refused, naming the file, the line and the field."""
    sample = SAMPLE.read_text(encoding="utf-8")
    assert load_config(SAMPLE).controllers, "the sample ships its controllers"
    broken = tmp_path / "broken.yaml"
    broken.write_text(sample.replace("    output: 40                      # bool SSR", "    output: 14  # bool SSR", 1),
                      encoding="utf-8")
    done = subprocess.run([sys.executable, "main.py", "--check-config", str(broken)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    line = next(i for i, text in enumerate(broken.read_text(encoding="utf-8").splitlines(), 1)
                if text.startswith("    output: 14"))
    assert f"{broken}:{line}: controllers[0].output: endpoint 14 is not writable" in done.stdout + done.stderr


async def test_a_pump_whose_source_vessel_runs_empty_is_stopped_and_alarmed(tmp_path: Path) -> None:
    """Dry-run protection in the sample: Pump 2 empties the mash tun into the kettle; below 2 L the
    continuous interlock trips it (a command to its safe value) and raises the high-priority alarm
    the sample words for it; starting it again on an empty tun is refused with the reason."""
    doc = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    use_simulator_ports(doc, free_port(), str(Path(tempfile.mkdtemp(prefix="bevforge-sample-")) / "probe"))
    config = parse_config(yaml.safe_dump(doc, allow_unicode=True), str(SAMPLE))
    live = LiveServer(build_runtime(config, tmp_path / "bevforge.db"), free_port())
    await live.start()
    try:
        runtime = live.runtime
        await wait_for(lambda: all(runtime.plant.device_online.values()) and runtime.plant.states[21].value
                       is not None, timeout=20)
        live.sim.model.vessels["mlt"].volume_l = 4.0
        await wait_for(lambda: runtime.plant.states[21].value is not None  # the tun starts empty: wait for the 4 L
                       and 3.5 < runtime.plant.states[21].value < 4.5, timeout=10)
        for endpoint in (34, 35):  # V2 open, then Pump 2 on (its interlocks: V2 open, the tun not empty)
            for _ in range(20):  # a loaded machine may leave an interlock input stale a moment: never permits
                await wait_for(lambda: all(runtime.plant.states[e].quality is Quality.GOOD for e in (21, 34)),
                               timeout=10)
                command = (await live.http.post("/api/os/command", json={"endpointId": endpoint, "value": True})).json()
                if command["status"] != "blocked":
                    break
                assert not any("dry-run" in r["reason"] for r in command["reasons"]), command  # 4 L is not empty
            assert command["status"] in ("queued", "sent", "acked", "succeeded"), command
            await wait_for(lambda e=endpoint: runtime.plant.states[e].value is True, timeout=10)
        await wait_for(lambda: runtime.plant.states[35].value is False, timeout=60)  # tripped at ≤ 2 L
        alarms = (await live.http.get("/api/os/alarms")).json()
        trip = [a for a in alarms if "dry-run" in a["message"]]
        assert trip and trip[0]["severity"] == "high" and trip[0]["message"].startswith("Pump 2 stopped"), alarms
        stopped = [c for c in (await live.http.get("/api/os/commands?endpointId=35")).json() if c["origin"] ==
                   "interlock"]
        assert stopped and stopped[0]["requestedValue"] is False
        again = (await live.http.post("/api/os/command", json={"endpointId": 35, "value": True})).json()
        assert again["status"] == "blocked" and "dry-run" in again["reasons"][0]["reason"]
    finally:
        await live.stop()

# -- The example recipes on the shipped brewhouse (issue 15) ------------------------------------------
#
# examples/recipes/ ships with the sample: each example imports cleanly for the sample's brewhouse and
# fermenter units. The recipe tests themselves (tests/unit/test_recipes.py) run on the fixture plant.

RECIPES = sorted((ROOT / "examples" / "recipes").iterdir())
RECIPE_FORMATS = {".xml": "beerxml", ".json": "beerjson"}


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_each_example_recipe_makes_a_program_for_the_shipped_units(path: Path) -> None:
    """The brew day on the sample's brewhouse: the mash on the RIMS loop, the run-off the sample's
    template shows (Pump 2 through V2), the boil and chill on the kettle element reading the kettle
    probe; the profile on FV1's loop. Each program passes the checks a config.yaml template passes."""
    sample = load_config(SAMPLE)
    assert [(u.id, u.kind) for u in sample.programs.units] == [("brewhouse", "brewhouse"), ("fv1", "fermenter")]
    recipe = read(RECIPE_FORMATS[path.suffix], path.read_text(encoding="utf-8"))

    brew_day = to_json(program(recipe, sample, "brewhouse"))
    steps = brew_day["steps"]
    assert [s["type"] for s in steps][:2] == ["heat", "prompt"]  # strike water, then mash in
    assert [s["type"] for s in steps][-3:] == ["transfer", "boil", "chill"]
    for s in steps:
        if s["type"] in ("heat", "hold"):
            assert s["controller"] == "mlt_rims", s
        elif s["type"] == "transfer":
            assert (s["pump"], s["valves"]) == (35, [34]), s
        elif s["type"] == "boil":
            assert s["controller"] == "bk_element", s
        elif s["type"] == "chill":
            assert (s["endpoint"], s["controller"]) == (30, "bk_element"), s
    assert to_json(from_json(brew_day, sample, "brewhouse")) == brew_day

    profile = to_json(program(recipe, sample, "fv1"))
    assert profile["steps"] and all(s["controller"] == "fv1_temperature" for s in profile["steps"])
    assert to_json(from_json(profile, sample, "fv1")) == profile


# -- Docs that cannot lie (issue 16.10) ----------------------------------------------------------------
#
# Every YAML example in docs/ and the README is a config the
# panel accepts.
#
# Each ```yaml block is read as the technician would use it: a whole config (it has `nodes`) is
# checked as it stands; a block of sections (`alarms:`, `auth:` …) is put into the shipped config.yaml
# (list items replace the shipped item with the same `id`, or are added; mappings are merged) and the
# result checked; a bare list of items names its section in the comment `<!-- config example:
# SECTION -->` just above the fence, and an item may abridge itself with a `...` key ("the rest as in
# the shipped config.yaml"). Checked means parsed by `bevforge.config` with the drivers' own settings
# and address checks (`drivers.check`), exactly as `--check-config` does.

DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
# `<!-- config example: SECTION -->` above a fence: a bare list of that section; `<!-- not config.yaml: … -->`: another
# program's file (a Prometheus scrape config) that the docs show in YAML, not checked here
FENCE = re.compile(r"(?:<!-- (?:config example: (?P<section>[a-z_]+)|(?P<other>not config\.yaml[^>]*)) -->\n)?"
                   r"```yaml\n(?P<body>.*?)```", re.S)


def examples() -> list[tuple[str, str | None, str]]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match["other"]:
                continue
            line = text[:match.start("body")].count("\n") + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", match["section"], match["body"]))
    return found


def shipped() -> dict[str, Any]:
    return yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))


def merge_items(into: list[dict[str, Any]], items: list[Any]) -> None:
    by_id = {item.get("id"): n for n, item in enumerate(into) if isinstance(item, dict)}
    for item in items:
        abridged = isinstance(item, dict) and "..." in item
        item = {k: v for k, v in item.items() if k != "..."} if isinstance(item, dict) else item
        at = by_id.get(item.get("id")) if isinstance(item, dict) else None
        if at is None:
            assert not abridged, f"an abridged item ({item.get('id')}) has nothing in config.yaml to abridge"
            into.append(item)
        else:
            into[at] = {**into[at], **item} if abridged else item


def merge_mapping(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge_mapping(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list) and value and isinstance(value[0], dict) \
                and "id" in value[0]:
            merge_items(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


EXAMPLES = examples()


def test_the_docs_have_yaml_examples_to_check() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize(("where", "section", "body"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_every_yaml_example_is_a_config_the_panel_accepts(where: str, section: str | None, body: str) -> None:
    example = yaml.safe_load(body)
    if isinstance(example, dict) and "nodes" in example:
        document = example
    else:
        document = shipped()
        if isinstance(example, list):
            assert section, f"{where}: a bare list needs <!-- config example: SECTION --> above its fence"
            merge_items(document.setdefault(section, []), example)
        else:
            assert isinstance(example, dict), f"{where}: not a mapping of config sections"
            merge_mapping(document, example)
    try:
        parse_config(yaml.safe_dump(document, allow_unicode=True), where, check)
    except ConfigError as exc:
        pytest.fail(f"{where}: the example is refused:\n" + "\n".join(str(p) for p in exc.problems))
