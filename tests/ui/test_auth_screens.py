"""Screens with `auth.mode: required`: sign-in redirect, what each role and node-limited user sees,
the signed-in user on every action, sign-out and session end elsewhere, kiosk stations, /audit."""

from __future__ import annotations

import csv
import io
import re

import httpx
from nicegui.testing import User

from bevforge.app import create_app
from bevforge.auth import SESSION_COOKIE, csrf_token
from bevforge.domain import Reading, Severity
from tests.ui.support import (
    add_user,
    online,
    open_signed_in,
    record_navigation,
    rows,
    runtime,
    shows,
    sign_in,
    sim,
    until,
    visible_markers,
)


async def test_every_page_redirects_to_sign_in_without_a_session(auth_required, user: User) -> None:
    for path, target in (("/", "/login?next=/"), ("/alarms", "/login?next=/alarms"),
                         ("/trends?endpoint=10", "/login?next=/trends%3Fendpoint%3D10"),
                         ("/audit", "/login?next=/audit")):
        response = await user.http_client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == target
        assert "HLT" not in response.text  # nothing of the plant is drawn for a stranger
    user.http_client.headers["cookie"] = "bevforge_session=forged-or-expired"
    response = await user.http_client.get("/")
    assert response.status_code == 303


async def test_viewer_sees_values_but_no_command_or_alarm_buttons(auth_required, user: User) -> None:
    await open_signed_in(user, "vera", "viewer", "/")
    await shows(user, "who", "vera · VIEWER")
    await shows(user, "value-10", "°C")
    assert "value-23" in visible_markers(user, "value-")  # the helper sees markers: the pump is shown…
    assert visible_markers(user, "on-") == set() and visible_markers(user, "set-") == set()  # …without buttons
    assert visible_markers(user, "entry-") == set()
    await user.should_not_see(marker="nav-audit")
    await user.should_see(marker="sign-out")
    sim().model.vessels["hlt"].temperature_c = 99.5
    runtime().plant.ingest([Reading(10, 99.5)])
    alarm = await until(lambda: next(iter(runtime().alarms.standing()), None))
    await shows(user, f"critical-msg-{alarm.id}", "HLT temperature exceeded")
    assert visible_markers(user, "critical-ack-") == set()
    user.find(marker="critical-close").click()  # a viewer may close the dialog on their screen, not ack
    card = next(iter(user.find(marker="critical-dialog").elements))
    await until(lambda: card.parent_slot.parent.value is False)  # the dialog closed on this screen
    assert not runtime().alarms.current[alarm.id].acked
    await user.open("/alarms")
    await user.should_see(marker=f"alarm-row-{alarm.id}")
    assert {m for p in ("ack-", "shelve-", "reset-", "oos-", "limits-", "def-") for m in visible_markers(user, p)} \
        == set()


async def test_node_limited_operator_sees_only_their_nodes(auth_required, user: User) -> None:
    await open_signed_in(user, "hanna", "operator", "/", ["HLT"])
    await shows(user, "who", "hanna · OPERATOR · HLT")
    await user.should_see(marker="tile-hlt")
    await user.should_see(marker="on-11")  # an operator has the HLT controls
    for other in ("node-MLT", "node-BK", "tile-bk", "tile-fv1", "on-23", "value-30"):
        await user.should_not_see(marker=other)
    rt = runtime()
    sim().model.vessels["bk"].temperature_c = 104.0  # a high BK alarm: not hers
    rt.plant.ingest([Reading(30, 104.0)])
    bk = await until(lambda: next((a for a in rt.alarms.standing() if a.node == "BK"), None))
    sim().model.vessels["hlt"].temperature_c = 99.5
    rt.plant.ingest([Reading(10, 99.5)])
    hlt = await until(lambda: next((a for a in rt.alarms.standing() if a.node == "HLT"), None))
    await shows(user, "alarm-count-critical", "◆ 1 CRITICAL")
    await shows(user, "alarm-count-high", "0 high")  # the BK alarm does not exist for her
    await user.open("/alarms")
    await user.should_see(marker=f"alarm-row-{hlt.id}")
    await user.should_not_see(marker=f"alarm-row-{bk.id}")
    await user.should_not_see("BK temperature exceeded")
    await user.open("/trends?endpoint=30")  # another node's endpoint falls back to one of hers
    select = next(iter(user.find(marker="trend-add-pen").elements))
    assert set(select.options) == {10, 11, 12, 13, 14}
    await user.should_see(marker="trend-pen-10")  # her first vessel view: HLT temperature and setpoint
    await user.should_not_see(marker="trend-pen-30")


