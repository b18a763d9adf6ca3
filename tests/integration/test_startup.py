"""Start-up and the admin CLI (issue 16.11): a port or path already in use is one line naming it and the
key or flag that moves it, never a traceback; a second copy never takes over another's pty link; the
`user`/`token` commands use the server's database and say which it is."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from bevforge.cli import parse_args
from bevforge.config import SimulatorSettings, parse_config
from drivers.sim.claims import InUse, LinkClaim
from drivers.sim.inprocess import SimulatedBrewhouse
from drivers.sim.ports import use_simulator_ports
from drivers.sim.protocol import ProtocolSimulator
from tests.support.process import ServerProcess
from tests.support.server import PLANT_FIXTURE, ROOT, config_document, free_port


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTEST_CURRENT_TEST", "DATABASE_URL", "BEVFORGE_DATA_DIR") and not k.startswith("NICEGUI_")}


def main_py(*args: str, cwd: Path = ROOT, extra_env: dict[str, str] | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, env={**env(), **(extra_env or {})},
                          capture_output=True, text=True, input=stdin, timeout=60)


def plant_file(tmp_path: Path, modbus_port: int, probe_link: str, **store: str) -> Path:
    doc = config_document()
    use_simulator_ports(doc, modbus_port, probe_link)
    if store:
        doc["store"] = store
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def present(link: Path) -> bool:
    return os.path.lexists(link)


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    """A port some other program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other


def test_a_taken_web_port_is_one_line_naming_the_flag(tmp_path: Path, listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    config = plant_file(tmp_path, free_port(), str(tmp_path / "probe"))
    done = main_py("--config", str(config), "--port", str(port), "--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"cannot start: web server: port {port} on 127.0.0.1 is already in use — choose another with --port N "
        "(or BEVFORGE_PORT), or stop the program that holds it"]
    assert not (tmp_path / "probe").exists(), "nothing was started"


def test_a_taken_simulator_port_names_simulator_modbus_port(tmp_path: Path, listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    config = plant_file(tmp_path, port, str(tmp_path / "probe"))
    done = main_py("--config", str(config), "--port", str(free_port()), "--data-dir", str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"Modbus TCP port {port} on 127.0.0.1 is already in use" in lines[0]
    assert f"simulator.modbus_port in {config}" in lines[0]


async def test_a_simulator_that_loses_the_race_for_its_port_says_which_and_holds_nothing(
        tmp_path: Path, listening: socket.socket) -> None:
    """Taken between the check and the start: `InUse` with the key, and its link claim released."""
    settings = SimulatorSettings(modbus_port=listening.getsockname()[1], probe_link=str(tmp_path / "probe"))
    simulator = ProtocolSimulator(SimulatedBrewhouse(), settings)
    with pytest.raises(InUse, match=r"simulator\.modbus_port"):
        await simulator.start()
    claim = LinkClaim(tmp_path / "probe", "simulator.probe_link")
    claim.take()  # free again
    claim.release()


async def test_a_second_copy_never_takes_over_the_running_copy_s_probe_link(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    first = ServerProcess(tmp_path / "first", auth={"mode": "none"})
    await first.start()
    try:
        link = Path(yaml.safe_load(first.config.read_text(encoding="utf-8"))["simulator"]["probe_link"])
        target = os.readlink(link)
        config = plant_file(tmp_path, free_port(), str(link))
        second = main_py("--config", str(config), "--port", str(free_port()), "--data-dir", str(tmp_path))
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert "simulator.probe_link" in second.stderr and "in use by another running simulated brewhouse" in \
            second.stderr
        assert os.readlink(link) == target, "the running copy's link is untouched"
    finally:
        await first.stop()
    assert not present(link), "the copy that made the link removes it when it stops"


def test_user_commands_use_the_database_the_server_would_and_say_which(tmp_path: Path) -> None:
    """From another folder, without --db: the config's store.database_url decides for both, and the
    command prints it; DATABASE_URL and --db come before it, as for the server."""
    in_config = tmp_path / "plant.db"
    config = plant_file(tmp_path, free_port(), str(tmp_path / "probe"), database_url=f"sqlite:///{in_config}")
    elsewhere = Path(tempfile.mkdtemp(dir=tmp_path))
    added = main_py("--config", str(config), "user", "add", "olga", "--role", "operator", "--password-stdin",
                    cwd=elsewhere, stdin="olga-secret-1\n")
    assert added.returncode == 0, added.stderr
    assert f"database: sqlite:///{in_config} (set by store.database_url in {config})" in added.stderr
    assert in_config.exists() and not list(elsewhere.iterdir())
    settings = parse_args(["--config", str(config)], env={})
    assert settings.database(parse_config(config.read_text(encoding="utf-8")))[0] == f"sqlite:///{in_config}"
    by_env = tmp_path / "env.db"
    listed = main_py("--config", str(config), "user", "list", extra_env={"DATABASE_URL": f"sqlite:///{by_env}"})
    assert "(set by DATABASE_URL)" in listed.stderr and "olga" not in listed.stdout
    default = parse_args(["--data-dir", "data"], env={}).database(parse_config(PLANT_FIXTURE.read_text()))
    assert default[0] == f"sqlite:///{(Path.cwd() / 'data' / 'bevforge.db')}" and "the default" in default[1]


async def test_the_first_admin_needs_the_setup_code_the_server_printed_on_its_console(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, auth={"mode": "required"})
    await server.start()
    try:
        printed = read(server.log)
        found = re.search(rf"http://127\.0\.0\.1:{server.port}/setup with the setup code ([A-Z0-9-]{{14}})", printed)
        assert found, printed
        async with httpx.AsyncClient(base_url=server.base_url, headers={"origin": server.base_url}) as http:
            guessed = await http.post("/setup", data={"code": "ABCD-EFGH-JKLM", "username": "root",
                                                      "password": "first-admin-1"})
            assert guessed.status_code == 303 and guessed.headers["location"].startswith("/setup?error=")
            made = await http.post("/setup", data={"code": found[1], "username": "root", "password": "first-admin-1"})
            assert made.status_code == 303 and made.headers["location"] == "/login"
    finally:
        await server.stop()


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")
