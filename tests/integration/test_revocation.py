"""Revocation from the shell reaches a running server: `python main.py user passwd|disable` and
`token revoke` (another process) end that user's sessions, cookies, `/ws` sockets and SSE streams,
also across a restart. A real `python main.py` server and the real CLI, sharing one SQLite file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.support.live import GUARD_S, WsClient
from tests.support.process import ServerProcess

pytestmark = pytest.mark.slow  # a real `python main.py` per test, restarted once

PASSWORD = "olga-secret-1"
HLT_SETPOINT = 12


@pytest.fixture
async def plant(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(tmp_path, {"mode": "required"})
    await server.acli("user", "add", "olga", "--role", "operator", "--password-stdin", stdin=PASSWORD + "\n")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def sign_in(server: ServerProcess, http: httpx.AsyncClient) -> httpx.Cookies:
    r = await http.post(f"{server.base_url}/api/os/auth/login", json={"username": "olga", "password": PASSWORD})
    assert r.status_code == 200, r.text
    http.cookies.clear()  # each request names the cookie it uses
    return r.cookies


async def command(server: ServerProcess, http: httpx.AsyncClient, cookies: httpx.Cookies | None = None,
                  headers: dict[str, str] | None = None) -> int:
    r = await http.post(f"{server.base_url}/api/os/command", json={"endpointId": HLT_SETPOINT, "value": 65.0},
                        headers={"origin": server.base_url} | (headers or {}), cookies=cookies)
    return r.status_code


async def open_ws(server: ServerProcess, cookies: httpx.Cookies) -> websockets.ClientConnection:
    """A browser's /ws: the session cookie and our own Origin."""
    return await websockets.connect(server.ws_url, origin=server.base_url,  # type: ignore[arg-type]
                                    additional_headers={"cookie": f"bevforge_session={cookies['bevforge_session']}"},
                                    open_timeout=GUARD_S)


async def sse_events(server: ServerProcess, cookies: httpx.Cookies, seen: list[str], opened: asyncio.Event) -> None:
    """Read an SSE stream as a browser would (cookie), keeping `event:` names until the stream ends."""
    async with httpx.AsyncClient(timeout=None) as http, http.stream(
            "GET", f"{server.base_url}/api/os/events?channels=commands", cookies=cookies) as stream:
        assert stream.status_code == 200
        opened.set()
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                seen.append(line.removeprefix("event: "))
            if line.startswith("data: ") and seen and seen[-1] == "error":
                seen.append(json.loads(line.removeprefix("data: "))["code"])


async def test_cli_passwd_ends_sessions_sockets_and_streams_also_after_a_restart(plant: ServerProcess) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        cookies = await sign_in(plant, http)
        assert await command(plant, http, cookies=cookies) == 202
        seen: list[str] = []
        opened = asyncio.Event()
        stream = asyncio.create_task(sse_events(plant, cookies, seen, opened))
        async with await open_ws(plant, cookies) as connection:
            ws = WsClient(connection)
            assert (await ws.expect_type("connected"))["authenticated"] is True
            await asyncio.wait_for(opened.wait(), GUARD_S)

            await plant.acli("user", "passwd", "olga", "--password-stdin", stdin="olga-secret-2\n")

            code, reason = await ws.closed()
            assert code == 1008 and "credentials ended" in reason
            await asyncio.wait_for(stream, GUARD_S)
            assert seen[-2:] == ["error", "unauthorized"]
            assert await command(plant, http, cookies=cookies) == 401
        await plant.restart()
        assert await command(plant, http, cookies=cookies) == 401
        assert (await http.get(f"{plant.base_url}/api/os/tiles", cookies=cookies)).status_code == 401


async def test_cli_disable_and_token_revoke_reach_the_running_server(plant: ServerProcess) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        cookies = await sign_in(plant, http)
        created = await plant.acli("token", "create", "brewday-script", "--role", "operator")
        token_id, token = created.stdout.split()[1], created.stdout.strip().splitlines()[-1]
        bearer = {"authorization": f"Bearer {token}"}
        assert await command(plant, http, headers=bearer) == 202  # a token made by the CLI a moment ago works
        async with websockets.connect(f"{plant.ws_url}?token={token}", open_timeout=GUARD_S) as connection:
            ws = WsClient(connection)
            assert (await ws.expect_type("connected"))["authenticated"] is True
            await plant.acli("token", "revoke", token_id)
            code, reason = await ws.closed()
        assert code == 1008 and "token revoked" in reason
        assert (await http.get(f"{plant.base_url}/api/os/tiles", headers=bearer)).status_code == 401

        assert await command(plant, http, cookies=cookies) == 202
        async with await open_ws(plant, cookies) as connection:
            ws = WsClient(connection)
            assert (await ws.expect_type("connected"))["authenticated"] is True
            await plant.acli("user", "disable", "olga")
            code, reason = await ws.closed()  # the server applied the CLI's change
        assert code == 1008 and "signed out" in reason
        assert await command(plant, http, cookies=cookies) == 401
        await plant.acli("user", "enable", "olga")
        fresh = await sign_in(plant, http)
        assert await command(plant, http, cookies=cookies) == 401  # the old cookie stays ended
        assert await command(plant, http, cookies=fresh) == 202


async def test_the_screens_socket_refuses_another_sites_origin(plant: ServerProcess) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        url = f"{plant.base_url}/_nicegui_ws/socket.io/?EIO=4&transport=polling"
        evil = await http.get(url, headers={"origin": "http://evil.example"})
        assert evil.status_code == 403 and evil.json()["error"] == "csrf_rejected"
        ours = await http.get(url, headers={"origin": plant.base_url})
        assert ours.status_code != 403
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(f"ws://127.0.0.1:{plant.port}/_nicegui_ws/socket.io/?EIO=4&transport=websocket",
                                      origin="http://evil.example", open_timeout=GUARD_S):  # type: ignore[arg-type]
            pass
