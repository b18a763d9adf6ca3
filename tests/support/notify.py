"""Real local servers for the notification tests: an SMTP server (aiosmtpd) that asks for a password,
and a webhook receiver (uvicorn) for Apprise's json:// URLs, each on a free loopback port."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.server import free_port


@dataclass
class Mail:
    to: list[str]
    subject: str
    body: str


class SmtpSink:
    """An SMTP server on loopback that accepts one user and password (AUTH without TLS, a lab only)
    and keeps every mail it took."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password
        self.port = free_port()
        self.mails: list[Mail] = []
        self.refused_logins = 0
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, authenticator=self._auth,
                                      auth_require_tls=False)

    def _auth(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.user \
            and auth_data.password.decode() == self.password
        if not ok:
            self.refused_logins += 1
        return AuthResult(success=ok)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        part = message.get_body(("plain",)) if message.is_multipart() else message
        text = part.get_content() if part is not None else ""
        with self._lock:
            self.mails.append(Mail(list(envelope.rcpt_tos), str(message["subject"]), text))
        return "250 OK"

    def to(self, address: str) -> list[Mail]:
        with self._lock:
            return [m for m in self.mails if address in m.to]

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


@dataclass
class WebhookSink:
    """A JSON webhook receiver (what Apprise's json:// posts: {version, title, message, type})."""

    port: int = field(default_factory=free_port)
    posts: list[dict[str, Any]] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.posts.append({"path": scope["path"], "body": orjson.loads(body) if body else None})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def start(self) -> None:
        self._server = uvicorn.Server(uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning",
                                                     lifespan="off"))
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the webhook receiver stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)


def running_smtp(user: str, password: str) -> Iterator[SmtpSink]:
    """A started SmtpSink for a fixture to yield from (stopped after the test)."""
    sink = SmtpSink(user, password)
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
