"""`/ws`: the seed's live protocol over one WebSocket per client.

Each connection is three small tasks: a receiver (client frames → Protocol), a sender (drains the
connection's bus Subscriber and writes the pre-serialised text, so no broadcast loop ever awaits a
client) and a heartbeat (server `ping` every ping_interval_s, close after idle_timeout_s without a
client frame). A client too slow for its command and alarm frames (more than queue_limit waiting, or
frames waiting stall_timeout_s untaken) is closed with 1013 and a reason (its bus queue is bounded;
telemetry in it coalesces); a client over the message rate gets error frames, and 1008 if it keeps on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket
from starlette.websockets import WebSocketState

from bevforge import messages
from bevforge.api.auth_hook import authenticate_ws, origin_allowed, presented_token
from bevforge.api.deps import runtime_of
from bevforge.api.errors import error_response
from bevforge.api.livefeed import Interest, reply
from bevforge.api.ws_protocol import Protocol, RateLimiter, parse_frame
from bevforge.bus import Subscriber, SubscriberClosed
from bevforge.domain import Actor
from bevforge.errors import (
    AUTH_REQUIRED,
    AUTH_TIMEOUT,
    FORBIDDEN_ORIGIN,
    INTERNAL_ERROR,
    INVALID_MESSAGE,
    RATE_LIMITED,
    UNAUTHORIZED,
    BevForgeError,
    Forbidden,
    Malformed,
    TooManyRequests,
    Unauthorized,
)

log = logging.getLogger(__name__)
router = APIRouter()

CLOSE_TRY_AGAIN = 1013  # server full, or this client fell too far behind: reconnect later
CLOSE_POLICY = 1008  # abusive rate, refused credentials
CLOSE_IDLE = 1001  # silent for too long: going away
CLOSE_TIMEOUT_S = 2.0  # how long a close frame may wait on a client that does not read


class Hub:
    """The live connections of one app: the connection limit and a window for tests and health."""

    def __init__(self) -> None:
        self.connections: dict[str, Connection] = {}
        self.reserved = 0  # handshakes under way plus open connections

    def reserve(self, limit: int) -> bool:
        if self.reserved >= limit:
            return False
        self.reserved += 1
        return True

    def release(self) -> None:
        self.reserved -= 1


def hub_of(app: FastAPI) -> Hub:
    hub = getattr(app.state, "ws_hub", None)
    if hub is None:
        hub = app.state.ws_hub = Hub()
    return hub


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    runtime = runtime_of(websocket)
    settings = runtime.config.realtime
    if not origin_allowed(websocket):
        await _refuse(websocket, Forbidden(f"origin {websocket.headers.get('origin')!r} is not allowed to open /ws",
                                           code=FORBIDDEN_ORIGIN))
        return
    hub = hub_of(websocket.app)
    if not hub.reserve(settings.max_connections):
        # The close code can only travel inside an open WebSocket: accept, then close at once.
        await websocket.accept()
        await websocket.close(CLOSE_TRY_AGAIN, f"server full: {settings.max_connections} connections; try later")
        return
    try:
        token = presented_token(websocket)
        actor = await authenticate_ws(websocket, token)
        if actor is None and token is not None:
            await _refuse(websocket, Unauthorized("the presented credentials were not accepted", code=UNAUTHORIZED))
            return
        connection = Connection(websocket, runtime, actor)
        hub.connections[connection.client_id] = connection
        try:
            await connection.run()
        finally:
            hub.connections.pop(connection.client_id, None)
    finally:
        hub.release()


async def _refuse(websocket: WebSocket, exc: BevForgeError) -> None:
    """Refuse a handshake with the REST translator's answer (or a bare 403 close where the server
    cannot send an HTTP answer on a WebSocket handshake)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(exc))
    else:
        await websocket.close(CLOSE_POLICY, exc.message)


