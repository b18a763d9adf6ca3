"""Floating hydrometers over real HTTP: an iSpindel's JSON and a Tilt app's form post reach their
endpoints through the driver like any device's readings (issue 18 point 2).

The runtime runs on a ManualClock, so a device that falls silent for hours goes offline in an instant.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bevforge.clock import ManualClock
from bevforge.domain import Quality, utcnow
from bevforge.runtime import Runtime
from drivers import driver_factories
from tests.support.live import ws_client
from tests.support.postgres import test_db_url
from tests.support.server import LiveServer, brewhouse_config, free_port, wait_for

ISPINDEL_TOKEN = "ispindel-token-4f9a1c2e7b"
TILT_TOKEN = "tilt-token-0d8e3b6a51c4"
INTERVAL_S = 900  # both post every 15 minutes


def hydrometers(doc: dict[str, Any]) -> None:
    doc["devices"] += [
        {"id": "fv1_ispindel", "driver": "ispindel", "name": "FV1 iSpindel",
         "settings": {"token_env": "BF_TEST_ISPINDEL_TOKEN", "gravity_unit": "SG"}},
        {"id": "fv2_tilt", "driver": "tilt", "name": "FV2 Tilt",
         "settings": {"token_file": doc.pop("_tilt_token_file"), "colour": "red", "gravity_unit": "SG",
                      "temperature_unit": "°F"}},
    ]
    common = {"poll_interval_s": INTERVAL_S}
    doc["endpoints"] += [
        {"id": 900, "name": "fv1_gravity", "node": "FV1", "device": "fv1_ispindel", "kind": "gravity", "unit": "°P",
         "address": {"reading": "gravity"}, **common},
        {"id": 901, "name": "fv1_hydrometer_temperature", "node": "FV1", "device": "fv1_ispindel",
         "kind": "temperature", "unit": "°F", "address": {"reading": "temperature"}, **common},
        {"id": 902, "name": "fv1_hydrometer_battery", "node": "FV1", "device": "fv1_ispindel", "kind": "status",
         "unit": "V", "address": {"reading": "battery"}, **common},
        {"id": 903, "name": "fv1_hydrometer_angle", "node": "FV1", "device": "fv1_ispindel", "kind": "status",
         "unit": "°", "address": {"reading": "angle"}, **common},
        {"id": 910, "name": "fv2_gravity", "node": "FV2", "device": "fv2_tilt", "kind": "gravity", "unit": "SG",
         "address": {"reading": "gravity"}, **common},
        {"id": 911, "name": "fv2_tilt_temperature", "node": "FV2", "device": "fv2_tilt", "kind": "temperature",
         "unit": "°C", "address": {"reading": "temperature"}, **common},
    ]
    doc["alarms"].append({"id": "fv1_gravity_stuck_high", "kind": "HI", "endpoint": 900, "limit": 15.0, "deadband": 0.2,
                          "priority": "medium", "message": "FV1 gravity {value:.1f}{unit} above {limit:g}{unit}"})


@pytest.fixture
async def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveServer]:
    monkeypatch.setenv("BF_TEST_ISPINDEL_TOKEN", ISPINDEL_TOKEN)
    token_file = tmp_path / "tilt.token"
    token_file.write_text(TILT_TOKEN + "\n", encoding="utf-8")

    def adjust(doc: dict[str, Any]) -> None:
        doc["_tilt_token_file"] = str(token_file)
        hydrometers(doc)

    config = brewhouse_config(adjust)
    clock = ManualClock()
    factories, sim = driver_factories(config, clock=clock)
    runtime = Runtime(config, test_db_url(tmp_path / "hydro.db"), factories, clock=clock)
    runtime.attachments["simulator"] = sim
    live = LiveServer(runtime, free_port())
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


def ispindel_body(**changes: Any) -> dict[str, Any]:
    """What the iSpindel firmware sends (its field names, Celsius, gravity from an SG formula)."""
    body = {"name": "iSpindel001", "ID": 12345678, "token": "", "angle": 52.3, "temperature": 20.0,
            "temp_units": "C", "battery": 3.91, "gravity": 1.048, "interval": INTERVAL_S, "RSSI": -71}
    body.update(changes)
    return body


def ispindel_url(token: str = ISPINDEL_TOKEN, device: str = "fv1_ispindel") -> str:
    return f"/api/hydrometers/ispindel/{device}/{token}"


async def test_ispindel_post_updates_gravity_and_temperature_live(server: LiveServer) -> None:
    async with ws_client(server) as ws:
        await ws.subscribe("telemetry", endpointIds=[900, 901])
        answer = await server.http.post(ispindel_url(), json=ispindel_body())
        assert answer.status_code == 200, answer.text
        frame = await ws.expect(lambda f: f["type"] == "telemetry" and f["endpointId"] == 900
                                and f.get("value") is not None)
        assert frame["quality"] == "good" and frame["value"] == pytest.approx(11.92, abs=0.05)  # 1.048 SG in °P
    gravity = (await server.http.get("/api/os/endpoints/900")).json()
    temperature = (await server.http.get("/api/os/endpoints/901")).json()
    battery = (await server.http.get("/api/os/endpoints/902")).json()
    assert gravity["quality"] == "good" and gravity["value"] == pytest.approx(11.92, abs=0.05)
    assert temperature["quality"] == "good" and temperature["value"] == pytest.approx(68.0)  # 20 °C in °F
    assert battery["value"] == pytest.approx(3.91)
    assert (await server.http.get("/api/os/endpoints/903")).json()["value"] == pytest.approx(52.3)
    assert server.runtime.plant.device_online["fv1_ispindel"] is True
    assert {r["endpointId"] for r in answer.json()["readings"]} == {900, 901, 902, 903}


async def test_gravity_drives_an_alarm_like_any_value(server: LiveServer) -> None:
    assert (await server.http.post(ispindel_url(), json=ispindel_body(gravity=1.070))).status_code == 200  # 17.1 °P
    alarms = (await server.http.get("/api/os/alarms")).json()
    raised = next(a for a in alarms if a.get("ruleId") == "fv1_gravity_stuck_high")
    assert raised["state"] == "unacknowledged" and "FV1 gravity 17.1°P" in raised["message"]


async def test_fahrenheit_and_plato_from_the_device_are_converted(server: LiveServer) -> None:
    server.runtime.drivers["fv1_ispindel"].gravity_unit = "°P"  # as `gravity_unit: °P` would set it
    answer = await server.http.post(ispindel_url(), json=ispindel_body(temperature=50.0, temp_units="F",
                                                                       gravity=12.0))
    assert answer.status_code == 200, answer.text
    states = server.runtime.plant.states
    assert states[900].value == pytest.approx(12.0)
    assert states[901].value == pytest.approx(50.0)


async def test_wrong_token_is_refused_with_401_and_never_echoed(server: LiveServer,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for url in (ispindel_url("wrong-token-wrong-token"), ispindel_url(ISPINDEL_TOKEN[:-1]),
                ispindel_url(ISPINDEL_TOKEN, device="no_such_device"), ispindel_url(ISPINDEL_TOKEN, device="fv2_tilt"),
                ispindel_url(ISPINDEL_TOKEN, device="hlt_controller")):
        answer = await server.http.post(url, json=ispindel_body())
        assert answer.status_code == 401, (url, answer.text)
        body = answer.json()
        assert body["error"] == "unauthorized" and body["field"] == "token"
        assert body["message"] == "device id or token not accepted"
    assert server.runtime.plant.states[900].value is None
    # the right token posted to the other kind's path: found, but told where to post
    wrong_kind = await server.http.post(f"/api/hydrometers/tilt/fv1_ispindel/{ISPINDEL_TOKEN}", json=ispindel_body())
    assert wrong_kind.status_code == 404 and wrong_kind.json()["field"] == "kind"
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert ISPINDEL_TOKEN not in ours and TILT_TOKEN not in ours  # (the test's own HTTP client logs its URLs)
    health = (await server.http.get("/api/os/health")).text
    assert ISPINDEL_TOKEN not in health and TILT_TOKEN not in health


@pytest.mark.parametrize(("content", "status", "field"), [
    (b"{not json", 400, "body"),
    (b"[1, 2]", 400, "body"),
    (b'{"name": "iSpindel001", "angle": 50, "temperature": 20, "battery": 3.9}', 422, "gravity"),
    (b'{"name": "iSpindel001", "angle": 50, "temperature": "warm", "battery": 3.9, "gravity": 1.05}', 422,
     "temperature"),
    (b'{"name": "iSpindel001", "angle": 50, "temperature": 20, "battery": 3.9, "gravity": true}', 422, "gravity"),
    (b'{"angle": 50, "temperature": 20, "battery": 3.9, "gravity": 1.05}', 422, "name"),
    (b'{"name": "x", "angle": 50, "temperature": 20, "temp_units": "R", "battery": 3.9, "gravity": 1.05}', 422,
     "temp_units"),
    (b'{"name": "x", "angle": 50, "temperature": 20, "battery": 3.9, "gravity": 1.05, "RSSI": "strong"}', 422,
     "RSSI"),
])
async def test_malformed_posts_get_4xx_naming_the_field(server: LiveServer, content: bytes, status: int,
                                                        field: str) -> None:
    answer = await server.http.post(ispindel_url(), content=content, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["field"] == field and body["error"] and body["message"]
    assert server.runtime.plant.states[900].value is None


async def test_tilt_app_form_post_updates_its_endpoints(server: LiveServer) -> None:
    url = f"/api/hydrometers/tilt/fv2_tilt/{TILT_TOKEN}"
    form = {"Color": "RED", "SG": "1.0505", "Temp": "68.0", "Timepoint": "45988.5", "Beer": "Pale Ale",
            "Comment": ""}
    answer = await server.http.post(url, data=form)  # the Tilt app posts a form, without any header of ours
    assert answer.status_code == 200, answer.text
    states = server.runtime.plant.states
    assert states[910].value == pytest.approx(1.0505) and states[910].quality is Quality.GOOD
    assert states[911].value == pytest.approx(20.0)
    # TiltPi's JSON works too; another colour is another Tilt
    assert (await server.http.post(url, json={"Color": "RED", "SG": 1.040, "Temp": 66.2})).status_code == 200
    assert states[910].value == pytest.approx(1.040) and states[911].value == pytest.approx(19.0)
    other = await server.http.post(url, data={**form, "Color": "BLUE"})
    assert other.status_code == 422 and other.json()["field"] == "Color"
    missing = await server.http.post(url, data={"Color": "RED", "Temp": "68"})
    assert missing.status_code == 422 and missing.json()["field"] == "SG"


async def test_a_silent_hydrometer_goes_stale_then_offline_and_back(server: LiveServer) -> None:
    runtime = server.runtime
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    assert (await server.http.post(ispindel_url(), json=ispindel_body())).status_code == 200
    state = runtime.plant.states[900]
    assert state.quality is Quality.GOOD
    # past stale_after (3 × the 15-minute interval) the value is no longer shown as live
    runtime.plant.sweep_stale(utcnow() + timedelta(seconds=3 * INTERVAL_S + 60))
    assert state.quality is Quality.UNCERTAIN
    # silent for 3 × stale_after of process time: the device is offline, its values BAD, a comms alarm up
    await clock.advance(9 * INTERVAL_S + 1)
    await wait_for(lambda: runtime.plant.device_online["fv1_ispindel"] is False)
    assert state.quality is Quality.BAD
    assert runtime.alarms.is_active("comms:fv1_ispindel")
    assert "no post for" in (state.error or "")
    # the next post brings it back
    assert (await server.http.post(ispindel_url(), json=ispindel_body(gravity=1.030))).status_code == 200
    assert state.quality is Quality.GOOD and runtime.plant.device_online["fv1_ispindel"] is True
