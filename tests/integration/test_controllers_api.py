"""REST routes of the controllers over real HTTP: roles, the node rule, 4xx JSON naming the field, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bevforge.clock import ManualClock
from bevforge.control.autotune import AutotuneSettings, AutotuneState, RelayAutotune
from bevforge.control.process_model import SimulatedVessel, VesselModel
from tests.support.controllers import controller_server, finished_tune, step
from tests.support.server import LiveServer, wait_for


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[LiveServer, dict[str, str]]]:
    async with controller_server(tmp_path, {"mlt-operator": "MLT"}) as served:
        yield served


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(live: LiveServer, token: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return await live.http.post(f"/api/os/controllers/{path}", json=body, headers=as_(token))


async def test_listing_follows_the_node_rule_and_the_node_filter(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, tokens = server
    everything = (await live.http.get("/api/os/controllers", headers=as_(tokens["viewer"]))).json()
    assert {c["id"] for c in everything} == {"mlt_rims", "bk_element"}
    frame = everything[0]
    assert {"type", "id", "node", "mode", "state", "reason", "pv", "sp", "output", "outputs", "timestamp"} <= set(frame)
    assert frame["type"] == "controller" and frame["mode"] == "off"
    only_bk = (await live.http.get("/api/os/controllers?node=BK", headers=as_(tokens["viewer"]))).json()
    assert [c["id"] for c in only_bk] == ["bk_element"]
    mlt_only = (await live.http.get("/api/os/controllers", headers=as_(tokens["mlt-operator"]))).json()
    assert [c["id"] for c in mlt_only] == ["mlt_rims"]
    hidden = await live.http.get("/api/os/controllers/bk_element", headers=as_(tokens["mlt-operator"]))
    assert hidden.status_code == 404 and hidden.json()["error"] == "unknown_controller"
    hidden = await post(live, tokens["mlt-operator"], "bk_element/mode", {"mode": "auto"})
    assert hidden.status_code == 404, "another node's controller answers as a missing one"
    one = await live.http.get("/api/os/controllers/mlt_rims", headers=as_(tokens["viewer"]))
    assert one.status_code == 200 and one.json()["sp"] == 65.0


async def test_roles_an_operator_runs_it_a_technician_tunes_it(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, tokens = server
    assert (await post(live, tokens["viewer"], "mlt_rims/mode", {"mode": "auto"})).status_code == 403
    answer = await post(live, tokens["operator"], "mlt_rims/mode", {"mode": "manual"})
    assert answer.status_code == 200 and answer.json()["mode"] == "manual"
    answer = await post(live, tokens["operator"], "mlt_rims/output", {"value": 25})
    assert answer.status_code == 200 and answer.json()["manualOutput"] == 25
    answer = await post(live, tokens["operator"], "mlt_rims/setpoint", {"value": 67})
    assert answer.status_code == 200 and answer.json()["sp"] == 67
    assert (await post(live, tokens["operator"], "mlt_rims/tuning", {"kp": 10})).status_code == 403
    answer = await post(live, tokens["technician"], "mlt_rims/tuning", {"kp": 10, "rampCPerMin": 2})
    assert answer.status_code == 200
    assert answer.json()["tuning"]["kp"] == 10 and answer.json()["tuning"]["rampCPerMin"] == 2
    audit = await live.http.get("/api/os/audit?limit=50", headers=as_(tokens["admin"]))
    assert audit.status_code == 200
    actions = {e["action"] for e in audit.json()}
    assert {"controller.mode", "controller.output", "command.request", "controller.tuning"} <= actions


@pytest.mark.parametrize(("path", "body", "status", "field"), [
    ("mlt_rims/mode", {"mode": "turbo"}, 422, "mode"),
    ("mlt_rims/mode", {}, 422, "mode"),
    ("mlt_rims/setpoint", {"value": 95}, 422, "value"),
    ("mlt_rims/setpoint", {"value": "hot"}, 422, "value"),
    ("mlt_rims/output", {"value": 40}, 409, "value"),  # not in manual
    ("mlt_rims/tuning", {"kq": 1}, 422, "kq"),
    ("mlt_rims/tuning", {"outMin": 50, "outMax": 10}, 422, "tuning"),
    ("mlt_rims/reset", None, 409, "controllerId"),  # not tripped
    ("mlt_rims/autotune/discard", None, 409, "controllerId"),  # no autotune has run
    ("no_such/mode", {"mode": "auto"}, 404, "controllerId"),
])
async def test_bad_requests_answer_4xx_json_naming_the_field(server: tuple[LiveServer, dict[str, str]], path: str,
                                                            body: dict[str, Any] | None, status: int,
                                                            field: str) -> None:
    live, tokens = server
    answer = await post(live, tokens["admin"], path, body)
    assert answer.status_code == status, answer.text
    payload = answer.json()
    assert {"error", "message", "field"} <= set(payload)
    assert payload["field"].endswith(field), payload


async def test_openapi_shows_the_controller_routes_with_their_roles(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, live_tokens = server
    paths = (await live.http.get("/openapi.json", headers=as_(live_tokens["viewer"]))).json()["paths"]
    expected = {"/api/os/controllers": ("get", "viewer"), "/api/os/controllers/{controller_id}": ("get", "viewer"),
                "/api/os/controllers/{controller_id}/mode": ("post", "operator"),
                "/api/os/controllers/{controller_id}/setpoint": ("post", "operator"),
                "/api/os/controllers/{controller_id}/output": ("post", "operator"),
                "/api/os/controllers/{controller_id}/reset": ("post", "operator"),
                "/api/os/controllers/{controller_id}/tuning": ("post", "technician"),
                "/api/os/controllers/{controller_id}/autotune/discard": ("post", "technician")}
    for path, (method, role) in expected.items():
        assert path in paths, path
        assert paths[path][method]["x-required-role"] == role


async def test_a_software_setpoint_is_an_endpoint_written_through_the_command_pipeline(
        server: tuple[LiveServer, dict[str, str]]) -> None:
    """The RIMS loop's software setpoint (id 140) is listed like any endpoint, on its controller's node,
    and a command to it (as a tile sends one) changes what the loop regulates to."""
    live, tokens = server
    viewer, operator = as_(tokens["viewer"]), as_(tokens["operator"])
    endpoint = (await live.http.get("/api/os/endpoints/140", headers=viewer)).json()
    assert endpoint["node"] == "MLT" and endpoint["kind"] == "setpoint" and endpoint["writable"] is True
    assert endpoint["value"] == 65.0 and endpoint["quality"] == "good"
    assert endpoint["range"] == {"min": 20.0, "max": 80.0}
    hidden = await live.http.get("/api/os/endpoints/140", headers=as_(tokens["mlt-operator"]))
    assert hidden.status_code == 200
    sent = await live.http.post("/api/os/command", json={"endpointId": 140, "value": 63.5, "commandId": "sp-1"},
                                headers=operator)
    assert sent.status_code == 202, sent.text
    await wait_for(lambda: live.runtime.commands.record.stored("sp-1") is not None
                   and live.runtime.commands.record.stored("sp-1").status.is_final)
    done = (await live.http.get("/api/os/commands/sp-1", headers=viewer)).json()
    assert done["status"] == "succeeded" and done["actualValue"] == 63.5
    loop = live.runtime.controllers.loops["mlt_rims"]
    await live.runtime.controllers.tick(loop)
    assert loop.setpoint == 63.5
    refused = await live.http.post("/api/os/command", json={"endpointId": 140, "value": 95}, headers=operator)
    assert refused.status_code == 422 and refused.json()["field"] == "value"
    by_route = await post(live, tokens["operator"], "mlt_rims/setpoint", {"value": 64})
    assert by_route.json()["sp"] == 64
    recorded = (await live.http.get("/api/os/commands?endpointId=140", headers=viewer)).json()
    assert recorded[0]["requestedValue"] == 64 and recorded[0]["origin"] == "api"  # the REST route's origin
    assert (await live.http.get("/api/os/endpoints/140", headers=viewer)).json()["value"] == 64


async def test_autotune_start_abort_and_accept_are_a_technician_s_and_audited(
        server: tuple[LiveServer, dict[str, str]]) -> None:
    """Over real HTTP on the simulated MLT: an autotune starts only from a regulating loop, runs the relay
    (state autotuning), aborts back to regulating; a finished test's gains are accepted as the tuning."""
    live, tokens = server
    runtime = live.runtime
    model = runtime.attachments["simulator"].model
    model.add_liquid("mlt", 30.0, 65.0)
    model.vessels["mlt"].temperature_c = 65.0
    await step(runtime, 3)
    tech = tokens["technician"]
    early = await post(live, tech, "mlt_rims/autotune", {"amplitudePct": 40})
    assert early.status_code == 409 and early.json()["field"] == "controllerId"  # off: nothing to tune from
    assert (await post(live, tokens["operator"], "mlt_rims/mode", {"mode": "auto"})).status_code == 200
    await step(runtime, 5)
    assert (await post(live, tokens["operator"], "mlt_rims/autotune", {})).status_code == 403
    bad = await post(live, tech, "mlt_rims/autotune", {"amplitudePct": 40, "biasPct": 90})
    assert bad.status_code == 422 and bad.json()["field"] == "autotune"
    started = await post(live, tech, "mlt_rims/autotune", {"amplitudePct": 40, "hysteresisC": 0.2})
    assert started.status_code == 200, started.text
    assert started.json()["state"] == "autotuning" and started.json()["autotune"]["state"] == "running"
    await step(runtime, 10)
    frame = (await live.http.get("/api/os/controllers/mlt_rims", headers=as_(tech))).json()
    assert frame["state"] == "autotuning"
    assert (await post(live, tech, "mlt_rims/autotune/accept")).status_code == 409  # nothing finished yet
    aborted = await post(live, tech, "mlt_rims/autotune/abort")
    assert aborted.status_code == 200 and aborted.json()["state"] == "regulating"
    assert aborted.json()["autotune"]["state"] == "aborted"
    # a finished test (run on a vessel model: the simulated mash cools too slowly for a relay test here)
    loop = runtime.controllers.loops["mlt_rims"]
    vessel = SimulatedVessel(VesselModel.water(60.0, loss_w_per_c=10.0, dead_time_s=20.0), 65.0)
    tune, now = RelayAutotune(AutotuneSettings(setpoint_c=65.0, bias_pct=50.0, amplitude_pct=50.0,
                                               hysteresis_c=0.05, band_c=3.0, max_duration_s=20_000), 0.0), 0.0
    while tune.state is AutotuneState.RUNNING:
        vessel.step(2.0, 11000.0 * tune.update(now, vessel.probe_c) / 100.0)
        now += 2.0
    assert tune.result is not None
    loop.autotune = tune
    accepted = await post(live, tech, "mlt_rims/autotune/accept")
    assert accepted.status_code == 200
    assert accepted.json()["tuning"]["kp"] == pytest.approx(tune.result.kp)
    assert accepted.json()["autotune"] is None
    audit = {e["action"] for e in (await live.http.get("/api/os/audit?limit=100", headers=as_(tokens["admin"]))).json()}
    assert {"controller.autotune.start", "controller.autotune.abort", "controller.autotune.accept",
            "controller.tuning"} <= audit


