"""Helpers shared by the benchmarks: start `python main.py` on a free port, sample its CPU and RSS."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]


def child_env(pycache: Path | None = None) -> dict[str, str]:
    """A bench's processes' environment. With `pycache`, bytecode is cached there (as a deployed service's is,
    docs/deployment.md: `pip install .` and `compileall` compile it) even where the caller's environment says
    not to (PYTHONDONTWRITEBYTECODE): a restart then measures the service, not the compiler."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppProcess:
    """`python main.py` in a subprocess with its own temp database, on a free loopback port."""

    def __init__(self, *args: str, config: str | Path | None = None) -> None:
        self.port = free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix="bevforge-bench-")
        self.base_url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, str(ROOT / "main.py"), "--port", str(self.port),
               "--data-dir", self.tmp.name, "--log-level", "warning", *args]
        if config is not None:
            cmd += ["--config", str(config)]
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.ps = psutil.Process(self.proc.pid)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                if httpx.get(f"{self.base_url}/api/os/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        stop_process(self.proc)
        self.tmp.cleanup()

    def __enter__(self) -> AppProcess:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()  # a server that never became ready must not outlive the bench (it holds its ports)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def table(headers: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


@dataclass
class Row:
    """One line of docs/benchmarks.md: a measure, its result, the target and whether it was met."""

    measure: str
    result: str
    target: str
    met: bool | None  # None: a figure reported without a target
    command: str

    def cells(self) -> list[str]:
        verdict = "—" if self.met is None else ("met" if self.met else "**not met**")
        return [self.measure, self.result, self.target or "—", verdict, f"`{self.command}`"]


def stop_process(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it has not ended within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
