"""kill -9 at random points of a running brew day, again and again: safe resume (issue 15).

`python main.py` runs as a real subprocess (temp SQLite file, free port, the simulated brewhouse at
`simulator.speedup` = 60, so a 60 min mash rest is a real minute) with two programs started over REST:

- on the brewhouse unit (`mlt_rims` and `bk_element`): fill the mash tun → strike heat → "add the
  grain" prompt → hold 60 min → sparge prompt → boil 60 min with three additions (the simulator starts
  over at every start, so the temperatures are ones it shows from cold: see BREW_DAY);
- on the fermenter unit FV1 (`fv1_temperature`, `resume: schedule` by default): a free rise ramp 18 → 21 °C
  over a day, then a two-day hold.

Then, `KILLS` times: it waits a random time (seeded RNG; the seed is printed) while answering some of
the prompts, SIGKILLs the process, reads what the database file holds, starts the server again on the
same file and checks over REST:

- the brewhouse program is PAUSED at the step the file holds, which is never before a step the test
  saw it reach (no completed step lost), with every prompt the server accepted still answered;
- its time left is the stored one, and never more than `programs.save_every_s` (+ one tick) above the
  last time left the test saw before the kill (the periodic save: at most that much counted time is
  counted again), and never below what the timer could have counted up to the kill (the time dead is
  not counted); while it stays paused its time left does not move;
- its controllers are off and their elements read OFF (the simulator's coils, polled back): never
  silently heating; the message names the step and the time offline;
- the fermentation profile is RUNNING by itself with the target of its schedule: the stored elapsed
  time plus the time offline as the process clock measures it (`now − saved_at`, never negative) plus
  what ran since the start, and FV1's setpoint reads that target.

About the clock: at a speed-up the process clock (`ScaledClock`) starts again at the real time of day
each start, while the killed process's clock had run 60× ahead; the time offline it measures is then
0 (a clock that went back counts nothing, never negative), so on this accelerated clock the schedule
picks up where it was stored. On the system clock (speed 1, every deployment) the time offline is the
real time the panel was dead, and the schedule counts it (tests/integration/test_programs.py, on a
stepped clock).

Between kills the brewhouse program is resumed most of the time, so the runs cover different steps.
BEVFORGE_PROGRAM_KILLS sets the number of kills (default 20); BEVFORGE_PROGRAM_SEED replays a run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from drivers.sim.ports import use_simulator_ports
from tests.support.controllers import FAST_POLL_S, KETTLE, RIMS, with_controllers
from tests.support.server import ROOT, config_document, free_port

KILLS = int(os.environ.get("BEVFORGE_PROGRAM_KILLS", "20"))
SPEED = 60.0
SAVE_EVERY_S = 30.0  # programs.save_every_s (process seconds): 0.5 real s at 60×
TICK_S = 1.0  # bevforge/programs/service.py TICK_S
START_TIMEOUT_S = 90  # only stops a broken start from hanging the suite
MLT_ELEMENT, BK_ELEMENT, FV1_SETPOINT = 40, 38, 150
BREWHOUSE_LOOPS = ("mlt_rims", "bk_element")

FV1_ENDPOINTS = [
    {"id": 53, "name": "fv1_heating_pad", "node": "FV1", "device": "cellar_io", "kind": "heater",
     "data_type": "bool", "writable": True, "safe_value": False, "address": {"table": "coil", "address": 2}},
    {"id": 54, "name": "fv1_probe", "node": "FV1", "device": "cellar_io", "kind": "temperature", "unit": "°C",
     "address": {"table": "input", "address": 0, "type": "int16", "scale": 0.01}},
]
FV1_LOOP = {
    "id": "fv1_temperature", "name": "FV1 temperature", "node": "FV1", "kind": "pid", "input": 54, "output": 53,
    "cool_output": 51, "dead_band_c": 0.4,
    "setpoint": {"id": FV1_SETPOINT, "name": "fv1_setpoint", "min": 0, "max": 30, "unit": "°C", "default": 18},
    "period_s": 60, "min_on_s": 10, "min_off_s": 10, "tuning": {"kp": 40, "ki": 0.02, "out_min": -100, "out_max": 100},
    "safety": {"runaway_minutes": 120, "runaway_min_change_c": 0.2, "over_temperature_c": None}, "resume": "auto",
}
# The simulator starts over at every start of the process (an empty mash tun and kettle at the 20 °C
# ambient, the HLT full), so the steps after the fill hold temperatures the simulator shows whatever
# ran before: the mash at 20 °C, and a "boil" whose boil_c lies below the ambient (its timer runs at once)
BREW_DAY = {"id": "brew_day", "name": "Brew day", "unit": "brewhouse", "steps": [
    {"type": "transfer", "name": "Fill the mash tun", "pump": 23, "valves": [22],
     "until": {"endpoint": 21, "op": ">=", "value": 30}, "message": "Confirm when the tun is full"},
    {"type": "heat", "name": "Strike", "controller": "mlt_rims", "target_c": 20, "band_c": 1.5},
    {"type": "prompt", "name": "Mash in", "message": "Add 5.2 kg grain"},
    {"type": "hold", "name": "Mash rest", "controller": "mlt_rims", "target_c": 20, "minutes": 60, "band_c": 1.5,
     "grace_s": 120},
    {"type": "prompt", "name": "Sparge", "message": "Start the sparge"},
    {"type": "boil", "name": "Boil", "controller": "bk_element", "minutes": 60, "target_c": 22, "boil_c": 15,
     "additions": [{"at_min": 60, "message": "Add 20 g Magnum"}, {"at_min": 15, "message": "Add 30 g Cascade"},
                   {"at_min": 5, "message": "Add 30 g Citra"}]},
]}
FERMENTATION = {"id": "ale", "name": "Ale", "unit": "fv1", "steps": [
    {"type": "ramp", "name": "Free rise", "controller": "fv1_temperature", "from_c": 18, "to_c": 21, "days": 1},
    {"type": "hold", "name": "Diacetyl rest", "controller": "fv1_temperature", "target_c": 21, "days": 2},
]}
TIMED = {s["name"]: s.get("minutes", 0) * 60.0 + s.get("days", 0) * 86400.0 for s in
         BREW_DAY["steps"] + FERMENTATION["steps"]}


def plant_document(tmp_path: Path) -> dict[str, Any]:
    doc = config_document()
    use_simulator_ports(doc, free_port(), str(tmp_path / "probe"))

    def add(d: dict[str, Any]) -> None:
        d["endpoints"] += FV1_ENDPOINTS
        d["controllers"].append(FV1_LOOP)
        d["programs"] = {"units": [
            {"id": "brewhouse", "name": "Brewhouse", "controllers": list(BREWHOUSE_LOOPS)},
            {"id": "fv1", "name": "FV1", "kind": "fermenter", "controllers": ["fv1_temperature"]}],
            "templates": [BREW_DAY, FERMENTATION], "save_every_s": SAVE_EVERY_S}
        d["simulator"]["speedup"] = SPEED
        for endpoint in d["endpoints"]:
            if endpoint.get("poll_interval_s") == FAST_POLL_S:  # the stepped-clock tests' pace: not needed here
                endpoint["poll_interval_s"] = 0.05
                endpoint.pop("stale_after_s", None)

    with_controllers([dict(RIMS), dict(KETTLE)], adjust=add)(doc)
    return doc


def app_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST" and not k.startswith("NICEGUI_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def start_app(config: Path, db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--config", str(config), "--port", str(port),
                                 "--db", f"sqlite:///{db}", "--log-level", "warning"], cwd=ROOT, env=app_env(),
                                stdout=out, stderr=out)


def until(proc: subprocess.Popen[bytes], log: Path, what: str, probe: Any, timeout: float = START_TIMEOUT_S) -> Any:
    """Poll `probe()` until it answers something truthy (the app dying or the deadline fails the test)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"main.py exited with {proc.returncode} waiting for {what}:\n{log.read_text()[-3000:]}")
        try:
            last = probe()
            if last:
                return last
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.05)
    pytest.fail(f"{what} not reached within {timeout} s (last: {last}):\n{log.read_text()[-3000:]}")