class Connection:
    def __init__(self, websocket: WebSocket, runtime: Any, actor: Actor | None) -> None:
        self.websocket = websocket
        self.runtime = runtime
        self.settings = runtime.config.realtime
        self.actor = actor
        self.client_id = f"client-{secrets.token_hex(6)}"
        self.interest = Interest(actor)
        self.subscriber: Subscriber = runtime.bus.subscribe(self.interest.wants, limit=self.settings.queue_limit,
                                                            name=self.client_id, stall_s=self.settings.stall_timeout_s)
        self.protocol = Protocol(runtime, self.settings, actor or Actor(), self.interest, self.subscriber)
        self.limiter = RateLimiter(self.settings.max_messages_per_s, self.settings.abuse_strikes)
        self.last_seen = 0.0
        self.close_with: tuple[int, str] | None = None
        self._ended = asyncio.Event()  # set when the credential is revoked or the auth grace runs out
        self._unregister: Any = None
        self._watch_credential()

    def _watch_credential(self) -> None:
        """Logging out or revoking a token closes every socket that credential opened."""
        if self.actor is not None and self.actor.credential and self._unregister is None:
            self._unregister = self.runtime.auth.on_revoke(self.actor.credential, self._revoked)

    def _revoked(self, credential: str) -> None:
        kind = credential.split(":", 1)[0]
        what = {"session": "signed out", "token": "token revoked"}.get(kind, "station user changed")
        self._close(CLOSE_POLICY, f"credentials ended: {what}")
        self._ended.set()

    async def _auth_grace(self) -> None:
        """A connection must authenticate within auth.ws_auth_grace_s or it is closed (1008)."""
        if self.actor is None:
            await asyncio.sleep(self.runtime.config.auth.ws_auth_grace_s)
            if self.actor is None:
                self.subscriber.push(reply(messages.error_of(Unauthorized("not authenticated in time",
                                                                          code=AUTH_TIMEOUT))))
                self._close(CLOSE_POLICY, "authentication timeout")
                self._ended.set()
                return
        await asyncio.Event().wait()  # authenticated: nothing more to watch

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await self.websocket.accept()
        self.last_seen = loop.time()
        self.subscriber.push(reply(messages.connected(self.client_id, self.actor is not None,
                                                      self.runtime.bus.last_seq)))
        tasks = [asyncio.create_task(self._receive(), name=f"{self.client_id}-receive"),
                 asyncio.create_task(self._send(), name=f"{self.client_id}-send"),
                 asyncio.create_task(self._heartbeat(), name=f"{self.client_id}-heartbeat"),
                 asyncio.create_task(self.subscriber.wait_closed(), name=f"{self.client_id}-cutoff"),
                 asyncio.create_task(self._ended.wait(), name=f"{self.client_id}-ended"),
                 asyncio.create_task(self._auth_grace(), name=f"{self.client_id}-auth-grace")]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if self.subscriber.closed_reason is not None:  # cut off by the bus while the sender was stuck
                self._close(CLOSE_TRY_AGAIN, self.subscriber.closed_reason + "; reconnect and subscribe again")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.subscriber.close("connection closed")
            if self._unregister is not None:
                self._unregister()
        if self.close_with is not None and self.websocket.application_state is WebSocketState.CONNECTED:
            code, reason = self.close_with
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.websocket.close(code, reason[:120]), CLOSE_TIMEOUT_S)

    def _close(self, code: int, reason: str) -> None:
        if self.close_with is None:
            self.close_with = (code, reason)

    async def _send(self) -> None:
        """The one writer of this socket: bus events, snapshots and replies in queue order."""
        send = self.websocket.send
        while True:
            try:
                events = await self.subscriber.get_many()
            except SubscriberClosed as exc:
                self._close(CLOSE_TRY_AGAIN, exc.reason + "; reconnect and subscribe again")
                return
            try:
                for event in events:
                    await send({"type": "websocket.send", "text": event.data})
            except Exception:  # the client went away mid-write
                return

    async def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        max_bytes = self.settings.max_message_bytes
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            self.last_seen = loop.time()
            try:
                if not self.limiter.allow():
                    if self.limiter.abusive:
                        self._close(CLOSE_POLICY, f"abuse: sustained rate over {self.settings.max_messages_per_s:g} "
                                    "messages/s")
                        return
                    raise TooManyRequests(f"over {self.settings.max_messages_per_s:g} messages/s; "
                                          "this message was ignored", code=RATE_LIMITED)
                text = message.get("text")
                if text is None:
                    raise Malformed("binary frames are not supported; send JSON text", code=INVALID_MESSAGE)
                frame = parse_frame(text, max_bytes)
                if self.actor is None:
                    if not await self._authenticate(frame):
                        return
                    continue
                await self.protocol.handle(frame)
            except BevForgeError as exc:  # the one /ws translator: a typed error becomes an error frame
                self.subscriber.push(reply(messages.error_of(exc)))
            except Exception:  # a bug must cost one frame, never the connection or a traceback
                log.exception("%s: unexpected error handling a frame", self.client_id)
                self.subscriber.push(reply(messages.error(INTERNAL_ERROR, "internal error; see the server log")))

    async def _authenticate(self, frame: dict[str, Any]) -> bool:
        """Before credentials, the only frame accepted is `{"type":"auth","token":...}`."""
        token = frame.get("token")
        if frame["type"] != "auth" or not isinstance(token, str) or not token:
            self.subscriber.push(reply(messages.error_of(Unauthorized('send {"type":"auth","token":...} first',
                                                                      code=AUTH_REQUIRED))))
            self._close(CLOSE_POLICY, "authentication required")
            return False
        actor = await authenticate_ws(self.websocket, token)
        if actor is None:
            self.subscriber.push(reply(messages.error_of(Unauthorized("the token was not accepted",
                                                                      code=UNAUTHORIZED))))
            self._close(CLOSE_POLICY, "credentials refused")
            return False
        self.actor = self.protocol.actor = actor
        self.interest.signed_in(actor)
        self._watch_credential()
        self.subscriber.push(reply(messages.authenticated_as(actor.user, actor.role)))
        return True

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        interval, idle = self.settings.ping_interval_s, self.settings.idle_timeout_s
        next_ping = loop.time() + interval
        while True:
            now = loop.time()
            if now - self.last_seen >= idle:
                self._close(CLOSE_IDLE, f"idle: no message from the client for {idle:g} s")
                return
            if now >= next_ping:
                self.subscriber.push(reply(messages.ping()))
                next_ping = now + interval
            await asyncio.sleep(max(0.0, min(next_ping, self.last_seen + idle) - now))
