"""Browser tests: Debian's Chromium (Playwright) against `python main.py` in a subprocess.

Each test gets its own server on a free port with its own SQLite file; `restart()` stops it and
starts it again on the same port and database, as a power cut or an update would.
Screenshots go to test-artifacts/; with BEVFORGE_DOC_IMAGES=1 (`make doc-images`) they are also
copied to docs/img/ for docs/operator.md, so an ordinary test run leaves the working tree as it was.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Page

from drivers.sim.ports import use_simulator_ports
from tests.support.server import PLANT_FIXTURE, config_document, free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DOC_IMAGES = ROOT / "docs" / "img"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]  # as a kiosk panel is started: the alarm tone
VIEWPORT = {"width": 1280, "height": 800}  # the 10" kiosk by the kettles: what the tests see, what the docs show


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return {"executable_path": "/usr/bin/chromium", "args": CHROMIUM_ARGS, "headless": True}


class ServerProcess:
    """`python main.py --config FILE --port N --db sqlite:///…` as the operator would run it, on the tests'
    fixture brewhouse unless given another config file."""

    def __init__(self, port: int, db_path: Path, log_path: Path, config_path: Path | None = None,
                 token: str | None = None) -> None:
        self.port = port
        self.db_path = db_path
        self.log_path = log_path
        self.config_path = config_path or PLANT_FIXTURE
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.base_url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST" and not k.startswith("NICEGUI_")}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "main.py", "--port", str(self.port), "--db", f"sqlite:///{self.db_path}",
             "--log-level", "warning", "--config", str(self.config_path)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Up, and every device has delivered a good value of the endpoints the tests use."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                endpoints = httpx.get(f"{self.base_url}/api/os/endpoints", headers=self.headers, timeout=2).json()
                quality = {e["endpointId"]: e["quality"] for e in endpoints}
                if all(quality.get(i) == "good" for i in (10, 11, 22, 23, 31, 32)):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def post(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(f"{self.base_url}{path}", json=body, headers=self.headers, timeout=5)

    def get(self, path: str) -> Any:
        return httpx.get(f"{self.base_url}{path}", headers=self.headers, timeout=5).json()


HLT_TEMPERATURE_GATEWAY, BK_TEMPERATURE_GATEWAY = 15, 38


def temperatures_from_a_gateway(doc: dict[str, Any]) -> None:
    """Second HLT and BK probes fed by a gateway over the ingest API, carrying the HLT and BK alarms.

    A test cannot write the controllers' own probes (readings have one owner: their device), so the
    alarm flows are driven through these externally fed twins; the tiles still show the devices.
    """
    for eid, name, node, rule in ((HLT_TEMPERATURE_GATEWAY, "hlt", "HLT", "hlt_temperature_hihi"),
                                  (BK_TEMPERATURE_GATEWAY, "bk", "BK", "bk_temperature_hi")):
        doc["endpoints"].append({"id": eid, "name": f"{name}_temperature_gateway", "label": f"{node} temperature",
                                 "node": node, "source": "external", "kind": "temperature", "unit": "°C",
                                 "range": {"min": -10, "max": 120}, "poll_interval_s": 3600})
        next(a for a in doc["alarms"] if a["id"] == rule)["endpoint"] = eid


def fermenter_probes_from_a_gateway(doc: dict[str, Any]) -> None:
    """FV1's and FV2's probes fed over the ingest API instead of the serial probe (which is removed)."""
    for endpoint in doc["endpoints"]:
        if endpoint["id"] in (50, 60):
            endpoint.pop("device")
            endpoint.pop("address")
            endpoint["source"] = "external"
    doc["devices"] = [d for d in doc["devices"] if d["id"] != "cellar_probe"]


def dry_run_protection(doc: dict[str, Any]) -> None:
    """Pump 2 protected against running its source dry, as the shipped config.yaml words it: it may
    run only while the mash tun holds more than 2 L (the tun starts empty), and a trip is a high alarm."""
    doc["interlocks"].append({"id": "pump_2_dry_run", "target": 35, "requires": [
        {"endpoint": 21, "op": ">", "value": 2}],
        "reason": "Pump 2 may run only while the MLT holds more than 2 L (dry-run protection)"})
    doc["alarms"].append({"id": "pump_2_dry_run_trip", "kind": "interlock_trip", "interlock": "pump_2_dry_run",
                          "priority": "high",
                          "message": "Pump 2 stopped: the mash tun is empty (dry-run protection)"})


MASH_LOW_ON_DELAY_S = 5


def short_mash_low_on_delay(doc: dict[str, Any]) -> None:
    """`mlt_temperature_lo` (suppressed by design while the tun is empty) with a 5 s on-delay instead of
    30 s, so a browser test sees it annunciate after a mash-in without waiting half a minute."""
    next(a for a in doc["alarms"] if a["id"] == "mlt_temperature_lo")["on_delay_s"] = MASH_LOW_ON_DELAY_S


E2E_CONFIGS = {"temperatures_from_a_gateway": temperatures_from_a_gateway,
               "fermenter_probes_from_a_gateway": fermenter_probes_from_a_gateway,
               "dry_run_protection": dry_run_protection,
               "short_mash_low_on_delay": short_mash_low_on_delay}


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """The default brewhouse; `@pytest.mark.parametrize("server", [NAME], indirect=True)` adjusts its config."""
    doc = config_document()
    adjust = E2E_CONFIGS.get(getattr(request, "param", ""))
    if adjust is not None:
        adjust(doc)
    # The simulator on a free port and its own pty, so another server on the machine cannot make it fail to start.
    use_simulator_ports(doc, free_port(), str(tmp_path / "probe"))
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    proc = ServerProcess(free_port(), tmp_path / "bevforge.db", tmp_path / "server.log", config_path)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


PASSWORD = "brew-day-2026"


def admin_cli(config: Path, db_path: Path, *args: str, password: str | None = None) -> str:
    """`python main.py user …` / `token …` as the technician would run it; returns what it printed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST" and not k.startswith("NICEGUI_")}
    done = subprocess.run([sys.executable, "main.py", *args, "--config", str(config), "--db", f"sqlite:///{db_path}"],
                          cwd=ROOT, env=env, input=(password + "\n") if password else None, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def secured_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """`auth: {mode: required}`, users created first with the CLI, an admin API token for checks."""
    doc = config_document()
    doc["auth"] = {"mode": "required"}
    use_simulator_ports(doc, free_port(), str(tmp_path / "probe"))
    config = tmp_path / "plant.yaml"
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    yield from signed_in_server(tmp_path, config, {"brewer": "operator", "tess": "technician"})


def signed_in_server(tmp_path: Path, config: Path, users: dict[str, str]) -> Iterator[ServerProcess]:
    """The server on `config` (sign-in required), each user made first with the CLI (password PASSWORD)
    and an admin API token for the tests' own checks; stopped when the generator is closed."""
    db_path = tmp_path / "bevforge.db"
    for name, role in users.items():
        admin_cli(config, db_path, "user", "add", name, "--role", role, "--password-stdin", password=PASSWORD)
    token = admin_cli(config, db_path, "token", "create", "checks", "--role", "admin").strip().splitlines()[-1]
    proc = ServerProcess(free_port(), db_path, tmp_path / "server.log", config, token)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def screen(browser: Browser, server: ServerProcess) -> Iterator[Any]:
    """Open a fresh browser context (a separate operator station) on a page of the server."""
    contexts = []

    def open_page(path: str = "/") -> Page:
        context = browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        page = context.new_page()
        page.goto(server.base_url + path)
        page.locator("#bf-connection[data-state=online]").wait_for(timeout=10_000)
        return page

    yield open_page
    for context in contexts:
        context.close()


def snapshot(page: Page, name: str) -> Path:
    """Save a screenshot as a test artifact (and, when asked, as the picture docs/operator.md shows)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    if os.environ.get("BEVFORGE_DOC_IMAGES") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / f"{name}.png")
    return path