@dataclass
class Stored:
    """A unit's program as the database file holds it after the kill."""

    state: str
    index: int
    step_state: dict[str, Any]
    saved_at: datetime

    def remaining(self, title: str) -> float | None:
        if not TIMED.get(title):
            return None
        return max(0.0, TIMED[title] + self.step_state.get("extra", 0.0) - self.step_state.get("elapsed", 0.0))


def stored(db: Path) -> dict[str, Stored]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT unit_id, state, step_index, step_state, saved_at FROM programs").fetchall()
    finally:
        conn.close()
    out = {}
    for unit, state, index, step_state, saved_at in rows:
        at = datetime.fromisoformat(saved_at)
        out[unit] = Stored(state, index, json.loads(step_state) if step_state else {},
                           at if at.tzinfo else at.replace(tzinfo=UTC))
    return out


@dataclass
class Seen:
    """What the test saw of the brewhouse program before a kill."""

    index: int = 0
    remaining: float | None = None  # the last time left seen, as of no earlier than `at` (real monotonic)
    remaining_index: int = -1
    at: float = 0.0
    answered: set[tuple[int, str]] = field(default_factory=set)  # prompts the server accepted (step, key)


def iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def step_name(frame: dict[str, Any]) -> str:
    return frame["steps"][frame["step"]["index"]]["name"]


