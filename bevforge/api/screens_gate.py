"""The API answers while the screens are still being mounted.

main.py serves the HTTP app as soon as it is built, and imports and mounts the screens (NiceGUI and the
pages, about a fifth of start-up) while it already serves: a restarted panel's `/ws` clients get the
plant's state, the programs' resume prompts included, that much sooner. In that window this gate sends
a request to the app only if one of the app's own routes, as they were when the gate was made (the API,
`/ws`, SSE, `/metrics`), matches it fully; any other request (a page, NiceGUI's files and socket) waits
until the screens are mounted and started (`open`), then goes to the same app as every request does from
then on. A request that waited when serving ends without screens (a stop during start-up, or the screens
failed to load) is answered 503 (a WebSocket is refused).

A browser opening a page in that window (a kiosk whose PC restarted with the panel, a new tab) would
see nothing for those seconds; given a starting page (main.py builds one with the screens' restart watch,
ui/restart_watch.py), the gate answers a page request (a GET that accepts `text/html`) with it at once:
"panel starting", and a program's restart question as soon as `/ws` has it. The starting page then asks
the gate itself when the screens are there (a request carrying `X-BevForge-Screens: wait`, answered 204
once they are open, 503 if serving ends without them; never passed to the app) and reloads.

The routes are matched as the app itself matches them, and the app's own middleware (the Origin guard,
the body cap) runs for every request either way; the screens' mount comes after the API's routes, so a
request the gate sends to the app early is routed there exactly as it is after the screens are mounted.
"""

from __future__ import annotations

import asyncio
import html

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

WAIT_HEADER = b"x-bevforge-screens"  # value `wait`: the starting page asks whether the screens are open


class ScreensGate:
    """ASGI front of the app: the app's own routes at once, everything else once the screens are open."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute], starting_page: bytes | None = None) -> None:
        self.app = app
        self.starting_page = starting_page
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
        if scope["type"] == "http" and _header(scope, WAIT_HEADER) == b"wait":
            await self._settled.wait()
            await _answer(send, 204 if self._opened else 503, b"")
            return
        if self._opened or scope["type"] not in ("http", "websocket") or self.answers_early(scope):
            await self.app(scope, receive, send)
            return
        if self.starting_page is not None and scope["type"] == "http" and scope["method"] == "GET" \
                and b"text/html" in _header(scope, b"accept"):
            await _answer(send, 503, self.starting_page, b"text/html; charset=utf-8")
            return
        await self._settled.wait()
        if self._opened:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await _unavailable(send)
        else:
            await send({"type": "websocket.close", "code": 1013})  # before accepting: the handshake is refused


def _header(scope: Scope, name: bytes) -> bytes:
    return next((value for key, value in scope["headers"] if key == name), b"")


async def _unavailable(send: Send) -> None:
    await _answer(send, 503, b"the screens are not available: the panel is starting or stopping")


async def _answer(send: Send, status: int, body: bytes, content_type: bytes = b"text/plain; charset=utf-8") -> None:
    """A whole answer from the gate itself: never cached (it says what holds this moment)."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    if status == 503:
        headers.append((b"retry-after", b"2"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


STARTING_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · starting</title>
<style>
body {{ background: #d6d6d6; color: #202020; font: 16px sans-serif; margin: 0; }}
#bf-starting {{ padding: 14px; text-align: center; font-size: 20px; font-weight: 600; color: #fff;
               background: repeating-linear-gradient(135deg, #3c3c3c 0 14px, #2c2c2c 14px 28px); }}
{css}
</style></head>
<body>
<div id="bf-starting" role="status" aria-live="assertive">
{title}: PANEL STARTING — this screen is drawn in a moment…</div>
<script>
window.bevforgeStarting = true;
(function () {{  // kiosk as the pages decide it (ui/layout.py): `?kiosk=` first, else the config's ui.kiosk
  const asked = new URLSearchParams(location.search).get('kiosk');
  if (asked === null ? {kiosk} : /^(1|true|yes|on)$/i.test(asked)) document.body.classList.add('bf-kiosk');
}})();
</script>
<script>{script}</script>
<script>
(function () {{
  // waits in the gate until the screens are open (204), then the page itself; 503: serving ended, ask again
  function ready() {{
    fetch(location.href, {{ cache: 'no-store', headers: {{ 'X-BevForge-Screens': 'wait' }} }})
      .then((answer) => (answer.status === 204 ? location.reload() : setTimeout(ready, 1000)))
      .catch(() => setTimeout(ready, 1000));
  }}
  ready();
}})();
</script>
</body></html>
"""


def starting_page(title: str, kiosk: bool, script: str, css: str) -> bytes:
    """The page the gate answers a page request with while the screens load: the site's name, "starting",
    and the screens' restart watch (`script`, `css`: ui/restart_watch.js and .css, handed in by main.py)."""
    return STARTING_PAGE.format(title=html.escape(title), kiosk="true" if kiosk else "false", script=script,
                                css=css).encode()

