"""Fault injection on a live server: one device dead, one answering with exception codes, one slow,
one healthy — at the same time. The app keeps serving the healthy device and every screen's data,
marks and alarms what is wrong, and recovers by itself when the faults are switched off.

The in-process simulator's switches stand in for the field faults: `offline` (device gone, port
closed: no answer at all), `reject_writes` (Modbus exception code), `write_delay_s` (slow answers),
`ignore_writes` (acked, not applied). The per-protocol faults of the Modbus/serial simulator
(corrupted serial lines, a vanished port) are tested with those drivers (issue 5).
"""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.support.server import LiveServer, wait_for, wait_for_command

CELLAR = ("cellar_io", [51, 61])  # the glycol valves' I/O module goes offline
HLT_SETPOINT = 12  # hlt_controller: exception codes, then slow answers
V1, LEVEL = 22, 13  # brewhouse_io: healthy throughout
FV1_GLYCOL = 51
SCREENS = ["/api/os/tiles", "/api/os/endpoints", "/api/os/alarms", "/api/os/alarms/summary", "/api/os/interlocks",
           "/api/os/commands", "/api/os/health", f"/api/os/telemetry?endpointId={LEVEL}&limit=50",
           "/api/os/alarms/history?limit=50", "/api/os/alarms/definitions"]


async def command(server: LiveServer, endpoint_id: int, value: object) -> dict:
    answer = await server.http.post("/api/os/command", json={"endpointId": endpoint_id, "value": value})
    if answer.status_code != 202:
        return answer.json() | {"httpStatus": answer.status_code}
    return await wait_for_command(server, answer.json()["commandId"], timeout=15)


async def fresh_good_reading(server: LiveServer, endpoint_id: int) -> None:
    state = server.runtime.plant.states[endpoint_id]
    seen = state.seq
    await wait_for(lambda: state.seq > seen + 1 and state.quality.value == "good", timeout=10)


async def every_screen_answers(server: LiveServer) -> dict[str, object]:
    answers = {}
    for path in SCREENS:
        r = await server.http.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        answers[path] = r.json()
    return answers


def comms_alarm(alarms: list[dict], device: str) -> dict | None:
    return next((a for a in alarms if a["kind"] == "comms" and a["ruleId"].endswith(device) and a["active"]), None)


@pytest.mark.slow  # a fault campaign on three devices: ~20 s
async def test_faults_on_three_devices_leave_the_fourth_and_every_screen_serving(server: LiveServer) -> None:
    sim, runtime = server.sim, server.runtime
    async with websockets.connect(server.ws_url) as ws:
        await ws.recv()  # connected
        await ws.send(json.dumps({"type": "subscribe", "channel": "telemetry", "endpointIds": [LEVEL, V1]}))

        # -- inject ------------------------------------------------------------------------------
        sim.faults_for(CELLAR[0]).offline = True
        sim.faults_for("hlt_controller").reject_writes = "exception 04: slave device failure"
        await wait_for(lambda: not runtime.plant.device_online[CELLAR[0]], timeout=10)

        # the dead device is marked bad (no value shown) and alarmed
        answers = await every_screen_answers(server)
        endpoints = {e["endpointId"]: e for e in answers["/api/os/endpoints"]}
        for endpoint_id in CELLAR[1]:
            assert endpoints[endpoint_id]["quality"] == "bad" and endpoints[endpoint_id]["value"] is None
            assert "offline" in endpoints[endpoint_id]["error"]
        alarm = comms_alarm(answers["/api/os/alarms"], CELLAR[0])
        assert alarm is not None and alarm["priority"] in ("high", "critical"), answers["/api/os/alarms"]
        assert answers["/api/os/alarms/summary"]["standing"] >= 1

        # commands: blocked for the dead device, failed with the exception for the faulty one, done elsewhere
        blocked = await command(server, FV1_GLYCOL, True)
        assert blocked["httpStatus"] == 409 and "offline" in json.dumps(blocked)
        failed = await command(server, HLT_SETPOINT, 66)
        assert failed["status"] == "failed" and "04" in failed["error"]
        assert (await command(server, V1, True))["status"] == "succeeded"

        # the healthy device keeps streaming fresh good values, live on /ws too
        await fresh_good_reading(server, LEVEL)
        async with asyncio.timeout(10):
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("type") == "telemetry" and frame["endpointId"] == LEVEL and not frame.get("snapshot"):
                    assert frame["quality"] == "good"
                    break

        # slow answers: the write times out, the device is not declared dead for it, others unaffected
        sim.faults_for("hlt_controller").reject_writes = None
        sim.faults_for("hlt_controller").write_delay_s = 2.0
        slow = await command(server, HLT_SETPOINT, 67)
        assert slow["status"] == "failed" and slow["error"].startswith("timeout")
        assert (await command(server, V1, False))["status"] == "succeeded"
        await fresh_good_reading(server, 10)  # the slow device's readings still arrive

        # acked but not applied: the readback catches it
        sim.faults_for("hlt_controller").write_delay_s = 0.0
        sim.faults_for("hlt_controller").ignore_writes = True
        unapplied = await command(server, HLT_SETPOINT, 68)
        assert unapplied["status"] == "failed" and unapplied["error"].startswith("mismatch")

        # -- switch the faults off: recovery without anyone touching the app ------------------------
        sim.faults_for("hlt_controller").ignore_writes = False
        sim.faults_for(CELLAR[0]).offline = False
        await wait_for(lambda: runtime.plant.device_online[CELLAR[0]], timeout=10)
        await wait_for(lambda: all(runtime.plant.states[e].quality.value == "good" for e in CELLAR[1]), timeout=10)
        answers = await every_screen_answers(server)
        assert comms_alarm(answers["/api/os/alarms"], CELLAR[0]) is None
        endpoints = {e["endpointId"]: e for e in answers["/api/os/endpoints"]}
        assert all(endpoints[e]["value"] is not None for e in CELLAR[1])
        assert (await command(server, FV1_GLYCOL, True))["status"] == "succeeded"
        assert (await command(server, HLT_SETPOINT, 65))["status"] == "succeeded"


@pytest.mark.slow  # repeated drop / recover cycles: ~10 s
async def test_a_flapping_device_recovers_every_time(server: LiveServer) -> None:
    sim, runtime = server.sim, server.runtime
    device, endpoint_ids = CELLAR
    for _ in range(3):
        sim.faults_for(device).offline = True
        await wait_for(lambda: not runtime.plant.device_online[device], timeout=10)
        assert runtime.alarms.is_active(f"comms:{device}")
        sim.faults_for(device).offline = False
        await wait_for(lambda: runtime.plant.device_online[device], timeout=10)
        await wait_for(lambda: all(runtime.plant.states[e].quality.value == "good" for e in endpoint_ids), timeout=10)
        assert not runtime.alarms.is_active(f"comms:{device}")
        await fresh_good_reading(server, LEVEL)  # the healthy device never stopped
    assert (await command(server, FV1_GLYCOL, False))["status"] == "succeeded"