def run_for(http: httpx.Client, seconds: float, seen: Seen, rng: random.Random, answer_p: float) -> None:
    """Watch the brewhouse program for `seconds` of real time, answering each prompt shown with
    probability `answer_p` (decided once per prompt), noting the furthest step and the last time left.
    A transfer's "confirm when done" is left alone: the transfers end on their level conditions."""
    decided: dict[tuple[int, str], bool] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        asked = time.monotonic()  # the frame describes a moment after this one (and before its answer arrived)
        frame = http.get("/api/os/programs/brewhouse").json()
        if frame["step"] is not None:
            index = frame["step"]["index"]
            seen.index = max(seen.index, index)
            seen.remaining, seen.remaining_index, seen.at = frame["step"]["remainingS"], index, asked
            for prompt in frame["prompts"]:
                key = (prompt["step"], prompt["key"])
                if frame["steps"][prompt["step"]]["type"] == "transfer":
                    continue
                if key not in decided:
                    decided[key] = rng.random() < answer_p
                if decided[key] and frame["state"] == "running":
                    answer = http.post("/api/os/programs/brewhouse/confirm",
                                       json={"step": prompt["step"], "key": prompt["key"]})
                    if answer.status_code == 200:
                        seen.answered.add(key)
                        seen.index = max(seen.index, answer.json()["step"]["index"]
                                         if answer.json()["step"] else len(BREW_DAY["steps"]))
                    decided[key] = False
        time.sleep(0.05)


