"""The controller faceplate on the Control Panel (issue 14.7), in NiceGUI's User.

The fixture brewhouse gets the mash tun's RIMS loop (`tests/support/controllers.RIMS`: software
setpoint 20…80 °C, default 65, MLT element 40 behind a level interlock) through the config file
main.py reads. The runtime runs on the system clock; nothing here waits on control maths — only on
what the service and the screen show.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from nicegui.testing import User

from bevforge.domain import Quality, utcnow
from tests.support.controllers import FAST_POLL_S, MLT_ELEMENT, MLT_TEMPERATURE, RIMS, finished_tune, with_controllers
from tests.ui.conftest import write_config
from tests.ui.support import online, open_signed_in, runtime, shows, until

CID = "mlt_rims"


def rims_config(path: Path, auth: bool = False, critical: bool = False, **changes: Any) -> None:
    def adjust(doc: dict[str, Any]) -> None:
        with_controllers([{**RIMS, **changes}])(doc)
        for endpoint in doc["endpoints"]:
            if endpoint["id"] == MLT_ELEMENT:
                endpoint["critical"] = critical
        for endpoint in doc["endpoints"]:
            if endpoint.get("poll_interval_s") == FAST_POLL_S:
                endpoint["poll_interval_s"] = 0.5  # the screen tests need no fast sampling
                endpoint.pop("stale_after_s", None)
        if auth:
            doc["auth"] = {"mode": "required"}
    write_config(path / "config.yaml", adjust)


@pytest.fixture
def rims(bevforge_env: Path) -> Path:
    """The RIMS loop, no sign-in (an anonymous admin)."""
    rims_config(bevforge_env)
    return bevforge_env


@pytest.fixture
def rims_signed(bevforge_env: Path) -> Path:
    """The RIMS loop with auth required (list it before `user`)."""
    rims_config(bevforge_env, auth=True)
    return bevforge_env


@pytest.fixture
def rims_trips(bevforge_env: Path) -> Path:
    """The RIMS loop whose setpoint may go to 0 °C and trips 5 °C above it (the MLT sits at ~20 °C)."""
    rims_config(bevforge_env, auth=True,
                setpoint={**RIMS["setpoint"], "min": 0, "default": 10},
                safety={**RIMS["safety"], "over_temperature_c": 5})
    return bevforge_env


@pytest.fixture
def rims_critical(bevforge_env: Path) -> Path:
    """The RIMS loop whose element is marked critical (a heater, as in the shipped config)."""
    rims_config(bevforge_env, critical=True)
    return bevforge_env


def tap(user: User, *keys: str) -> None:
    for key in keys:
        user.find(marker=f"keypad-{key}").click()


def loop() -> Any:
    return runtime().controllers.loops[CID]


async def test_the_faceplate_shows_pv_sp_output_mode_and_state(rims: Path, user: User) -> None:
    await user.open("/")
    await online()
    await user.should_see(marker=f"faceplate-{CID}")
    await shows(user, f"fp-pv-{CID}", "°C", absent=("?",))
    await shows(user, f"fp-pv-quality-{CID}", "LIVE")
    await shows(user, f"fp-sp-{CID}", "65.0 °C")
    await shows(user, f"fp-mode-{CID}", "MODE OFF")
    await shows(user, f"fp-state-{CID}", "OFF")
    await shows(user, f"fp-reason-{CID}", "not switched on since the panel started")
    await shows(user, f"fp-out-{CID}", "0 %")
    chart = next(iter(user.find(marker=f"fp-trend-{CID}").elements))

    def drawn(index: int) -> list[Any]:
        return [p[1] for p in chart.options["series"][index]["data"] if p[1] is not None]

    await until(lambda: drawn(0) and drawn(1) and drawn(2))  # PV, SP, OUT %: redrawn by the 1 s timer
    assert 65.0 in drawn(1) and drawn(2)[-1] == 0.0
    await user.should_not_see(marker=f"fp-reset-{CID}")  # nothing to reset
    await user.should_not_see(marker=f"fp-set-out-{CID}")  # the output is set by hand only in manual


@pytest.fixture
def rims_recorded(bevforge_env: Path) -> Path:
    """The RIMS loop with an `output_record` (its output % kept in history)."""
    rims_config(bevforge_env, output_record={"id": 141, "name": "mlt_output"})
    return bevforge_env


async def test_the_mini_trend_draws_the_output_and_setpoint_from_history(rims_recorded: Path, user: User) -> None:
    """A screen opened later still shows what the loop did: OUT from the output record, SP held between its
    records, each from history — the frames since the page opened add only the present."""
    await user.open("/")
    await online()
    now = utcnow().timestamp()
    rows = [{"endpoint_id": 141, "value": 37.5, "quality": "good", "source_ts": now - 600, "server_ts": now - 600},
            {"endpoint_id": 140, "value": 61.5, "quality": "good", "source_ts": now - 900, "server_ts": now - 900}]
    runtime().history_writer.write_batch(rows, [])
    await user.open("/")
    await user.should_see(marker=f"faceplate-{CID}")
    chart = next(iter(user.find(marker=f"fp-trend-{CID}").elements))

    def drawn(index: int) -> list[Any]:
        return [p[1] for p in chart.options["series"][index]["data"] if p[1] is not None]

    await until(lambda: 37.5 in drawn(2) and 61.5 in drawn(1))
    assert drawn(2).count(37.5) <= 4, "a record is held across its heartbeat only, not for ever"
    assert drawn(1).count(61.5) >= 30, "a setpoint is in force until the next one (5 minutes of 10 s steps)"


async def test_an_operator_sets_the_setpoint_by_keypad_and_it_is_audited(rims_signed: Path, user: User) -> None:
    await open_signed_in(user, "olga", "operator", "/")
    await shows(user, f"fp-sp-{CID}", "65.0 °C")
    user.find(marker=f"fp-set-sp-{CID}").click()
    await user.should_see(marker="keypad")
    await shows(user, "keypad-range", "20 … 80 °C")
    tap(user, "6", "2", "dot", "5", "set")
    await user.should_not_see(marker="keypad")
    await shows(user, f"fp-sp-{CID}", "62.5 °C")
    assert loop().setpoint == 62.5
    # the setpoint is the person's command to the setpoint endpoint: the command pipeline audits it
    setpoint_name = runtime().plant.endpoints[loop().cfg.setpoint_id].name
    entries = await runtime().audit.query(user="olga", action="command.request")
    assert [(e["target"], e["new"], e["detail"]) for e in entries] == [(setpoint_name, 62.5, "ui")]
    # the command record says where it was pressed: the faceplate, not the REST API
    command = runtime().commands.record.stored(entries[0]["commandId"])
    assert command is not None and command.origin == "ui" and command.user == "olga"
    # manual mode: the output by keypad, then back to off
    user.find(marker=f"fp-mode-manual-{CID}").click()
    await shows(user, f"fp-mode-{CID}", "MODE MANUAL")
    await shows(user, f"fp-state-{CID}", "MANUAL")
    user.find(marker=f"fp-set-out-{CID}").click()
    await user.should_see(marker="keypad")
    tap(user, "3", "0", "set")
    await user.should_not_see(marker="keypad")
    await shows(user, f"fp-out-{CID}", "30 %")
    assert loop().manual_output == 30.0
    user.find(marker=f"fp-mode-off-{CID}").click()
    await shows(user, f"fp-mode-{CID}", "MODE OFF")
    actions = [e["action"] for e in await runtime().audit.query(user="olga")]
    assert {"controller.mode", "controller.output", "command.request"} <= set(actions)


async def test_a_viewer_sees_the_faceplate_but_no_controls(rims_signed: Path, user: User) -> None:
    await open_signed_in(user, "vera", "viewer", "/")
    await shows(user, f"fp-sp-{CID}", "65.0 °C")
    await shows(user, f"fp-state-{CID}", "OFF")
    for control in ("fp-set-sp", "fp-set-out", "fp-mode-auto", "fp-mode-manual", "fp-mode-off", "fp-reset",
                    "fp-tuning"):
        await user.should_not_see(marker=f"{control}-{CID}")


async def test_only_the_controller_s_node_users_see_its_faceplate(rims_signed: Path, user: User,
                                                                   create_user: Any) -> None:
    mash = create_user()
    await open_signed_in(mash, "mia", "operator", "/", nodes=["MLT"])
    await mash.should_see(marker=f"faceplate-{CID}")
    await open_signed_in(user, "hana", "operator", "/", nodes=["HLT"])
    await user.should_see(marker="node-HLT")
    await user.should_not_see(marker=f"faceplate-{CID}")


async def test_a_technician_changes_the_tuning_and_an_operator_cannot_open_it(rims_signed: Path, user: User,
                                                                                create_user: Any) -> None:
    operator = create_user()
    await open_signed_in(operator, "olga", "operator", "/")
    await shows(operator, f"fp-sp-{CID}", "65.0 °C")
    await operator.should_not_see(marker=f"fp-tuning-{CID}")

    await open_signed_in(user, "tom", "technician", "/")
    user.find(marker=f"fp-tuning-{CID}").click()
    await user.should_see(marker=f"fp-tuning-dialog-{CID}")
    await shows(user, f"fp-tuning-kp-{CID}", "60")
    user.find(marker=f"fp-tuning-edit-kp-{CID}").click()
    await user.should_see(marker="keypad")
    tap(user, "4", "5", "set")
    await shows(user, f"fp-tuning-kp-{CID}", "45 (new)")
    assert loop().tuning["kp"] == 60  # nothing is sent before APPLY
    user.find(marker=f"fp-tuning-apply-{CID}").click()
    await user.should_not_see(marker=f"fp-tuning-dialog-{CID}")
    assert loop().tuning["kp"] == 45.0
    assert loop().pid.tuning.kp == 45.0
    entries = await runtime().audit.query(user="tom", action="controller.tuning")
    assert [(e["old"], e["new"]) for e in entries] == [({"kp": 60}, {"kp": 45.0})]
    # a combination the loop cannot use is refused with the service's reason, and nothing changes
    user.find(marker=f"fp-tuning-{CID}").click()
    await user.should_see(marker=f"fp-tuning-dialog-{CID}")
    user.find(marker=f"fp-tuning-edit-outMin-{CID}").click()
    await user.should_see(marker="keypad")
    tap(user, "1", "0", "0", "set")
    await shows(user, f"fp-tuning-outMin-{CID}", "100 (new)")
    user.find(marker=f"fp-tuning-apply-{CID}").click()
    await shows(user, "message-line", "tuning refused: out_min must be below out_max")
    assert loop().tuning["out_min"] == 0 and loop().tuning["kp"] == 45.0


async def test_a_tripped_loop_shows_the_reason_and_reset(rims_trips: Path, user: User) -> None:
    await open_signed_in(user, "olga", "operator", "/")
    await shows(user, f"fp-sp-{CID}", "10.0 °C")
    user.find(marker=f"fp-mode-auto-{CID}").click()  # the mash is ~20 °C: more than 5 °C above 10 °C
    await shows(user, f"fp-state-{CID}", "TRIPPED", timeout=20.0)
    await shows(user, f"fp-reason-{CID}", "over-temperature", "above the setpoint 10 °C")
    await user.should_see(marker=f"fp-reset-{CID}")
    assert loop().state.value == "tripped"
    user.find(marker=f"fp-reset-{CID}").click()
    await shows(user, f"fp-state-{CID}", "OFF", absent=("TRIPPED",))
    await shows(user, f"fp-mode-{CID}", "MODE OFF")
    await user.should_not_see(marker=f"fp-reset-{CID}")
    entries = await runtime().audit.query(user="olga", action="controller.mode")
    assert any("reset trip: over-temperature" in (e["detail"] or "") for e in entries)


async def test_a_stale_then_bad_pv_never_looks_live_and_the_loop_shows_its_input_fault(rims: Path,
                                                                                       user: User) -> None:
    await user.open("/")
    await online()
    rt = runtime()
    await shows(user, f"fp-pv-quality-{CID}", "LIVE")
    user.find(marker=f"fp-mode-manual-{CID}").click()  # manual at 0 %: the loop reads its input, heats nothing
    await shows(user, f"fp-state-{CID}", "MANUAL")
    await rt.drivers["brewhouse_io"].stop()  # the MLT probe's readings stop arriving
    rt.plant.sweep_stale(utcnow() + timedelta(seconds=30))
    assert rt.plant.states[MLT_TEMPERATURE].quality is Quality.BAD
    await shows(user, f"fp-pv-{CID}", "?", absent=("°C",))
    await shows(user, f"fp-pv-quality-{CID}", "BAD", absent=("LIVE",))
    await shows(user, f"fp-state-{CID}", "INPUT FAULT")
    await shows(user, f"fp-reason-{CID}", "MLT temperature is bad")


async def test_a_heater_loop_asks_before_it_switches_on(rims_critical: Path, user: User) -> None:
    await user.open("/")
    await online()
    user.find(marker=f"fp-mode-auto-{CID}").click()
    await shows(user, "confirm-change", "OFF → AUTO")
    user.find(marker="confirm-cancel").click()
    await user.should_not_see(marker="confirm-change")
    assert loop().mode.value == "off"  # CANCEL sent nothing
    user.find(marker=f"fp-mode-auto-{CID}").click()
    await shows(user, "confirm-change", "OFF → AUTO")
    user.find(marker="confirm-ok").click()
    await shows(user, f"fp-mode-{CID}", "MODE AUTO")
    assert loop().mode.value == "auto"


async def test_a_technician_runs_an_autotune_from_the_faceplate_and_accepts_or_discards_it(
        rims_signed: Path, user: User, create_user: Any) -> None:
    operator = create_user()
    await open_signed_in(operator, "olga", "operator", "/")
    await shows(operator, f"fp-sp-{CID}", "65.0 °C")
    await operator.should_not_see(marker=f"fp-autotune-start-{CID}")  # a technician's tool

    rt = await open_signed_in(user, "tom", "technician", "/")
    # off: the dialog says why it cannot start, in the service's words, and START is disabled
    user.find(marker=f"fp-autotune-start-{CID}").click()
    await user.should_see(marker=f"fp-autotune-dialog-{CID}")
    await shows(user, f"fp-autotune-refusal-{CID}", "Cannot start", "regulating loop in auto (it is off)",
                "switch it to AUTO")
    await shows(user, f"fp-autotune-amplitudePct-{CID}", "40 (default)")
    assert not next(iter(user.find(marker=f"fp-autotune-go-{CID}").elements)).enabled
    user.find(marker=f"fp-autotune-cancel-{CID}").click()
    await user.should_not_see(marker=f"fp-autotune-dialog-{CID}")

    # a mash in the tun at the setpoint, the loop in auto and regulating: now it may start
    model = rt.attachments["simulator"].model
    model.add_liquid("mlt", 30.0, 65.0)
    model.vessels["mlt"].temperature_c = 65.0
    user.find(marker=f"fp-mode-auto-{CID}").click()
    await shows(user, f"fp-state-{CID}", "REGULATING", timeout=20.0)
    user.find(marker=f"fp-autotune-start-{CID}").click()
    await user.should_see(marker=f"fp-autotune-dialog-{CID}")
    await user.should_not_see(marker=f"fp-autotune-refusal-{CID}")
    user.find(marker=f"fp-autotune-edit-amplitudePct-{CID}").click()
    await user.should_see(marker="keypad")
    tap(user, "3", "0", "set")
    await shows(user, f"fp-autotune-amplitudePct-{CID}", "30 (new)")
    user.find(marker=f"fp-autotune-edit-maxDurationMin-{CID}").click()
    await user.should_see(marker="keypad")
    tap(user, "9", "0", "set")
    await shows(user, f"fp-autotune-maxDurationMin-{CID}", "90 (new)")
    user.find(marker=f"fp-autotune-go-{CID}").click()
    await shows(user, f"fp-state-{CID}", "AUTOTUNING")
    await shows(user, f"fp-autotune-state-{CID}", "AUTOTUNE RUNNING", "measured")
    settings = loop().autotune.settings
    assert (settings.amplitude_pct, settings.max_duration_s, settings.cycles) == (30.0, 5400.0, 3)
    await user.should_not_see(marker=f"fp-autotune-start-{CID}")  # one test at a time
    await shows(operator, f"fp-autotune-state-{CID}", "AUTOTUNE RUNNING")  # everyone sees it running …
    await operator.should_not_see(marker=f"fp-autotune-abort-{CID}")  # … only a technician stops it

    user.find(marker=f"fp-autotune-abort-{CID}").click()
    await shows(user, f"fp-state-{CID}", "REGULATING")
    await shows(user, f"fp-autotune-state-{CID}", "ENDED WITHOUT GAINS", "aborted")
    user.find(marker=f"fp-autotune-discard-{CID}").click()  # DISMISS the aborted test's record
    await user.should_not_see(marker=f"fp-autotune-state-{CID}", retries=40)
    assert loop().autotune is None

    # a finished test: the proposal beside the present gains; DISCARD keeps the tuning
    tune = finished_tune()
    result = tune.result
    loop().autotune = tune
    rt.controllers.publish(loop(), force=True)
    await shows(user, f"fp-autotune-state-{CID}", "AUTOTUNE FINISHED")
    await shows(user, f"fp-autotune-now-kp-{CID}", "60")
    await shows(user, f"fp-autotune-new-kp-{CID}", f"{result.kp:.4g}")
    await shows(user, f"fp-autotune-now-ki-{CID}", "0.08")
    await shows(user, f"fp-autotune-new-ki-{CID}", f"{result.ki:.4g}")
    await shows(user, f"fp-autotune-new-kd-{CID}", f"{result.kd:.4g}")
    await shows(user, f"fp-autotune-ultimate-{CID}", f"Ku {result.ku:.4g}", f"Pu {result.pu_s:.4g} s", "Tyreus–Luyben")
    await shows(operator, f"fp-autotune-new-kp-{CID}", f"{result.kp:.4g}")
    await operator.should_not_see(marker=f"fp-autotune-accept-{CID}")
    user.find(marker=f"fp-autotune-discard-{CID}").click()
    await user.should_not_see(marker=f"fp-autotune-state-{CID}", retries=40)
    assert loop().tuning["kp"] == 60 and loop().autotune is None

    # … and ACCEPT takes the proposed gains as the tuning
    loop().autotune = finished_tune()
    rt.controllers.publish(loop(), force=True)
    await shows(user, f"fp-autotune-new-kp-{CID}", f"{result.kp:.4g}")
    user.find(marker=f"fp-autotune-accept-{CID}").click()
    await user.should_not_see(marker=f"fp-autotune-state-{CID}", retries=40)
    assert loop().tuning["kp"] == pytest.approx(result.kp) and loop().pid.tuning.ki == pytest.approx(result.ki)
    actions = [e["action"] for e in await rt.audit.query(user="tom")]
    assert {"controller.autotune.start", "controller.autotune.abort", "controller.autotune.discard",
            "controller.autotune.accept", "controller.tuning"} <= set(actions)
    assert actions.count("controller.autotune.discard") == 2
