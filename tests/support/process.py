"""`python main.py` in a subprocess (screens mounted, as an operator runs it) and the admin CLI beside it.

For tests where two processes must agree: the CLI changes users and tokens in the database while
the server runs, and the server must notice. Each server gets its own config (free simulator
ports, a fresh probe pty link), SQLite file and loopback port.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from drivers.sim.ports import use_simulator_ports
from tests.support.postgres import test_db_url
from tests.support.server import ROOT, config_document, dump_yaml, free_port


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST" and not k.startswith("NICEGUI_")}


class ServerProcess:
    def __init__(self, tmp_path: Path, auth: dict[str, Any]) -> None:
        doc = config_document()
        use_simulator_ports(doc, free_port(), str(Path(tempfile.mkdtemp(prefix="bevforge-sim-")) / "probe"))
        doc["auth"] = auth
        self.config = tmp_path / "config.yaml"
        self.config.write_text(dump_yaml(doc), encoding="utf-8")
        self.db = test_db_url(tmp_path / "bevforge.db")
        self.log = tmp_path / "server.log"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """`python main.py user …` / `token …` against this server's config and database."""
        return subprocess.run([sys.executable, "main.py", *args, "--config", str(self.config), "--db", self.db],
                              cwd=ROOT, env=_env(), input=stdin, capture_output=True, text=True, timeout=60)

    async def acli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = await asyncio.to_thread(self.cli, *args, stdin=stdin)
        assert done.returncode == 0, done.stderr
        return done

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "main.py", "--port", str(self.port), "--host", "127.0.0.1", "--db", self.db,
                 "--config", str(self.config), "--log-level", "warning"],
                cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)

    async def start(self) -> None:
        self.process = self._spawn()
        async with httpx.AsyncClient(timeout=2) as http:
            for _ in range(300):  # up to ~30 s for a cold start; normally a few seconds
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited {self.process.returncode}: {self.log.read_text()[-2000:]}")
                try:
                    if (await http.get(f"{self.base_url}/api/os/health")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        await self.stop()  # a server that never answered must not outlive the test (it holds its ports)
        raise RuntimeError("server did not start")

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 20)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)

    async def restart(self) -> None:
        await self.stop()
        await self.start()