@pytest.mark.slow  # 20 kill -9 / restart cycles of main.py with two programs running: a few minutes
def test_kill_9_during_a_brew_day_resumes_paused_at_the_same_step_and_the_fermenter_on_schedule(
        tmp_path: Path) -> None:
    config = tmp_path / "plant.yaml"
    config.write_text(yaml.safe_dump(plant_document(tmp_path), allow_unicode=True), encoding="utf-8")
    db, log = tmp_path / "bevforge.db", tmp_path / "main.log"
    seed = int(os.environ.get("BEVFORGE_PROGRAM_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    print(f"\nprogram kill -9: seed {seed} (BEVFORGE_PROGRAM_SEED={seed} replays the run's choices)")
    seen = Seen()
    before: dict[str, Stored] = {}
    killed_at = 0.0
    steps_paused_at: list[str] = []

    for kill in range(KILLS + 1):
        port = free_port()
        spawned = datetime.now(UTC)
        proc = start_app(config, db, port, log)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                def online() -> bool:
                    loops = {c["id"]: c for c in http.get("/api/os/controllers").json()}
                    values = {e["endpointId"]: e for e in http.get("/api/os/endpoints").json()}
                    return len(loops) == 3 and all(values[e]["quality"] == "good" for e in
                                                   (MLT_ELEMENT, BK_ELEMENT, FV1_SETPOINT, 20, 30, 54))

                until(proc, log, "the plant online", online)
                if kill == 0:
                    for unit, template in (("brewhouse", "brew_day"), ("fv1", "ale")):
                        answer = http.post(f"/api/os/programs/{unit}/start", json={"templateId": template})
                        assert answer.status_code == 200, answer.text
                else:
                    check_brewhouse(proc, log, http, before["brewhouse"], seen, killed_at)
                    check_fermenter(proc, log, http, before["fv1"], spawned)
                    steps_paused_at.append(step_name(http.get("/api/os/programs/brewhouse").json()))
                    frame = http.get("/api/os/programs/brewhouse").json()
                    if frame["state"] == "paused" and rng.random() < 0.8:  # most of the time the brew day goes on
                        answer = http.post("/api/os/programs/brewhouse/resume")
                        assert answer.status_code == 200, answer.text
                if kill == KILLS:
                    break
                run_for(http, rng.uniform(2.0, 8.0), seen, rng, answer_p=0.7)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        killed_at = time.monotonic()
        before = stored(db)
        assert set(before) == {"brewhouse", "fv1"}, before

    covered = sorted(set(steps_paused_at), key=[s["name"] for s in BREW_DAY["steps"]].index)
    print(f"program kill -9: {KILLS} kills; the brewhouse came back paused at {covered}; furthest step seen "
          f"{seen.index}; {len(seen.answered)} prompts answered")
    assert len(set(steps_paused_at)) >= 2, "the kills all landed on one step: the brew day did not move on"


def check_brewhouse(proc: subprocess.Popen[bytes], log: Path, http: httpx.Client, then: Stored, seen: Seen,
                    killed_at: float) -> None:
    frame = http.get("/api/os/programs/brewhouse").json()
    assert frame["state"] == "paused", frame
    index = frame["step"]["index"]
    title = step_name(frame)
    assert index == then.index, f"came back at step {index}, the file holds {then.index}"
    assert index >= seen.index, f"came back at step {index}, before step {seen.index} it had reached"
    assert then.state in ("running", "paused")
    # every prompt of this step the server accepted is still answered
    for step, key in seen.answered:
        if step == index:
            assert key in then.step_state.get("confirmed", []), (step, key, then.step_state)
            assert key not in {p["key"] for p in frame["prompts"]}, frame["prompts"]
    remaining = frame["step"]["remainingS"]
    expected = then.remaining(title)
    if expected is None:
        assert remaining is None, frame
    else:
        assert remaining == pytest.approx(expected, abs=0.05), (title, remaining, expected)
        if seen.remaining_index == index and seen.remaining is not None:
            # at most one save interval (and a tick) of counted time is counted again ...
            assert remaining <= seen.remaining + SAVE_EVERY_S + TICK_S + 0.1, (title, remaining, seen.remaining)
            # ... and never more counted than could have run up to the kill (the time dead does not count)
            ran_s = (killed_at - seen.at) * SPEED
            assert remaining >= seen.remaining - ran_s - TICK_S, (title, remaining, seen.remaining, ran_s)

    # outputs safe once the inputs are read again: the brewhouse loops off, their elements read OFF
    def safe() -> bool:
        loops = {c["id"]: c for c in http.get("/api/os/controllers").json()}
        values = {e["endpointId"]: e for e in http.get("/api/os/endpoints").json()}
        return all(loops[c]["mode"] == "off" for c in BREWHOUSE_LOOPS) and all(
            values[e]["value"] is False and values[e]["quality"] == "good" for e in (MLT_ELEMENT, BK_ELEMENT))

    until(proc, log, "the brewhouse outputs safe", safe, timeout=30)
    frame = http.get("/api/os/programs/brewhouse").json()
    assert frame["state"] == "paused" and frame["step"]["index"] == index, frame
    assert title in frame["message"] and "offline" in frame["message"], frame["message"]
    if expected is not None:  # paused: its time left has not moved
        assert frame["step"]["remainingS"] == pytest.approx(remaining, abs=0.05), frame


def check_fermenter(proc: subprocess.Popen[bytes], log: Path, http: httpx.Client, then: Stored,
                    spawned: datetime) -> None:
    frame = http.get("/api/os/programs/fv1").json()
    assert frame["state"] == "running", frame
    assert "resumed on its schedule" in (frame["message"] or ""), frame["message"]
    index = frame["step"]["index"]
    assert index == then.index, (index, then.index)
    if index != 0:
        return  # the ramp lasts a simulated day: the profile does not leave it within the test
    ramp = FERMENTATION["steps"][0]
    duration = TIMED[ramp["name"]] + then.step_state.get("extra", 0.0)
    now = iso(frame["timestamp"])
    elapsed = duration - frame["step"]["remainingS"]
    stored_elapsed = then.step_state["elapsed"]
    # the schedule: the stored elapsed + the time offline by the process clock (never negative) + what ran since
    least = stored_elapsed + max(0.0, (spawned - then.saved_at).total_seconds())
    most = stored_elapsed + max(0.0, (now - then.saved_at).total_seconds()) + (now - spawned).total_seconds()
    assert least - 0.1 <= elapsed <= most + 0.1, (least, elapsed, most)

    def target() -> float:
        frame = http.get("/api/os/programs/fv1").json()
        return ramp["from_c"] + (ramp["to_c"] - ramp["from_c"]) * (duration - frame["step"]["remainingS"]) / duration

    def setpoint_on_schedule() -> bool:
        value = next(e for e in http.get("/api/os/endpoints").json() if e["endpointId"] == FV1_SETPOINT)
        return value["quality"] == "good" and abs(value["value"] - target()) <= 0.02

    until(proc, log, "FV1's setpoint on the profile's schedule", setpoint_on_schedule, timeout=30)
