"""A real Mosquitto broker for the tests: loopback only, a free port, everything in a temporary folder.

`Mosquitto(folder, users={...}, acl=...)` writes mosquitto.conf, a password file made by
`mosquitto_passwd` and an ACL file, and runs `mosquitto -c mosquitto.conf`. `stop()` and `start()`
again keep the port (a broker outage and its return). With `tls=True` a second listener serves TLS
with a certificate signed by a CA made for the test (`make_ca`, openssl CLI). The files written are
the ones docs/mqtt.md shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

from tests.support.server import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
ROOT = "bevforge/test"  # the tests' topic root: mqtt.topic_prefix bevforge, mqtt.site test

# The ACL docs/mqtt.md explains: BevForge's own user owns its site's tree; every user may read it and
# publish only under cmd/<their own name>/ (the broker fills in %u: the username is guaranteed).
ACL = f"""\
user bevforge
topic readwrite {ROOT}/#

pattern read {ROOT}/#
pattern write {ROOT}/cmd/%u/#
"""


@dataclass
class Ca:
    """A CA made for one test and a broker certificate it signed for 127.0.0.1 / localhost."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_ca(folder: Path) -> Ca:
    """A self-signed CA and a server certificate for `localhost` and 127.0.0.1, with the openssl CLI."""
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=BevForge test CA",
        "-keyout", "ca.key", "-out", "ca.crt")
    (folder / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n", encoding="utf-8")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out",
        "server.csr")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.cnf", "-out", "server.crt")
    for name in ("ca.crt", "server.crt", "server.key"):
        os.chmod(folder / name, 0o644)  # the broker may run as the `mosquitto` user
    return Ca(folder / "ca.crt", folder / "server.crt", folder / "server.key")


class Mosquitto:
    """One broker process; `port` (plain) and `tls_port` (with `tls=True`) stay the same across restarts."""

    def __init__(self, folder: Path, users: dict[str, str], acl: str = ACL, tls: bool = False) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o755)  # readable by the `mosquitto` user it drops to when started as root
        self.users = users
        self.port = free_port()
        self.ca = make_ca(folder / "tls") if tls else None
        self.tls_port = free_port() if tls else None
        self.process: subprocess.Popen[bytes] | None = None
        self.conf = folder / "mosquitto.conf"
        self._write(acl)

    def _write(self, acl: str) -> None:
        passwd = self.folder / "passwd"
        passwd.unlink(missing_ok=True)
        for i, (user, password) in enumerate(self.users.items()):
            flags = ["-c"] if i == 0 else []
            subprocess.run([MOSQUITTO_PASSWD, "-b", *flags, str(passwd), user, password], check=True,
                           capture_output=True, timeout=30)
        (self.folder / "acl").write_text(acl, encoding="utf-8")
        for name in ("passwd", "acl"):
            os.chmod(self.folder / name, 0o644)
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {passwd}",
            f"acl_file {self.folder / 'acl'}",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            *(["user root"] if os.geteuid() == 0 else []),  # a test broker reading files in a root-only folder
            f"listener {self.port} 127.0.0.1",
        ]
        if self.ca is not None:
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {self.ca.ca_file}",
                      f"certfile {self.ca.cert_file}", f"keyfile {self.ca.key_file}"]
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self) -> None:
        """Run the broker and return once every listener accepts connections (fixture set-up, not a test)."""
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        ports = [p for p in (self.port, self.tls_port) if p is not None]
        deadline = time.monotonic() + 20
        while not all(_listening(p) for p in ports):
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: {err}")
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not open its listeners within 20 s")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    async def start_async(self) -> None:
        """`start` off the event loop (a test whose plant keeps running meanwhile)."""
        await asyncio.to_thread(self.start)

    async def stop_async(self) -> None:
        await asyncio.to_thread(self.stop)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """A `mqtt:` section for BevForge's own user on the plain listener (the test's password in the
        environment variable BEVFORGE_TEST_MQTT_PASSWORD)."""
        os.environ["BEVFORGE_TEST_MQTT_PASSWORD"] = self.users["bevforge"]
        section: dict[str, Any] = {"host": "127.0.0.1", "port": self.port, "site": "test",
                                   "username": "bevforge", "password_env": "BEVFORGE_TEST_MQTT_PASSWORD",
                                   "reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "keepalive_s": 5}
        section.update(overrides)
        return section


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Watcher:
    """A second MQTT client, as a dashboard would be: subscribes and keeps every message it gets."""

    def __init__(self, broker: Mosquitto, user: str, topic: str = f"{ROOT}/#") -> None:
        self.broker = broker
        self.user = user
        self.topic = topic
        self.messages: list[aiomqtt.Message] = []
        self.position = 0  # just after the message wait_for found last
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.client: aiomqtt.Client | None = None

    async def __aenter__(self) -> Watcher:
        self.client = aiomqtt.Client("127.0.0.1", self.broker.port, username=self.user,
                                     password=self.broker.users[self.user], identifier=f"watcher-{id(self)}")
        await self.client.__aenter__()
        await self.client.subscribe(self.topic, qos=1)
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task
        if self.client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self.client.__aexit__(None, None, None)

    async def _collect(self) -> None:
        assert self.client is not None
        async for message in self.client.messages:
            self.messages.append(message)
            self._arrived.set()

    async def publish(self, topic: str, payload: Any) -> None:
        assert self.client is not None
        data = payload if isinstance(payload, bytes | str) else orjson.dumps(payload)
        await self.client.publish(topic, data, qos=1)

    async def wait_for(self, predicate: Callable[[str, Any, aiomqtt.Message], bool],
                       timeout: float = 10.0, start: int = 0) -> tuple[str, Any, aiomqtt.Message]:
        """The first message (from index `start`) whose topic and JSON body (None when empty) match."""
        seen = start
        async with asyncio.timeout(timeout):
            while True:
                while seen < len(self.messages):
                    message = self.messages[seen]
                    seen += 1
                    raw = message.payload if isinstance(message.payload, bytes) else b""
                    body = orjson.loads(raw) if raw else None
                    if predicate(message.topic.value, body, message):
                        self.position = seen  # where the next search may start
                        return message.topic.value, body, message
                self._arrived.clear()
                await self._arrived.wait()


class Cable:
    """A TCP relay between a client and the broker that a test can cut, as a pulled network cable:
    both ends see the connection drop, and nobody says goodbye (the broker publishes the Last Will)."""

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.unplugged = False  # True: new connections are dropped at once too (the link stays down)

    async def __aenter__(self) -> Cable:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.unplugged:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.broker_port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        """Drop every connection through the cable now (new ones are still relayed)."""
        for writer in self.writers:
            transport = writer.transport
            transport.abort()
        self.writers.clear()
