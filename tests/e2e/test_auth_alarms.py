"""Chromium against `python main.py`: sign-in, a command and sign-out with `auth.mode: required`, all
in the audit journal; the kiosk's critical alarm with its tone, SILENCE apart from ACK, and the
shelve flow on /alarms."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import (
    BK_TEMPERATURE_GATEWAY,
    HLT_TEMPERATURE_GATEWAY,
    PASSWORD,
    VIEWPORT,
    ServerProcess,
    snapshot,
)

TIMEOUT = 10_000  # ms; a generous ceiling for a loaded machine, not a speed requirement


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


def sign_in(page: Page, server: ServerProcess, user: str, path: str = "/") -> None:
    page.goto(server.base_url + path)
    expect(page).to_have_url(re.compile(r"/login\?next="), timeout=TIMEOUT)  # nobody signed in: sign-in page
    page.fill("#u", user)
    page.fill("#p", PASSWORD)
    page.get_by_role("button", name="SIGN IN").click()
    page.locator("#bf-connection[data-state=online]").wait_for(timeout=TIMEOUT)


def test_sign_in_command_sign_out_each_in_the_audit_journal(browser: Browser, secured_server: ServerProcess) -> None:
    server = secured_server
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(server.base_url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"), timeout=TIMEOUT)
    page.fill("#u", "brewer")
    page.fill("#p", "wrong password")
    page.get_by_role("button", name="SIGN IN").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown user or wrong password", timeout=TIMEOUT)
    page.fill("#u", "brewer")
    page.fill("#p", PASSWORD)
    snapshot(page, "sign-in")
    page.get_by_role("button", name="SIGN IN").click()
    page.locator("#bf-connection[data-state=online]").wait_for(timeout=TIMEOUT)
    expect(page).to_have_url(server.base_url + "/")
    expect(page.locator(tid("who"))).to_have_text("brewer · OPERATOR", timeout=TIMEOUT)
    expect(page.locator(tid("nav-audit"))).to_have_count(0)  # an operator has no audit page
    page.locator(tid("on-22")).click()  # OPEN V1
    expect(page.locator(tid("value-22"))).to_have_text("OPEN", timeout=TIMEOUT)
    commands = server.get("/api/os/commands?endpointId=22")
    assert commands[0]["status"] == "succeeded" and commands[0]["user"] == "brewer"
    snapshot(page, "signed-in")
    page.locator(tid("sign-out")).click()
    expect(page).to_have_url(re.compile(r"/login(\?next=/)?$"), timeout=TIMEOUT)  # the form or the socket
    page.goto(server.base_url + "/")  # the session is over: back to sign-in
    expect(page).to_have_url(re.compile(r"/login\?next=/$"), timeout=TIMEOUT)

    entries = server.get("/api/os/audit?user=brewer")
    actions = [e["action"] for e in reversed(entries)]  # oldest first
    assert actions.index("auth.login") < actions.index("command.request") < actions.index("auth.logout")
    assert "command.result" in actions
    assert {e["user"] for e in entries} == {"brewer"}
    assert [e["result"] for e in entries if e["action"] == "auth.login"] == ["ok", "failed"]  # newest first
    request = next(e for e in entries if e["action"] == "command.request")
    assert request["commandId"] == commands[0]["commandId"] and request["station"] == "127.0.0.1"

    tech = browser.new_context(viewport=VIEWPORT).new_page()  # a technician browses the journal on screen
    sign_in(tech, server, "tess", "/audit")
    expect(tech).to_have_url(server.base_url + "/audit")
    tech.locator(tid("audit-user")).fill("brewer")
    tech.locator(tid("audit-show")).click()
    table = tech.locator(tid("audit-table"))
    # in the operator's words on screen (the raw actions are in the API and the CSV)
    for action in ("signed in", "sign-in failed", "pressed", "device answered", "signed out"):
        expect(table.get_by_role("row").filter(has_text=action).first).to_be_visible(timeout=TIMEOUT)
    expect(table.get_by_role("row").filter(has_text="V1 HLT → MLT: CLOSED → OPEN").first).to_be_visible()
    snapshot(tech, "audit-journal")
    assert httpx.get(server.base_url + "/api/os/audit", timeout=5).status_code == 401  # not without sign-in


def spike(server: ServerProcess, endpoint_id: int, value: float) -> None:
    """A gateway probe reports `value` and at once a normal 60 °C again (as the device's next poll did)."""
    readings = [{"endpointId": endpoint_id, "value": value}, {"endpointId": endpoint_id, "value": 60.0}]
    response = server.post("/api/os/telemetry/ingest", {"readings": readings})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("server", ["temperatures_from_a_gateway"], indirect=True)
def test_kiosk_critical_alarm_tone_silence_ack_and_shelve_flow(server: ServerProcess, screen) -> None:
    page = screen("/alarms?kiosk=1")
    spike(server, HLT_TEMPERATURE_GATEWAY, 99.6)
    dialog = page.locator(tid("critical-dialog"))
    expect(dialog).to_contain_text("HLT temperature exceeded 99°C (99.6°C)", timeout=TIMEOUT)
    expect(page.locator(tid("tone-state"))).to_have_text("◆ CRITICAL ALARM TONE", timeout=TIMEOUT)
    page.wait_for_function("window.bevforgeTone.status().oscillator === true", timeout=TIMEOUT)
    assert page.evaluate("window.bevforgeTone.status().playing") == "critical"
    snapshot(page, "alarm-kiosk-critical")
    dialog.locator(tid("critical-silence")).click()
    page.wait_for_function("window.bevforgeTone.status().oscillator === false", timeout=TIMEOUT)
    expect(dialog).to_be_visible()  # silenced, still unacknowledged
    expect(page.locator(tid("alarm-count-critical"))).to_have_text("◆ 1 CRITICAL")
    critical = next(a for a in server.get("/api/os/alarms") if a["ruleId"] == "hlt_temperature_hihi")
    assert critical["acked"] is False
    dialog.get_by_role("button", name="ACK").click()
    expect(dialog).to_be_hidden(timeout=TIMEOUT)

    spike(server, BK_TEMPERATURE_GATEWAY, 104.0)
    high = next(a for a in server.get("/api/os/alarms") if a["ruleId"] == "bk_temperature_hi")
    row = page.locator(tid(f"alarm-row-{high['alarmId']}"))
    expect(row).to_contain_text("BK temperature exceeded 103°C (104.0°C)", timeout=TIMEOUT)
    expect(row).to_contain_text("▲ HIGH")  # priority in shape and word, not colour alone
    page.wait_for_function("window.bevforgeTone.status().playing === 'high'", timeout=TIMEOUT)  # a NEW alarm
    page.locator(tid(f"shelve-{high['alarmId']}")).click()
    page.locator(tid("ask-note")).fill("kettle lid open, probe in steam")
    snapshot(page, "alarm-shelve-dialog")
    page.locator(tid("shelve-3600")).click()
    expect(row).to_have_count(0, timeout=TIMEOUT)
    page.wait_for_function("window.bevforgeTone.status().playing === null", timeout=TIMEOUT)  # shelved: silent
    page.locator(tid("tab-shelved")).click()
    shelved = page.locator(tid("point-state-bk_temperature_hi"))
    expect(shelved).to_contain_text("SHELVED until", timeout=TIMEOUT)
    snapshot(page, "alarm-shelved")
    page.locator(tid("unshelve-bk_temperature_hi")).click()
    page.locator(tid("tab-active")).click()
    expect(row).to_be_visible(timeout=TIMEOUT)  # back, still to be acknowledged
    page.locator(tid(f"ack-{high['alarmId']}")).click()
    page.locator(tid("ask-note")).fill("lid closed")
    page.locator(tid("ack-confirm")).click()
    expect(row).to_have_count(0, timeout=TIMEOUT)
    page.locator(tid("tab-history")).click()
    history = page.locator(tid("hist-table"))
    for event in ("SHELVED", "UNSHELVED", "ACKED"):
        expect(history.get_by_role("row").filter(has_text=event).first).to_be_visible(timeout=TIMEOUT)
    snapshot(page, "alarm-history")
    journal = server.get("/api/os/alarms/history?ruleId=bk_temperature_hi")
    events = {e["event"]: e for e in journal}
    assert {"raised", "shelved", "unshelved", "acked"} <= set(events)
    assert events["shelved"]["comment"] == "kettle lid open, probe in steam"
    assert events["acked"]["comment"] == "lid closed" and events["acked"]["user"] == "anonymous"
