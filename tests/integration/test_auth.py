"""Sign-in, sessions, tokens, throttling, the first-run page, the audit journal and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.live import custom_server, required
from tests.support.postgres import test_db_url
from tests.support.server import PLANT_FIXTURE, ROOT, LiveServer, fed_externally, wait_for_command


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[LiveServer]:
    def adjust(doc: dict) -> None:
        required(login_max_failures=3, login_lockout_s=60)(doc)
        fed_externally(50)(doc)  # FV1's probe is fed by a gateway with a token

    async with custom_server(tmp_path, adjust) as server:
        server.runtime.auth.add_user("olga", "olga-secret-1", "operator", None)
        server.runtime.auth.add_user("ada", "ada-secret-12", "admin", None)
        server.http.headers["origin"] = server.base_url  # a browser on our own pages (see test_csrf.py)
        yield server


async def login(server: LiveServer, user: str, password: str) -> httpx.Response:
    response = await server.http.post("/api/os/auth/login", json={"username": user, "password": password})
    server.http.cookies.clear()  # each test passes the cookie it means to use, explicitly
    return response


async def test_login_sets_httponly_samesite_cookie_and_me(secured: LiveServer) -> None:
    r = await login(secured, "olga", "olga-secret-1")
    assert r.status_code == 200 and r.json()["role"] == "operator"
    cookie = r.headers["set-cookie"]
    assert "bevforge_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    me = (await secured.http.get("/api/os/auth/me", cookies=r.cookies)).json()
    assert me["user"] == "olga" and me["authMode"] == "required"
    assert (await secured.http.get("/api/os/tiles")).status_code == 401


async def test_form_login_redirects_and_bad_password_is_401(secured: LiveServer) -> None:
    r = await secured.http.post("/api/os/auth/login", data={"username": "olga", "password": "olga-secret-1",
                                                            "next": "/trends"})
    secured.http.cookies.clear()
    assert r.status_code == 303 and r.headers["location"] == "/trends"
    bad = await login(secured, "olga", "wrong-password")
    assert bad.status_code == 401 and bad.json()["error"] == "bad_credentials"
    unknown = await login(secured, "nobody", "whatever-pass")
    assert unknown.status_code == 401 and unknown.json()["message"] == bad.json()["message"]


async def test_failed_logins_are_throttled_per_user_and_address(secured: LiveServer) -> None:
    for _ in range(3):
        assert (await login(secured, "olga", "wrong-password")).status_code == 401
    locked = await login(secured, "olga", "olga-secret-1")
    assert locked.status_code == 429 and locked.json()["error"] == "too_many_attempts"


async def test_logout_ends_the_session(secured: LiveServer) -> None:
    r = await login(secured, "olga", "olga-secret-1")
    assert (await secured.http.get("/api/os/tiles", cookies=r.cookies)).status_code == 200
    assert (await secured.http.post("/api/os/auth/logout", cookies=r.cookies)).status_code == 200
    assert (await secured.http.get("/api/os/tiles", cookies=r.cookies)).status_code == 401


async def test_idle_session_expires(tmp_path: Path) -> None:
    async with custom_server(tmp_path, required(session_idle_minutes=0.0001)) as server:
        server.runtime.auth.add_user("olga", "olga-secret-1", "operator", None)
        r = await login(server, "olga", "olga-secret-1")
        import asyncio

        await asyncio.sleep(0.05)  # longer than the 6 ms idle timeout configured above
        assert (await server.http.get("/api/os/tiles", cookies=r.cookies)).status_code == 401


async def test_tokens_are_shown_once_stored_hashed_and_revocable(secured: LiveServer) -> None:
    admin = await login(secured, "ada", "ada-secret-12")
    created = await secured.http.post("/api/os/tokens", cookies=admin.cookies,
                                      json={"name": "gateway", "role": "technician"})
    assert created.status_code == 201
    token = created.json()["token"]
    listed = (await secured.http.get("/api/os/tokens", cookies=admin.cookies)).json()
    assert token not in str(listed)
    h = {"Authorization": f"Bearer {token}"}
    ok = await secured.http.post("/api/os/telemetry/ingest", headers=h, json={"endpointId": 50, "value": 18.0})
    assert ok.status_code == 200
    assert (await secured.http.delete(f"/api/os/tokens/{created.json()['id']}", cookies=admin.cookies)).status_code \
        == 200
    assert (await secured.http.get("/api/os/tiles", headers=h)).status_code == 401


async def test_users_admin_api_validates_fields(secured: LiveServer) -> None:
    admin = await login(secured, "ada", "ada-secret-12")
    c = admin.cookies
    bad_node = await secured.http.post("/api/os/users", cookies=c, json={"username": "tom", "password": "tom-secret-1",
                                                                        "role": "technician", "nodes": ["XX"]})
    assert bad_node.status_code == 422 and bad_node.json()["field"] == "nodes"
    short = await secured.http.post("/api/os/users", cookies=c, json={"username": "tom", "password": "short",
                                                                     "role": "technician"})
    assert short.status_code == 422 and short.json()["field"] == "password"
    made = await secured.http.post("/api/os/users", cookies=c, json={"username": "tom", "password": "tom-secret-1",
                                                                    "role": "viewer", "nodes": ["BK"]})
    assert made.status_code == 201
    patched = await secured.http.patch("/api/os/users/tom", cookies=c, json={"role": "technician"})
    assert patched.json()["role"] == "technician"
    dup = await secured.http.post("/api/os/users", cookies=c, json={"username": "tom", "password": "tom-secret-1",
                                                                   "role": "viewer"})
    assert dup.status_code == 409


async def test_audit_journal_records_who_did_what(secured: LiveServer) -> None:
    await login(secured, "olga", "bad-password")
    olga = await login(secured, "olga", "olga-secret-1")
    r = await secured.http.post("/api/os/command", cookies=olga.cookies, json={"endpointId": 12, "value": 68.5})
    await wait_for_command(secured, r.json()["commandId"])
    await secured.http.post("/api/os/auth/logout", cookies=olga.cookies)
    admin = await login(secured, "ada", "ada-secret-12")
    journal = (await secured.http.get("/api/os/audit", cookies=admin.cookies, params={"user": "olga"})).json()
    steps = [(e["action"], e["result"]) for e in reversed(journal)]
    assert steps == [("auth.login", "failed"), ("auth.login", "ok"), ("command.request", "queued"),
                     ("command.result", "succeeded"), ("auth.logout", "ok")]
    request = next(e for e in journal if e["action"] == "command.request")
    assert request["new"] == 68.5 and request["old"] == 75.0 and request["commandId"] == r.json()["commandId"]
    assert request["station"] == "127.0.0.1" and request["time"].endswith("Z")
    csv_text = (await secured.http.get("/api/os/audit", cookies=admin.cookies, params={"format": "csv"})).text
    assert csv_text.splitlines()[0].startswith("id,time,user,role,station,action")


async def test_first_run_page_creates_the_first_admin_only_once(tmp_path: Path) -> None:
    async with custom_server(tmp_path, required()) as server:
        server.http.headers["origin"] = server.base_url  # the first-run form is posted by its own page
        page = await server.http.get("/login")
        assert page.status_code == 303 and page.headers["location"] == "/setup"
        form = (await server.http.get("/setup")).text
        assert "First run" in form and "password" in form and 'name="code"' in form
        code = server.runtime.auth.setup_code
        assert code is not None
        for wrong in ("", "AAAA-AAAA-AAAA"):  # someone passing the kiosk, without the console's code
            refused = await server.http.post("/setup", data={"code": wrong, "username": "me", "password": "mine-12345"})
            assert refused.status_code == 303 and "setup%20code" in refused.headers["location"]
        assert not server.runtime.auth.has_users()
        assert [e["action"] for e in await server.runtime.audit.query(limit=10)].count("user.setup.refused") == 2
        r = await server.http.post("/setup", data={"code": code.lower().replace("-", " "), "username": "root",
                                                   "password": "first-admin-1"})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert server.runtime.auth.setup_code is None
        assert (await login(server, "root", "first-admin-1")).json()["role"] == "admin"
        assert (await server.http.get("/setup")).status_code == 409


def run_main(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python main.py …` on the fixture brewhouse unless `args` name another `--config`."""
    env = {**os.environ, "BEVFORGE_CONFIG": str(PLANT_FIXTURE)}
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          input=stdin, timeout=60)


