"""Cross-site request forgery with `auth.mode: required`: another page's browser cannot spend the
brewer's cookie, and scripts with a token are not affected (docs/security.md, "Cross-site requests")."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.support.live import custom_server, required, ws_client
from tests.support.server import LiveServer

EVIL = "http://evil.example"
HLT_SETPOINT = 12


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with custom_server(tmp_path, required(allowed_origins=["https://brewhouse.example.lan"])) as server:
        server.runtime.auth.add_user("olga", "olga-secret-1", "operator", None)
        server.runtime.auth.add_user("ada", "ada-secret-12", "admin", None)
        yield server


def own(server: LiveServer) -> dict[str, str]:
    return {"origin": server.base_url}


async def sign_in(server: LiveServer, user: str, password: str) -> httpx.Cookies:
    r = await server.http.post("/api/os/auth/login", json={"username": user, "password": password})
    assert r.status_code == 200, r.text
    server.http.cookies.clear()
    return r.cookies


async def test_a_cross_site_form_cannot_create_an_admin(secured: LiveServer) -> None:
    cookies = await sign_in(secured, "ada", "ada-secret-12")
    evil = await secured.http.post("/api/os/users", cookies=cookies, headers={"origin": EVIL},
                                   data={"username": "mallory", "password": "mallory-pass-1", "role": "admin"})
    assert evil.status_code == 403 and evil.json()["error"] == "csrf_rejected" and evil.json()["message"]
    as_json = await secured.http.post("/api/os/users", cookies=cookies, headers={"origin": EVIL},
                                      json={"username": "mallory", "password": "mallory-pass-1", "role": "admin"})
    assert as_json.status_code == 403 and as_json.json()["error"] == "csrf_rejected"
    # Even from our own origin a form body is not what this JSON route takes.
    form_here = await secured.http.post("/api/os/users", cookies=cookies, headers=own(secured),
                                        data={"username": "mallory", "password": "mallory-pass-1", "role": "admin"})
    assert form_here.status_code == 415 and form_here.json()["error"] == "unsupported_media_type"
    plain = await secured.http.post("/api/os/users", cookies=cookies, headers=own(secured) | {
        "content-type": "text/plain"}, content=json.dumps({"username": "mallory", "password": "mallory-pass-1",
                                                            "role": "admin"}))
    assert plain.status_code == 415
    users = (await secured.http.get("/api/os/users", cookies=cookies)).json()
    assert "mallory" not in {u["username"] for u in users}


async def test_a_cookie_command_needs_our_origin_referer_or_csrf_token(secured: LiveServer) -> None:
    cookies = await sign_in(secured, "olga", "olga-secret-1")
    body = {"endpointId": HLT_SETPOINT, "value": 66.0}
    for headers in ({"origin": EVIL}, {}, {"referer": f"{EVIL}/brew"}, {"origin": "null"},
                    {"origin": secured.base_url.replace("127.0.0.1", "localhost")}):
        refused = await secured.http.post("/api/os/command", cookies=cookies, headers=headers, json=body)
        assert refused.status_code == 403 and refused.json()["error"] == "csrf_rejected", headers
    assert (await secured.http.post("/api/os/command", cookies=cookies, headers=own(secured), json=body)) \
        .status_code == 202
    referer = {"referer": f"{secured.base_url}/?tab=hlt"}
    assert (await secured.http.post("/api/os/command", cookies=cookies, headers=referer, json=body)).status_code == 202
    listed = {"origin": "https://brewhouse.example.lan"}
    assert (await secured.http.post("/api/os/command", cookies=cookies, headers=listed, json=body)).status_code == 202
    token = (await secured.http.get("/api/os/auth/me", cookies=cookies)).json()["csrfToken"]
    assert token and len(token) == 64
    header = {"x-csrf-token": token}
    assert (await secured.http.post("/api/os/command", cookies=cookies, headers=header, json=body)).status_code == 202
    wrong = {"x-csrf-token": "0" * 64}
    assert (await secured.http.post("/api/os/command", cookies=cookies, headers=wrong, json=body)).status_code == 403


async def test_a_cross_site_page_cannot_sign_the_brewer_out(secured: LiveServer) -> None:
    cookies = await sign_in(secured, "olga", "olga-secret-1")
    out = await secured.http.post("/api/os/auth/logout", cookies=cookies, headers={"origin": EVIL})
    assert out.status_code == 403 and out.json()["error"] == "csrf_rejected"
    bare = await secured.http.post("/api/os/auth/logout", cookies=cookies)
    assert bare.status_code == 403
    assert (await secured.http.get("/api/os/tiles", cookies=cookies)).status_code == 200
    # The screens' SIGN OUT is a form: from our origin it still needs the session's CSRF token.
    tokenless = await secured.http.post("/api/os/auth/logout", cookies=cookies, headers=own(secured),
                                        data={"next": "/"})
    assert tokenless.status_code == 303 and tokenless.headers["location"] == "/"  # a stale page: drawn again
    assert tokenless.json()["error"] == "csrf_rejected" and tokenless.json()["field"] == "csrf"
    assert (await secured.http.get("/api/os/tiles", cookies=cookies)).status_code == 200
    page = (await secured.http.get("/login", cookies=cookies)).text
    token = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert token is not None
    done = await secured.http.post("/api/os/auth/logout", cookies=cookies, headers=own(secured),
                                   data={"csrf": token.group(1)})
    assert done.status_code == 303
    assert (await secured.http.get("/api/os/tiles", cookies=cookies)).status_code == 401


async def test_sign_in_and_first_run_forms_from_another_site_are_refused(tmp_path: Path) -> None:
    async with custom_server(tmp_path, required()) as server:
        forged = await server.http.post("/setup", headers={"origin": EVIL},
                                        data={"username": "mallory", "password": "mallory-pass-1"})
        assert forged.status_code == 403 and forged.json()["error"] == "csrf_rejected"
        anonymous_form = await server.http.post("/setup", data={"username": "mallory", "password": "mallory-pass-1"})
        assert anonymous_form.status_code == 403  # a form comes from a browser page: it must say which
        assert not server.runtime.auth.has_users()
        made = await server.http.post("/setup", headers=own(server), data={
            "code": server.runtime.auth.setup_code, "username": "root", "password": "first-admin-1"})
        assert made.status_code == 303 and made.headers["location"] == "/login"
        login = await server.http.post("/api/os/auth/login", headers={"origin": EVIL},
                                       data={"username": "root", "password": "first-admin-1"})
        assert login.status_code == 403 and "set-cookie" not in login.headers


async def test_bearer_token_clients_are_unaffected(secured: LiveServer) -> None:
    _, token = secured.runtime.auth.create_token("brewday-script", "operator", None, "test")
    bearer = {"authorization": f"Bearer {token}"}
    body = {"endpointId": HLT_SETPOINT, "value": 64.0}
    assert (await secured.http.post("/api/os/command", headers=bearer, json=body)).status_code == 202
    odd = bearer | {"origin": EVIL, "content-type": "text/plain"}
    assert (await secured.http.post("/api/os/command", headers=odd, content=json.dumps(body))).status_code == 202


async def test_ws_with_an_empty_allow_list_is_same_origin_only(tmp_path: Path) -> None:
    async with custom_server(tmp_path, required()) as server:
        server.runtime.auth.add_user("olga", "olga-secret-1", "operator", None)
        cookies = await sign_in(server, "olga", "olga-secret-1")
        cookie = f"bevforge_session={cookies['bevforge_session']}"
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(server.ws_url, origin=EVIL,  # type: ignore[arg-type]
                                          additional_headers={"cookie": cookie}):
                pass
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body)["error"] == "forbidden_origin"
        async with ws_client(server, origin=server.base_url, additional_headers={"cookie": cookie}) as ws:
            hello = ws.seen[0]
            assert hello["authenticated"] is True


async def test_another_origins_reads_are_refused_but_links_from_elsewhere_are_not(secured: LiveServer) -> None:
    cookies = await sign_in(secured, "olga", "olga-secret-1")
    stream = await secured.http.get("/api/os/events", cookies=cookies, headers={"origin": EVIL})
    assert stream.status_code == 403 and stream.json()["error"] == "csrf_rejected"
    linked = await secured.http.get("/api/os/tiles", cookies=cookies, headers={"referer": f"{EVIL}/wiki"})
    assert linked.status_code == 200