async def test_a_finished_autotune_is_discarded_by_a_technician_and_the_tuning_stays(
        server: tuple[LiveServer, dict[str, str]]) -> None:
    """Discard sets a finished test aside (a proposal or an abort's record) without touching the tuning;
    a running one must be aborted instead; only a technician may; it is audited with what was discarded."""
    live, tokens = server
    runtime = live.runtime
    model = runtime.attachments["simulator"].model
    model.add_liquid("mlt", 30.0, 65.0)
    model.vessels["mlt"].temperature_c = 65.0
    await step(runtime, 3)
    tech = tokens["technician"]
    assert (await post(live, tokens["operator"], "mlt_rims/mode", {"mode": "auto"})).status_code == 200
    await step(runtime, 5)
    started = await post(live, tech, "mlt_rims/autotune", {"amplitudePct": 40})
    assert started.status_code == 200, started.text
    running = await post(live, tech, "mlt_rims/autotune/discard")
    assert running.status_code == 409 and "abort" in running.json()["message"]
    assert (await post(live, tech, "mlt_rims/autotune/abort")).status_code == 200
    dismissed = await post(live, tech, "mlt_rims/autotune/discard")  # the aborted test's record
    assert dismissed.status_code == 200 and dismissed.json()["autotune"] is None
    assert (await post(live, tech, "mlt_rims/autotune/discard")).status_code == 409  # nothing left

    loop = runtime.controllers.loops["mlt_rims"]
    tuning = dict(loop.tuning)
    loop.autotune = finished_tune()
    frame = (await live.http.get("/api/os/controllers/mlt_rims", headers=as_(tech))).json()
    assert frame["autotune"]["state"] == "succeeded" and frame["autotune"]["result"]["kp"] > 0
    assert (await post(live, tokens["operator"], "mlt_rims/autotune/discard")).status_code == 403
    assert loop.autotune is not None  # an operator's refusal changed nothing
    discarded = await post(live, tech, "mlt_rims/autotune/discard")
    assert discarded.status_code == 200, discarded.text
    assert discarded.json()["autotune"] is None and discarded.json()["tuning"]["kp"] == tuning["kp"]
    assert loop.tuning == tuning and loop.autotune is None
    assert (await post(live, tech, "mlt_rims/autotune/accept")).status_code == 409  # nothing left to accept
    audit = (await live.http.get("/api/os/audit?limit=100", headers=as_(tokens["admin"]))).json()
    entries = [e for e in audit if e["action"] == "controller.autotune.discard"]
    assert len(entries) == 2 and all(e["target"] == "mlt_rims" and e["new"] is None for e in entries)
    newest = entries[0]["old"]
    assert newest["state"] == "succeeded" and newest["result"]["kp"] == pytest.approx(frame["autotune"]["result"]["kp"])
    assert entries[1]["old"]["state"] == "aborted"
    assert not any(e["action"] == "controller.tuning" for e in audit)


