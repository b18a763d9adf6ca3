"""`make run-sites` (scripts/run_sites.py) from outside, as a user types it: a broker, two simulated sites and a
central panel come up, the centre shows both sites live, and one SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bevforge.central import ID_BLOCK
from tests.support.server import ROOT

pytestmark = pytest.mark.slow

HLT_TEMPERATURE = 10  # in the shipped config.yaml


def test_run_sites_brings_up_a_broker_two_sites_and_a_centre_that_shows_both(tmp_path: Path) -> None:
    centre, broker, site_a, site_b, modbus_a, modbus_b = distinct_free_ports(6)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST", "BEVFORGE_CONFIG")}
    runner = subprocess.Popen(
        [sys.executable, "scripts/run_sites.py", "--centre-port", str(centre), "--broker-port", str(broker),
         "--site-ports", f"{site_a},{site_b}", "--modbus-ports", f"{modbus_a},{modbus_b}",
         "--data-dir", str(tmp_path)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        health = wait_for_both_sites(f"http://127.0.0.1:{centre}", runner)
        assert {d["deviceId"] for d in health["drivers"]} == {"site_brewhouse", "site_cellar"}
        for n in (1, 2):  # each site's retained values follow its status on the centre's subscription
            endpoint = wait_until_good(f"http://127.0.0.1:{centre}/api/os/endpoints/{n * ID_BLOCK + HLT_TEMPERATURE}",
                                       runner)
            assert isinstance(endpoint["value"], float)
        # a site publishes once its plant runs, which is before its own web server answers: wait for that
        site = wait_for_health(f"http://127.0.0.1:{site_a}", runner)
        assert site["mqtt"]["connected"] is True
    finally:
        runner.send_signal(signal.SIGTERM)
        code = runner.wait(60)
        stderr = runner.stderr.read().decode() if runner.stderr else ""
    assert code == 0, stderr
    for port in (centre, site_a, site_b):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/api/os/health", timeout=2)


def distinct_free_ports(count: int) -> list[int]:
    """`count` different free loopback ports (held open together while chosen, so none is chosen twice)."""
    held = [socket.socket() for _ in range(count)]
    try:
        for s in held:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def poll(url: str, runner: subprocess.Popen[bytes], done: Callable[[dict], bool], what: str,
         timeout: float = 90.0) -> dict:
    """GET `url` until its JSON satisfies `done` (while the runner lives); the JSON it ended on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert runner.poll() is None, runner.stderr.read().decode() if runner.stderr else ""
        try:
            answer = httpx.get(url, timeout=2)
            if answer.status_code == 200 and done(body := answer.json()):
                return body
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url}: {what} not seen in time")


def wait_until_good(url: str, runner: subprocess.Popen[bytes]) -> dict:
    return poll(url, runner, lambda endpoint: endpoint.get("quality") == "good", "quality good")


def wait_for_health(base: str, runner: subprocess.Popen[bytes]) -> dict:
    return poll(f"{base}/api/os/health", runner, lambda _health: True, "an answer")


def wait_for_both_sites(base: str, runner: subprocess.Popen[bytes]) -> dict:
    return poll(f"{base}/api/os/health", runner,
                lambda health: len(health.get("drivers", [])) == 2 and all(d["online"] for d in health["drivers"]),
                "both sites online")
