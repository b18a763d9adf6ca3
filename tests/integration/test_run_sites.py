"""`make run-sites` (scripts/run_sites.py) from outside, as a user types it: a broker, two simulated sites and a
central panel come up, the centre shows both sites live, and one SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bevforge.central import ID_BLOCK
from tests.support.server import ROOT, free_port

pytestmark = pytest.mark.slow

HLT_TEMPERATURE = 10  # in the shipped config.yaml


def test_run_sites_brings_up_a_broker_two_sites_and_a_centre_that_shows_both(tmp_path: Path) -> None:
    centre = free_port()
    while free_port() in (centre + 1, centre + 2):  # the sites take the next two ports
        centre = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST", "BEVFORGE_CONFIG")}
    runner = subprocess.Popen(
        [sys.executable, "scripts/run_sites.py", "--centre-port", str(centre), "--broker-port", str(free_port()),
         "--modbus-port", str(free_port()), "--data-dir", str(tmp_path)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        health = wait_for_both_sites(f"http://127.0.0.1:{centre}", runner)
        assert {d["deviceId"] for d in health["drivers"]} == {"site_brewhouse", "site_cellar"}
        for n in (1, 2):
            endpoint = httpx.get(f"http://127.0.0.1:{centre}/api/os/endpoints/{n * ID_BLOCK + HLT_TEMPERATURE}",
                                 timeout=5).json()
            assert endpoint["quality"] == "good" and isinstance(endpoint["value"], float)
        site = httpx.get(f"http://127.0.0.1:{centre + 1}/api/os/health", timeout=5).json()
        assert site["mqtt"]["connected"] is True
    finally:
        runner.send_signal(signal.SIGTERM)
        code = runner.wait(60)
        stderr = runner.stderr.read().decode() if runner.stderr else ""
    assert code == 0, stderr
    for port in (centre, centre + 1, centre + 2):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/api/os/health", timeout=2)


def wait_for_both_sites(base: str, runner: subprocess.Popen[bytes], timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert runner.poll() is None, runner.stderr.read().decode() if runner.stderr else ""
        try:
            health = httpx.get(f"{base}/api/os/health", timeout=2).json()
            drivers = health.get("drivers", [])
            if len(drivers) == 2 and all(d["online"] for d in drivers):
                return health
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError("the centre did not show both sites online in time")