async def test_screens_show_each_actor_what_rest_shows(auth_required, user: User) -> None:
    """The screens' side of the role × transport matrix (tests/integration/test_role_matrix.py): the
    tiles' endpoints, the trend choices and the alarm rows are the REST answer for the same user."""
    rt = await open_signed_in(user, "ada", "admin", "/")
    sim().faults_for("hlt_controller").offline = True  # a device alarm, node null: the HLT's
    sim().faults_for("bk_controller").offline = True
    await until(lambda: all(rt.alarms.is_active(f"comms:{d}") for d in ("hlt_controller", "bk_controller")))
    rt.plant.ingest([Reading(10, 101.0), Reading(30, 104.0)])  # their polls fail: these values stay
    rt.alarms.raise_alarm("store:test", "store", Severity.HIGH, "test: the store cannot be written")  # no node
    await until(lambda: rt.alarms.is_active("hlt_temperature_hihi") and rt.alarms.is_active("bk_temperature_hi"))
    rest = httpx.AsyncClient(transport=httpx.ASGITransport(create_app(rt, manage_runtime=False)),
                             base_url="http://127.0.0.1")  # the REST routes over the screens' own plant
    for name, role, nodes in (("ada", "admin", None), ("vic", "viewer", None), ("hanna", "operator", ["HLT"])):
        cookie = {"cookie": f"{SESSION_COOKIE}={sign_in(user, name, role, nodes)}"}
        tiles = (await rest.get("/api/os/tiles", headers=cookie)).json()
        endpoints = {e["endpointId"] for e in (await rest.get("/api/os/endpoints", headers=cookie)).json()}
        alarms = (await rest.get("/api/os/alarms", headers=cookie)).json()
        await user.open("/")
        assert {int(m.removeprefix("value-")) for m in visible_markers(user, "value-")} \
            == {e["endpointId"] for t in tiles for e in t["endpoints"]}, name
        await user.open("/trends")
        assert set(next(iter(user.find(marker="trend-add-pen").elements)).options) == endpoints, name
        await user.open("/alarms")
        shown = {a["alarmId"] for a in alarms if a["state"] not in ("shelved", "out_of_service", "suppressed")}
        await until(lambda shown=shown: shown == {int(m.removeprefix("alarm-row-"))
                                                  for m in visible_markers(user, "alarm-row-")})
        keys = {a["ruleId"] for a in alarms}
        if nodes is None:
            assert {"comms:hlt_controller", "comms:bk_controller", "store:test"} <= keys, name
        else:
            assert "comms:hlt_controller" in keys and not keys & {"comms:bk_controller", "store:test"}, name
    await rest.aclose()


async def test_commands_and_acks_carry_the_signed_in_user(auth_required, user: User) -> None:
    rt = await open_signed_in(user, "olga", "operator", "/")
    user.find(marker="on-22").click()
    await shows(user, "value-22", "OPEN", absent=("?",))
    commands = await rt.commands.query(22, None, 10)
    assert commands[0].user == "olga" and commands[0].station == "127.0.0.1"
    entries = await rt.audit.query(user="olga")
    assert {"auth.login", "command.request", "command.result"} <= {e["action"] for e in entries}