@pytest.mark.slow  # six `python main.py` runs, each a full interpreter start: ~50 s
def test_cli_manages_users_and_tokens(tmp_path: Path) -> None:
    db = ["--db", test_db_url(tmp_path / "cli.db")]
    added = run_main("user", "add", "olga", "--role", "operator", "--nodes", "HLT,BK", "--password-stdin", *db,
                     stdin="olga-secret-1\n")
    assert added.returncode == 0, added.stderr
    listed = run_main("user", "list", *db)
    assert "olga" in listed.stdout and "operator" in listed.stdout and "HLT,BK" in listed.stdout
    weak = run_main("user", "add", "bob", "--role", "admin", "--password-stdin", *db, stdin="short\n")
    assert weak.returncode == 1 and "at least 8" in weak.stderr
    token = run_main("token", "create", "gateway", "--role", "technician", *db)
    assert token.returncode == 0 and "bf_" in token.stdout
    token_id = token.stdout.split()[1]
    assert run_main("token", "revoke", token_id, *db).returncode == 0
    assert "revoked" in run_main("token", "list", *db).stdout


def test_auth_mode_none_refused_off_loopback(tmp_path: Path) -> None:
    config = tmp_path / "open.yaml"
    config.write_text(PLANT_FIXTURE.read_text(encoding="utf-8") + "\nauth: {mode: none}\n", encoding="utf-8")
    r = run_main("--host", "0.0.0.0", "--config", str(config), "--data-dir", str(tmp_path))
    assert r.returncode == 2
    assert "refusing to start" in r.stderr and "auth.mode" in r.stderr and "Traceback" not in r.stderr


async def test_a_role_change_ends_the_users_event_stream(secured: LiveServer) -> None:
    olga = await login(secured, "olga", "olga-secret-1")
    admin = await login(secured, "ada", "ada-secret-12")
    events: list[str] = []
    async with secured.http.stream("GET", "/api/os/events?channels=commands", cookies=olga.cookies) as stream:
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry:")  # the stream is open
        changed = await secured.http.patch("/api/os/users/olga", cookies=admin.cookies, json={"role": "viewer"})
        assert changed.status_code == 200
        async for line in lines:
            events.append(line)
    assert "event: error" in events
    assert any('"unauthorized"' in line for line in events if line.startswith("data: "))
