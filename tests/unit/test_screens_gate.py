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

from bevforge.api.screens_gate import ScreensGate


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
