"""The gate main.py serves the app through while the screens load (bevforge/api/screens_gate.py): a request one
of the app's own routes answers goes through at once; any other waits for the screens and is then routed as the
app routes it; if serving ends without screens it is answered 503, never a 404 for a page that exists."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bevforge.api.screens_gate import ScreensGate, starting_page


async def _health(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("api")


async def _screen(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("screen")


def _app_and_gate() -> tuple[Starlette, ScreensGate, httpx.AsyncClient]:
    app = Starlette(routes=[Route("/api/health", _health, methods=["GET"])])
    gate = ScreensGate(app, app.router.routes)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=gate), base_url="http://panel")
    return app, gate, client


def _mount_screens(app: Starlette) -> None:
    """As NiceGUI's `run_with` does: a mount at "/" after the app's own routes."""
    app.mount("/", Starlette(routes=[Route("/{path:path}", _screen, methods=["GET", "POST"])]))


async def test_the_api_answers_at_once_and_a_page_waits_for_the_screens() -> None:
    app, gate, client = _app_and_gate()
    async with client:
        assert (await client.get("/api/health")).text == "api"
        page = asyncio.create_task(client.get("/programs"))
        wrong_method = asyncio.create_task(client.post("/api/health"))  # only the screens' mount takes a POST here
        _mount_screens(app)  # mounted, not yet started: still held
        assert (await client.get("/api/health")).text == "api"
        assert not page.done() and not wrong_method.done()
        gate.open()
        assert (await page).text == "screen"
        assert (await wrong_method).text == "screen"  # as the app routes it once the screens are mounted
        assert (await client.get("/anything")).text == "screen"


async def test_a_page_asked_for_when_serving_ends_without_screens_is_told_503() -> None:
    _app, gate, client = _app_and_gate()
    async with client:
        page = asyncio.create_task(client.get("/"))  # waiting for the screens, or arriving after: the same answer
        gate.close()
        answer = await page
        assert answer.status_code == 503 and "starting or stopping" in answer.text
        assert (await client.get("/api/health")).text == "api"


def _gate_with_starting_page() -> tuple[Starlette, ScreensGate, httpx.AsyncClient]:
    app = Starlette(routes=[Route("/api/health", _health, methods=["GET"])])
    gate = ScreensGate(app, app.router.routes, starting_page=b"<p>starting</p>")
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=gate), base_url="http://panel")
    return app, gate, client


async def _turns(n: int = 20) -> None:
    """Let the event loop run the requests' tasks as far as they go."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_browser_asking_for_a_page_meanwhile_gets_the_starting_page_and_learns_when_the_screens_open() -> None:
    app, gate, client = _gate_with_starting_page()
    html_page = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    async with client:
        starting = await client.get("/?kiosk=1", headers=html_page)
        assert starting.status_code == 503 and starting.text == "<p>starting</p>"
        assert starting.headers["content-type"].startswith("text/html")
        assert starting.headers["cache-control"] == "no-store"
        script = asyncio.create_task(client.get("/_nicegui/app.js"))  # not a page: it waits, as before
        ready = asyncio.create_task(client.get("/", headers={"x-bevforge-screens": "wait"}))
        await _turns()
        assert not script.done() and not ready.done()
        _mount_screens(app)
        gate.open()
        assert (await ready).status_code == 204  # answered by the gate, never by the app
        assert (await script).text == "screen"
        assert (await client.get("/", headers=html_page)).text == "screen"  # the page itself from now on
        again = await client.get("/", headers={"x-bevforge-screens": "wait"})
        assert again.status_code == 204 and again.text == ""


async def test_the_starting_page_is_told_503_when_serving_ends_without_screens() -> None:
    _app, gate, client = _gate_with_starting_page()
    async with client:
        ready = asyncio.create_task(client.get("/", headers={"x-bevforge-screens": "wait"}))
        await _turns()
        gate.close()
        assert (await ready).status_code == 503


def test_the_starting_page_carries_the_restart_watch_and_the_site_s_name() -> None:
    page = starting_page("Brew <&> Co", True, "/*watch*/", "/*look*/").decode()
    assert "Brew &lt;&amp;&gt; Co: PANEL STARTING" in page
    assert "window.bevforgeStarting = true;" in page and "<script>/*watch*/</script>" in page
    assert "/*look*/" in page and "asked === null ? true :" in page
    assert "asked === null ? false :" in starting_page("Brewery", False, "", "").decode()
