"""`GET /metrics` (issue 18.4): scraped over real HTTP from a server polling the real Modbus simulator, parsed
with prometheus-client's own text parser; the figures move with what the plant does, and a scrape from
where it may not come is refused in the one error format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bevforge.config import MetricsSettings
from tests.support.live import custom_server, ingest, required, sse, ws_client
from tests.support.server import LiveServer, wait_for, wait_for_command

BK_HEATER, HLT_TEMP, HLT_SETPOINT, V1 = 31, 10, 12, 22
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(server: LiveServer, headers: dict[str, str] | None = None) -> Samples:
    """Every sample of a scrape, by (sample name, labels)."""
    answer = await server.http.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scraped_until(server: LiveServer, name: str, wanted: Callable[[float], bool] | float,
                        **labels: str) -> None:
    """Scrape until `name{labels}` reads `wanted` (or passes it, a test): the server moves its figures on its
    own tasks (the next poll, a closed client forgotten)."""
    test = wanted if callable(wanted) else (lambda v: v == wanted)
    async with asyncio.timeout(10):
        while True:
            if test(value(await scrape(server), name, **labels)):
                return
            await asyncio.sleep(0.01)  # one scrape per turn: the figure is the server's, not an event here


async def test_a_scrape_counts_polls_comms_commands_and_the_history_writer(server: LiveServer) -> None:
    first = await scrape(server)
    assert value(first, "bevforge_device_up", device="hlt_controller", driver="modbus") == 1
    polls = value(first, "bevforge_device_poll_duration_seconds_count", device="hlt_controller")
    assert polls > 0  # the driver polled the simulator before the server was up
    assert value(first, "bevforge_device_poll_duration_seconds_bucket", device="hlt_controller", le="+Inf") == polls
    assert value(first, "bevforge_device_poll_errors_total", device="hlt_controller") == 0
    assert value(first, "bevforge_device_poll_duration_seconds_count", device="cellar_probe") > 0  # serial, too
    assert value(first, "bevforge_command_latency_seconds_count", result="succeeded") == 0
    assert value(first, "bevforge_command_latency_seconds_count", result="blocked") == 0
    assert ("process_cpu_seconds_total", frozenset()) in first  # the process collector is registered

    opened = await server.http.post("/api/os/command", json={"endpointId": V1, "value": True})
    assert (await wait_for_command(server, opened.json()["commandId"]))["status"] == "succeeded"
    refused = await server.http.post("/api/os/command", json={"endpointId": BK_HEATER, "value": True})
    assert refused.json()["status"] == "blocked"
    await server.runtime.history_writer.flush()

    after = await scrape(server)
    assert value(after, "bevforge_command_latency_seconds_count", result="succeeded") == 1
    assert value(after, "bevforge_command_latency_seconds_sum", result="succeeded") > 0
    assert value(after, "bevforge_command_latency_seconds_count", result="blocked") == 1
    assert value(after, "bevforge_command_latency_seconds_count", result="timeout") == 0
    await scraped_until(server, "bevforge_device_poll_duration_seconds_count", lambda n: n > polls,
                        device="hlt_controller")  # its next poll
    assert value(after, "bevforge_history_flush_duration_seconds_count") >= 1
    assert value(after, "bevforge_history_rows_written_total") > 0
    assert ("bevforge_history_queue_rows", frozenset()) in after


async def test_a_failed_command_is_timed_under_its_kind_of_failure(server: LiveServer) -> None:
    server.sim.faults_for("hlt_controller").write_delay_s = 2.0  # longer than commands.write_timeout_s (0.5 s)
    sent = await server.http.post("/api/os/command", json={"endpointId": HLT_SETPOINT, "value": 70})
    assert (await wait_for_command(server, sent.json()["commandId"]))["error"].startswith("timeout")
    samples = await scrape(server)
    assert value(samples, "bevforge_command_latency_seconds_count", result="timeout") == 1
    assert value(samples, "bevforge_command_latency_seconds_sum", result="timeout") >= 0.5  # it waited the timeout
    assert value(samples, "bevforge_command_latency_seconds_bucket", result="timeout", le="0.25") == 0
    assert value(samples, "bevforge_command_latency_seconds_count", result="succeeded") == 0


async def test_poll_errors_and_comms_loss_of_a_silent_device_are_counted(server: LiveServer) -> None:
    server.sim.faults_for("hlt_controller").offline = True
    await wait_for(lambda: not server.runtime.plant.device_online["hlt_controller"])
    samples = await scrape(server)
    assert value(samples, "bevforge_device_up", device="hlt_controller", driver="modbus") == 0
    assert value(samples, "bevforge_device_poll_errors_total", device="hlt_controller") >= 1
    assert value(samples, "bevforge_device_up", device="bk_controller", driver="modbus") == 1


async def test_alarm_points_are_counted_by_state_and_priority(server: LiveServer) -> None:
    before = await scrape(server)
    assert value(before, "bevforge_alarms", state="unacknowledged", priority="critical") == 0
    assert value(before, "bevforge_alarms", state="normal", priority="critical") >= 1  # hlt_temperature_hihi
    server.sim.model.vessels["hlt"].temperature_c = 101.0  # over the HIHI limit of 99 (a critical alarm)
    await ingest(server, HLT_TEMP, 101.0)  # as the next poll will read it
    points = server.runtime.alarms.points
    await wait_for(lambda: points["hlt_temperature_hihi"].state.display.value == "unacknowledged")
    after = await scrape(server)
    # the simulated vessel may cool back under the limit before the scrape: then the alarm has returned to
    # normal but still waits for its acknowledgement (rtn_unacknowledged); either way it is one unacknowledged
    unacknowledged = sum(value(after, "bevforge_alarms", state=state, priority="critical")
                         for state in ("unacknowledged", "rtn_unacknowledged"))
    assert unacknowledged == 1
    assert value(after, "bevforge_alarms", state="normal", priority="critical") == \
        value(before, "bevforge_alarms", state="normal", priority="critical") - 1
    every = {labels: n for (name, labels), n in after.items() if name == "bevforge_alarms"}
    assert sum(every.values()) == len(server.runtime.alarms.points)  # each point counted once


async def test_the_client_gauges_follow_real_websocket_and_sse_clients(server: LiveServer) -> None:
    base = await scrape(server)
    assert value(base, "bevforge_ws_clients") == 0
    assert value(base, "bevforge_sse_clients") == 0
    assert value(base, "bevforge_ui_clients") == 0  # no screens on this app
    async with ws_client(server):
        assert value(await scrape(server), "bevforge_ws_clients") == 1
        async with ws_client(server):
            assert value(await scrape(server), "bevforge_ws_clients") == 2
        await scraped_until(server, "bevforge_ws_clients", 1)
    await scraped_until(server, "bevforge_ws_clients", 0)
    async with sse(server):
        assert value(await scrape(server), "bevforge_sse_clients") == 1
    await scraped_until(server, "bevforge_sse_clients", 0)


# -- who may scrape --------------------------------------------------------------------------------------


def locked(role: str = "technician") -> Any:
    """Sign-in required, no address may scrape without a credential, at least `role`."""
    def adjust(doc: dict[str, Any]) -> None:
        required()(doc)
        doc["metrics"] = {"allow_from": [], "role": role}
    return adjust


@pytest.fixture
async def locked_server(tmp_path: Path) -> AsyncIterator[tuple[LiveServer, dict[str, str]]]:
    async with custom_server(tmp_path, locked()) as server:
        auth = server.runtime.auth
        tokens = {role: auth.create_token(f"{role}-scraper", role, None, "test")[1]
                  for role in ("viewer", "technician", "admin")}
        tokens["hlt-admin"] = auth.create_token("hlt-only", "admin", ["HLT"], "test")[1]
        yield server, tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_scrape_off_the_allow_list_needs_a_credential_of_the_role(
        locked_server: tuple[LiveServer, dict[str, str]]) -> None:
    server, tokens = locked_server
    anonymous = await server.http.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "unauthorized" and "metrics" in anonymous.json()["message"]
    unknown = await server.http.get("/metrics", headers=bearer("not-a-token"))
    assert unknown.status_code == 401
    too_low = await server.http.get("/metrics", headers=bearer(tokens["viewer"]))
    assert too_low.status_code == 403 and too_low.json()["error"] == "forbidden"
    node_limited = await server.http.get("/metrics", headers=bearer(tokens["hlt-admin"]))
    assert node_limited.status_code == 403 and "node" in node_limited.json()["message"]
    for role in ("technician", "admin"):
        samples = await scrape(server, bearer(tokens[role]))
        assert value(samples, "bevforge_device_up", device="hlt_controller", driver="modbus") == 1


async def test_the_allow_list_lets_a_local_scraper_in_without_credentials(tmp_path: Path) -> None:
    async with custom_server(tmp_path, required()) as server:  # the default metrics: section, sign-in required
        assert (await server.http.get("/api/os/endpoints")).status_code == 401  # the API itself is closed
        samples = await scrape(server)  # 127.0.0.1 is on the default allow-list
        assert value(samples, "bevforge_device_up", device="bk_controller", driver="modbus") == 1
        rt = server.runtime
        rt.config = rt.config.model_copy(update={"metrics": MetricsSettings(allow_from=["10.0.0.0/8"])})
        assert (await server.http.get("/metrics")).status_code == 401  # as a live reload would apply it
        rt.config = rt.config.model_copy(update={"metrics": MetricsSettings(enabled=False)})
        off = await server.http.get("/metrics")
        assert off.status_code == 404 and off.json()["error"] == "not_found"