async def test_sign_out_elsewhere_sends_every_open_screen_to_sign_in(auth_required, user: User) -> None:
    cookie = sign_in(user, "olga", "operator")
    await user.open("/alarms")
    await online()
    targets = record_navigation(user)
    runtime().auth.logout(cookie)  # e.g. SIGN OUT in another tab
    await until(lambda: targets == ["/login?next=/alarms"])
    response = await user.http_client.get("/")
    assert response.status_code == 303  # the cookie is dead


async def test_a_press_after_the_session_ended_is_refused(auth_required, user: User) -> None:
    await open_signed_in(user, "olga", "operator", "/")
    targets = record_navigation(user)
    runtime().auth.update_user("olga", disabled=True)  # an admin disables her: her sessions end
    await until(lambda: targets == ["/login?next=/"])
    user.find(marker="on-22").click()  # the screen is still there for a moment: the press goes to sign-in too
    await until(lambda: targets == ["/login?next=/", "/login?next=/"])
    assert await runtime().commands.query(22, None, 10) == []  # nothing was sent


async def test_an_idle_session_ends_and_the_screen_goes_to_sign_in(auth_required, user: User) -> None:
    cookie = sign_in(user, "olga", "operator")
    await user.open("/trends")
    targets = record_navigation(user)
    auth = runtime().auth
    from bevforge.auth import hash_secret

    auth._sessions[hash_secret(cookie)].last_seen -= 31 * 60  # 31 minutes without a request (idle limit 30)
    auth.expire_idle_sessions()  # what the screens' periodic sweep calls
    await until(lambda: targets == ["/login?next=/trends"])
    entries = await runtime().audit.query(user="olga")
    assert "auth.login" in {e["action"] for e in entries}


async def test_audit_page_is_for_technicians_and_exports_csv(auth_required, user: User, create_user) -> None:
    sign_in(user, "tom", "technician")
    await user.open("/audit")
    await user.should_see(marker="nav-audit")
    await until(lambda: any(r["action"] == "auth.login" and r["user"] == "tom" for r in rows(user, "audit-table")))
    user.find(marker="audit-user").type("nobody")
    user.find(marker="audit-show").click()
    await until(lambda: rows(user, "audit-table") == [])
    user.find(marker="audit-user").clear().type("tom")
    user.find(marker="audit-export").click()
    response = await user.download.next(timeout=5)
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert table and {r["user"] for r in table} == {"tom"} and "auth.login" in {r["action"] for r in table}
    operator = create_user()
    sign_in(operator, "olga", "operator")
    await operator.open("/audit")
    await operator.should_see(marker="forbidden")
    await operator.should_not_see(marker="audit-table")
    await operator.should_not_see(marker="nav-audit")


async def test_a_kiosk_station_signs_in_as_its_fixed_user(kiosk_station, user: User) -> None:
    add_user("kiosk", "operator")
    await user.open("/")
    await online()
    await shows(user, "who", "kiosk · OPERATOR")
    await user.should_see(marker="on-22")
    await user.should_not_see(marker="sign-out")  # the station is its user; there is nothing to sign out of
    user.find(marker="on-22").click()
    await shows(user, "value-22", "OPEN", absent=("?",))
    commands = await runtime().commands.query(22, None, 10)
    assert commands[0].user == "kiosk"


async def test_sign_out_form_carries_the_sessions_csrf_token(auth_required, user: User) -> None:
    await open_signed_in(user, "olga", "operator", "/")
    await user.should_see(marker="sign-out")
    form = next(iter(user.find(marker="sign-out").elements))
    token = re.search(r'name="csrf" value="([0-9a-f]{64})"', form.content)  # type: ignore[attr-defined]
    assert token is not None
    cookie = user.http_client.headers["cookie"].split("bevforge_session=", 1)[1].split(";")[0]
    assert token.group(1) == csrf_token(cookie)
