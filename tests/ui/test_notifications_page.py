"""The /notifications screen: recipients in privacy form, SEND TEST to a real local SMTP server, the deliveries
with their state; technicians only; the NOTIFY nav entry only on a plant with notifications."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nicegui.testing import User

from tests.support.notify import SmtpSink, running_smtp
from tests.ui.conftest import write_config
from tests.ui.support import rows, runtime, sign_in, until

SECRET = "kettle-pw-2718"


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    yield from running_smtp("bevforge", SECRET)


@pytest.fixture
def with_notifications(bevforge_env: Path, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BF_UI_SMTP_PASSWORD", SECRET)
    url = (f"mailto://bevforge:${{BF_UI_SMTP_PASSWORD}}@127.0.0.1:{smtp.port}"
           "?from=bevforge@brewery.test&to=brewer@brewery.test&mode=insecure")
    write_config(bevforge_env / "config.yaml", lambda doc: doc.update(
        auth={"mode": "required"},
        notifications={"recipients": {"brewer": {"urls": [url], "quiet_hours": {"start": "22:00", "end": "06:00"}}},
                       "routes": {"high": {"recipients": ["brewer"]}}}))
    return bevforge_env


async def test_a_technician_sees_the_recipients_and_sends_a_test_message(
        with_notifications: Path, user: User, smtp: SmtpSink) -> None:
    sign_in(user, "tom", "technician")
    await user.open("/notifications")
    await user.should_see(marker="nav-notifications")
    [recipient] = rows(user, "notifications-recipients")
    assert recipient["name"] == "brewer" and recipient["urls"].startswith("mailto://bevforge:****@127.0.0.1:")
    assert SECRET not in recipient["urls"] and recipient["quiet"] == "22:00–06:00 (still: critical)"
    user.find(marker="notifications-test").click()
    await until(lambda: smtp.to("brewer@brewery.test"))
    await until(lambda: [(r["kind"], r["state"], r["attempts"]) for r in rows(user, "notifications-deliveries")]
                == [("test", "sent", 1)])
    entries = await runtime().audit.query(action="notifications.test")
    assert [(e["user"], e["target"]) for e in entries] == [("tom", "brewer")]


async def test_an_operator_is_refused_the_notifications_screen(with_notifications: Path, user: User) -> None:
    sign_in(user, "olga", "operator")
    await user.open("/notifications")
    await user.should_see(marker="forbidden")
    await user.should_not_see(marker="notifications-deliveries")
    await user.should_not_see(marker="nav-notifications")


async def test_without_notifications_there_is_no_nav_entry_and_the_page_says_how_to_add_them(
        auth_required: Path, user: User) -> None:
    sign_in(user, "tom", "technician")
    await user.open("/notifications")
    await user.should_see(marker="notifications-off")
    await user.should_not_see(marker="nav-notifications")
