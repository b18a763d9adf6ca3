"""The request-size cap, as plain ASGI middleware.

A body over the cap is refused with 413 in the API's error format, naming `body`: at once when its
Content-Length says so, or as soon as a chunked body streams past the cap (nothing of it is used).
Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs every request
through an extra task and memory stream, which the telemetry ingest path should not pay for; and
FastAPI's own `max_body_size` answers in plain text, not in the API's error format.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bevforge.api.errors import error_response
from bevforge.errors import TooLarge


class _TooLarge(Exception):
    """Raised from receive() inside the app; caught by BodySizeCap, never seen by a handler."""


class BodySizeCap:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    await self._refuse(scope, receive, send)
                    return
                break
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(TooLarge(f"request body over {self.max_bytes} bytes", field="body"))
        await response(scope, receive, send)
