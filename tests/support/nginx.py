"""Debian's nginx running the shipped deploy/nginx/bevforge.conf on free loopback ports.

The shipped file is used as it is, but for what a test machine must change: the listen ports, the
certificate (a throwaway self-signed one for 127.0.0.1) and the upstream instances. Each change is
checked to have happened, so a reshaped shipped file fails here rather than testing something else.
`scripts/ensure-nginx.sh` (in `make test`) installs nginx.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

from tests.support.server import ROOT, free_port

SHIPPED = ROOT / "deploy" / "nginx" / "bevforge.conf"
UPSTREAM_LINES = ("    server 127.0.0.1:5007 max_fails=1 fail_timeout=10s;\n"
                  "    # server 127.0.0.1:5008 max_fails=1 fail_timeout=10s;   # a second central instance\n")


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise RuntimeError("nginx is not installed: run scripts/ensure-nginx.sh (make test does)")
    return found


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA: a client trusts exactly it)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def _replace(text: str, old: str, new: str) -> str:
    if old not in text:
        raise AssertionError(f"deploy/nginx/bevforge.conf no longer has {old!r}: update tests/support/nginx.py")
    return text.replace(old, new)


class Nginx:
    """The shipped site config in front of `upstream_ports`; HTTPS on `https_port`, HTTP on `http_port`."""

    def __init__(self, folder: Path, upstream_ports: list[int]) -> None:
        self.folder = folder
        self.https_port, self.http_port = free_port(), free_port()
        self.cert, key = self_signed(folder)
        site = SHIPPED.read_text(encoding="utf-8")
        site = _replace(site, "    listen 443 ssl;", f"    listen 127.0.0.1:{self.https_port} ssl;")
        site = _replace(site, "    listen 80;", f"    listen 127.0.0.1:{self.http_port};")
        site = _replace(site, "/etc/ssl/brewhouse/fullchain.pem", str(self.cert))
        site = _replace(site, "/etc/ssl/brewhouse/privkey.pem", str(key))
        site = _replace(site, UPSTREAM_LINES, "".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=10s;\n"
                                                      for port in upstream_ports))
        (folder / "bevforge.conf").write_text(site, encoding="utf-8")
        temp = "".join(f"    {kind}_temp_path {folder / kind};\n"
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (folder / "nginx.conf").write_text(
            ("user root;\n" if os.geteuid() == 0 else "")  # workers read the temp folder made by this test
            + f"daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} warn;\n"
            f"events {{ worker_connections 256; }}\nhttp {{\n    access_log off;\n{temp}"
            f"    include {folder / 'bevforge.conf'};\n}}\n", encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = f"https://127.0.0.1:{self.https_port}"
        self.wss_url = f"wss://127.0.0.1:{self.https_port}"

    def tls(self) -> ssl.SSLContext:
        """A client context that trusts this nginx's certificate and nothing else."""
        return ssl.create_default_context(cafile=str(self.cert))

    def start(self, timeout: float = 20.0) -> None:
        binary = nginx_binary()
        check = subprocess.run([binary, "-t", "-p", str(self.folder), "-c", str(self.folder / "nginx.conf")],
                               capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the config: {check.stderr}")
        self.process = subprocess.Popen([binary, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"nginx exited: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.https_port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not listen in time")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
