"""The NOTIFY screen in Chromium against `python main.py`: a test message to a real local SMTP server goes out,
one to a dead mail server fails after its retries, and no secret is on the page (the picture in
docs/integrations.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, expect

from drivers.sim.ports import use_simulator_ports
from tests.e2e.conftest import VIEWPORT, ServerProcess, snapshot
from tests.support.notify import SmtpSink, running_smtp
from tests.support.server import config_document, free_port

TIMEOUT = 15_000  # ms; a ceiling for a loaded machine, not a speed requirement
SECRET = "glycol-chiller-9931"


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    yield from running_smtp("bevforge", SECRET)


@pytest.fixture
def notifying_server(tmp_path: Path, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    monkeypatch.setenv("SMTP_PASSWORD", SECRET)  # the server process inherits the environment
    doc = config_document()
    use_simulator_ports(doc, free_port(), str(tmp_path / "probe"))

    def mailto(port: int, to: str) -> str:
        return (f"mailto://bevforge:${{SMTP_PASSWORD}}@127.0.0.1:{port}"
                f"?from=bevforge@brewery.lan&to={to}&mode=insecure")

    doc["notifications"] = {
        "recipients": {
            "brewer": {"urls": [mailto(smtp.port, "brewer@brewery.lan")],
                       "quiet_hours": {"start": "22:00", "end": "06:30", "allow": ["critical", "high"]}},
            "night_pager": {"urls": [mailto(free_port(), "pager@brewery.lan")]},  # nobody listens there
        },
        "routes": {"high": {"recipients": ["brewer", "night_pager"], "escalate_after_min": 15}},
        "attempts": 2, "retry_s": 1, "retry_max_s": 1,
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    proc = ServerProcess(free_port(), tmp_path / "bevforge.db", tmp_path / "server.log", config)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def test_the_notify_screen_shows_a_sent_and_a_failed_delivery(browser: Browser, notifying_server: ServerProcess,
                                                              smtp: SmtpSink) -> None:
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(notifying_server.base_url + "/")
    page.locator("#bf-connection[data-state=online]").wait_for(timeout=TIMEOUT)
    page.locator(tid("nav-notifications")).click()
    page.locator(tid("notifications-test")).click()  # the first recipient: brewer
    table = page.locator(tid("notifications-deliveries"))
    expect(table.get_by_role("row").filter(has_text="brewer").filter(has_text="sent")).to_have_count(
        1, timeout=TIMEOUT)
    assert [m.subject for m in smtp.to("brewer@brewery.lan")] == ["[BevForge] Test message"]
    answer = notifying_server.post("/api/notifications/test", {"recipient": "night_pager"})
    assert answer.status_code == 200
    expect(table.get_by_role("row").filter(has_text="night_pager").filter(has_text="failed")).to_have_count(
        1, timeout=TIMEOUT)
    expect(page.locator(tid("notifications-recipients"))).to_contain_text("mailto://bevforge:****@127.0.0.1")
    assert SECRET not in page.content()
    snapshot(page, "notifications")
