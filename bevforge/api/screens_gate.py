"""The API answers while the screens are still being mounted.

main.py serves the HTTP app as soon as it is built, and imports and mounts the screens (NiceGUI and the
pages, about a fifth of start-up) while it already serves: a restarted panel's `/ws` clients get the
plant's state, the programs' resume prompts included, that much sooner. In that window this gate sends
a request to the app only if one of the app's own routes, as they were when the gate was made (the API,
`/ws`, SSE, `/metrics`), matches it fully; any other request (a page, NiceGUI's files and socket) waits
until the screens are mounted and started (`open`), then goes to the same app as every request does from
then on. A request that waited when serving ends without screens (a stop during start-up, or the screens
failed to load) is answered 503 (a WebSocket is refused).

The routes are matched as the app itself matches them, and the app's own middleware (the Origin guard,
the body cap) runs for every request either way; the screens' mount comes after the API's routes, so a
request the gate sends to the app early is routed there exactly as it is after the screens are mounted.
"""

from __future__ import annotations

import asyncio

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send


class ScreensGate:
    """ASGI front of the app: the app's own routes at once, everything else once the screens are open."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self._early_routes = list(routes)  # copied: the screens' mount, added later, must not match here
        self._opened = False
        self._settled = asyncio.Event()  # the screens are open, or serving ended without them

    @property
    def opened(self) -> bool:
        return self._opened

    def open(self) -> None:
        """The screens are mounted and started: every request goes to the app from now on."""
        self._opened = True
        self._settled.set()

    def close(self) -> None:
        """Serving ends without screens: requests that wait for them are answered 503."""
        self._settled.set()

    def answers_early(self, scope: Scope) -> bool:
        """Whether one of the app's own routes matches this request fully (as the app's router would)."""
        return any(route.matches(scope)[0] is Match.FULL for route in self._early_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._opened or scope["type"] not in ("http", "websocket") or self.answers_early(scope):
            await self.app(scope, receive, send)
            return
        await self._settled.wait()
        if self._opened:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await _unavailable(send)
        else:
            await send({"type": "websocket.close", "code": 1013})  # before accepting: the handshake is refused


async def _unavailable(send: Send) -> None:
    body = b"the screens are not available: the panel is starting or stopping"
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), (b"retry-after", b"2")]})
    await send({"type": "http.response.body", "body": body})