async def test_health_shows_each_loop_s_tick_lateness_on_its_absolute_deadlines(
        server: tuple[LiveServer, dict[str, str]]) -> None:
    """A loop kept from its tick (its lock held, as a slow command or a person's change would) starts it
    late by that much; the next deadline is the old grid's, and a whole missed tick is skipped, not
    run twice in a burst. `ticksSince` narrows the figures to the ticks after an earlier `tickSeq`."""
    live, tokens = server
    runtime, tech = live.runtime, as_(tokens["technician"])
    clock = runtime.clock
    assert isinstance(clock, ManualClock) and clock.monotonic() == 0.0  # both loops' grids start at 0 s
    services = runtime.controllers
    first = (await live.http.get("/api/os/health", headers=tech)).json()["controllers"]
    assert set(first["loops"]) == {"mlt_rims", "bk_element"}
    assert first["loops"]["mlt_rims"]["periodS"] == 0.4  # a tenth of its 4 s period
    since = first["tickSeq"]
    before = first["loops"]["mlt_rims"]["ticksTotal"]
    async with services._locks["mlt_rims"]:  # mlt_rims wakes at 0.4 s and waits; bk_element ticks on
        await clock.advance(1.5)
    # released at 1.5 s: the 0.4 s tick starts 1.1 s late; 0.8 s is then 0.7 s (over one tick) behind,
    # so it is skipped and 1.2 s runs at once (0.3 s late); 1.6 s is back on the grid (on time)
    await wait_for(lambda: services.timings["mlt_rims"].ticks >= before + 2)
    await clock.advance(0.2)
    await wait_for(lambda: services.timings["mlt_rims"].ticks >= before + 3)
    window = (await live.http.get(f"/api/os/health?ticksSince={since}", headers=tech)).json()["controllers"]
    rims, kettle = window["loops"]["mlt_rims"], window["loops"]["bk_element"]
    late = [ms for seq, ms in services.timings["mlt_rims"].recent if seq > since]
    assert late == pytest.approx([1100.0, 300.0, 0.0]) and rims["skippedTotal"] == 1
    assert rims["ticks"] == 3 and rims["lateMaxMs"] == pytest.approx(1100.0)
    assert rims["lateP50Ms"] == pytest.approx(300.0) and rims["lateP99Ms"] == pytest.approx(1100.0)
    assert kettle["ticks"] == 4 and kettle["lateMaxMs"] == 0.0 and kettle["skippedTotal"] == 0  # 0.4 … 1.6 s
    everything = (await live.http.get("/api/os/health", headers=tech)).json()["controllers"]
    assert everything["since"] is None and everything["loops"]["mlt_rims"]["ticks"] == rims["ticksTotal"]
    bad = await live.http.get("/api/os/health?ticksSince=-1", headers=tech)
    assert bad.status_code == 422 and bad.json()["field"] == "ticksSince"
