"""Browser tests: Debian's Chromium (Playwright) against `python main.py` in a subprocess.

Each test gets its own server on a free port with its own SQLite file; `restart()` stops it and
starts it again on the same port and database, as a power cut or an update would. A module whose
tests only look at the plant, or put back what they change, shares one (`shared_server` and
`at_rest`): a server start is ~5 s, most of a short browser test. Chromium is launched once per
pytest process (pytest-playwright's session-scoped `browser`); every test opens its own context.
Every server and simulator takes free ports and its own temporary directory, so `make test-e2e`
runs the files on two pytest-xdist workers.
Screenshots go to test-artifacts/; with BEVFORGE_DOC_IMAGES=1 (`make doc-images`) they are also
copied to docs/img/ for docs/operator.md, so an ordinary test run leaves the working tree as it was.
"""

from __future__ import annotations

import contextlib
import io
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
from main import main as cli_main
from tests.support.server import PLANT_FIXTURE, config_document, free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DOC_IMAGES = ROOT / "docs" / "img"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]  # as a kiosk panel is started: the alarm tone
VIEWPORT = {"width": 1280, "height": 800}  # the 10" kiosk by the kettles: what the tests see, what the docs show


# Under pytest-xdist (`make test-e2e`: `-n 2 --dist loadfile --no-loadscope-reorder`) the files are handed out
# in this order, the longest first (from `--durations=0` on this 2-core machine), so that no long file is left to
# run alone at the end while the other worker idles. A file not listed goes last.
LONGEST_FIRST = [
    "test_brew_day.py",  # a whole brew day at 120×, the longest test
    "test_control_panel.py",  # 9 tests, a fresh server each (they stop, freeze and drive the plant)
    "test_alarm_cases.py",  # filling and emptying the mash tun in real time
    "test_mimic.py",
    "test_controller_faceplate.py",  # FV1 settling at a new setpoint at 40×
    "test_trends.py",
    "test_auth_alarms.py",
    "test_notifications_screen.py",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The browser files longest first under pytest-xdist (`LONGEST_FIRST`); a plain run keeps the collection
    order. Stable: each file's tests keep their order, and every worker sorts alike."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


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
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the process and return at once; `wait_ready` waits for it (meanwhile another test may run)."""
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST" and not k.startswith("NICEGUI_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "main.py", "--port", str(self.port), "--db", f"sqlite:///{self.db_path}",
                 "--log-level", "warning", "--config", str(self.config_path)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

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


def launched_brewhouse(directory: Path, config_name: str = "") -> ServerProcess:
    """The default brewhouse, adjusted by `E2E_CONFIGS[config_name]` if named, its files in `directory`:
    launched, not yet ready (`wait_ready`)."""
    doc = config_document()
    adjust = E2E_CONFIGS.get(config_name)
    if adjust is not None:
        adjust(doc)
    # The simulator on a free port and its own pty, so another server on the machine cannot make it fail to start.
    use_simulator_ports(doc, free_port(), str(directory / "probe"))
    config_path = directory / "config.yaml"
    config_path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    proc = ServerProcess(free_port(), directory / "bevforge.db", directory / "server.log", config_path)
    proc.launch()
    return proc


def ready_until_closed(proc: ServerProcess) -> Iterator[ServerProcess]:
    """`proc` once ready; stopped when the generator is closed (also when it never became ready)."""
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


# A server start is ~5 s of a browser test that is often not much longer. So while a test runs, the brewhouse
# of the next test in its file that takes `server` is already starting: a fresh one, launched for that test
# alone and handed to it only (by node id). Within the same file only: under `--dist loadfile` a file runs
# whole on one worker, in order. One left over (the run stopped early) is stopped at the end of the session.
_booting: dict[str, ServerProcess] = {}


def boot_the_next_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    items = request.session.items
    me = request.node
    if me not in items:
        return
    for item in items[items.index(me) + 1:]:
        if item.path != me.path:
            return
        if "server" in getattr(item, "fixturenames", ()):
            callspec = getattr(item, "callspec", None)
            name = callspec.params.get("server", "") if callspec is not None else ""
            if item.nodeid not in _booting:
                _booting[item.nodeid] = launched_brewhouse(tmp_path_factory.mktemp("brewhouse"), name)
            return


@pytest.fixture(autouse=True)
def _next_server_boots_meanwhile(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    """For a test without `server` (one that takes it starts its own first, then this)."""
    if "server" not in request.fixturenames:
        boot_the_next_server(request, tmp_path_factory)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    while _booting:
        _booting.popitem()[1].stop()


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A fresh default brewhouse (started while the test before ran, if that was in the same file);
    `@pytest.mark.parametrize("server", [NAME], indirect=True)` adjusts its config."""
    proc = _booting.pop(request.node.nodeid, None) or launched_brewhouse(tmp_path, getattr(request, "param", ""))
    boot_the_next_server(request, tmp_path_factory)
    yield from ready_until_closed(proc)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One default brewhouse for a module's tests that need no fresh plant: each takes it through `at_rest`
    (or leaves the plant as it found it), so the tests pass in any order."""
    yield from ready_until_closed(launched_brewhouse(tmp_path_factory.mktemp("shared-brewhouse")))


def at_rest(server: ServerProcess, outputs: tuple[tuple[int, Any], ...]) -> ServerProcess:
    """Put `outputs` (endpoint, value) back as a fresh plant has them, in that order (stop a pump before
    closing its valve: its interlock), each through the command pipeline as another station would, and
    wait until the device reads it back. Fails if an alarm stays active: a test left the plant otherwise
    than a fresh one, and the next test would not see what it expects."""
    for endpoint_id, value in outputs:
        if endpoint_value(server, endpoint_id) == value:
            continue
        answer = server.post("/api/os/command", {"endpointId": endpoint_id, "value": value})
        assert answer.status_code in (200, 201, 202) and answer.json()["status"] != "blocked", answer.text
        deadline = time.monotonic() + 10
        while endpoint_value(server, endpoint_id) != value:
            assert time.monotonic() < deadline, f"endpoint {endpoint_id} never read back {value!r}"
            time.sleep(0.05)
    # No alarm shows, as on a fresh plant. One that has returned to normal is acknowledged (a comms alarm of
    # a moment's stale input on a loaded machine); one still active is waited for, and is a failure if it stays.
    deadline = time.monotonic() + 15
    while shown := server.get("/api/os/alarms"):
        assert time.monotonic() < deadline, f"the shared plant is not at rest: {shown}"
        for alarm in shown:
            if not alarm["active"] and not alarm["acked"]:
                server.post(f"/api/os/alarms/{alarm['alarmId']}/ack", {"comment": "the shared plant put back at rest"})
        time.sleep(0.1)
    return server


def endpoint_value(server: ServerProcess, endpoint_id: int) -> Any:
    return next(e for e in server.get("/api/os/endpoints") if e["endpointId"] == endpoint_id)["value"]


PASSWORD = "brew-day-2026"


def admin_cli(config: Path, db_path: Path, *args: str, password: str | None = None) -> str:
    """`python main.py user …` / `token …` with the technician's arguments; returns what it printed.

    Run in this process (`main.main`, the same dispatch as the command line): a fresh interpreter for
    each user would be ~2 s of imports per call, three calls per signed-in server. The command line as a
    process is tested in tests/integration/test_auth.py (`test_cli_manages_users_and_tokens`)."""
    out, err = io.StringIO(), io.StringIO()
    stdin = sys.stdin
    sys.stdin = io.StringIO((password + "\n") if password else "")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main([*args, "--config", str(config), "--db", f"sqlite:///{db_path}"])
    finally:
        sys.stdin = stdin
    assert code == 0, err.getvalue()
    return out.getvalue()


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


# Resolves once the fonts are in and the header's height and the page's size have stayed the same for five
# frames running. The header's height reaches the drawing's CSS through a ResizeObserver, a frame or two
# later; a measurement taken before that sees the sizes of the moment before.
LAYOUT_SETTLED = """() => new Promise((done) => document.fonts.ready.then(() => {
  let last = "", same = 0;
  const frame = () => {
    const page = document.scrollingElement;
    const now = [document.querySelector('.q-header').getBoundingClientRect().height, page.scrollHeight,
                 page.scrollWidth, page.clientWidth].join();
    same = now === last ? same + 1 : 0;
    last = now;
    if (same >= 5) done(); else requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}))"""


def settle_layout(page: Page) -> None:
    """Wait until the page's layout has settled (`LAYOUT_SETTLED`), not for a fixed time."""
    page.evaluate(LAYOUT_SETTLED)


def snapshot(page: Page, name: str) -> Path:
    """Save a screenshot as a test artifact (and, when asked, as the picture docs/operator.md shows)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    if os.environ.get("BEVFORGE_DOC_IMAGES") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / f"{name}.png")
    return path
