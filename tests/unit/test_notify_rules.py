"""Notifications' pure parts: the config section (file:line errors, no written password), quiet hours, the rate
window, the escalation chase, and the secrets' mask (environment, secrets file, URL-encoded, log lines)."""

from __future__ import annotations

import logging
from datetime import time
from pathlib import Path

import pytest

from bevforge.config import ConfigError, NotifyRateLimit, NotifyRoute, QuietHours, parse_config
from bevforge.notify.policy import Chase, RateWindow, in_quiet_hours, quiet_for
from bevforge.notify.secrets import MaskingFilter, MissingSecret, SecretBook, read_secrets_file
from bevforge.notify.sender import load_target
from tests.unit.test_config import MINIMAL

SECTION = """\
notifications:
  recipients:
    brewer:
      urls: ["mailto://bevforge:${SMTP_PW}@mail.lan?to=brewer@brewery.test"]
      quiet_hours: {start: "22:00", end: "06:30"}
    head_brewer: {urls: ["ntfy://brewery-alarms"]}
  routes:
    high: {recipients: [brewer, head_brewer], escalate_after_min: 10}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + text, "plant.yaml")
    return [str(p) for p in info.value.problems]


def test_absent_means_no_notifications_and_a_full_section_reads() -> None:
    assert parse_config(MINIMAL, "plant.yaml").notifications is None
    settings = parse_config(MINIMAL + SECTION, "plant.yaml").notifications
    assert settings is not None and settings.routes["high"].recipients == ["brewer", "head_brewer"]
    assert settings.recipients["brewer"].quiet_hours == QuietHours(start="22:00", end="06:30", allow=["critical"])
    assert settings.on_clear is True and settings.rate_limit.messages == 5 and settings.attempts == 5


def test_a_route_to_an_unknown_recipient_is_refused_with_its_line() -> None:
    [found] = problems(SECTION.replace("[brewer, head_brewer]", "[brewer, nobody]"))
    line = (MINIMAL + SECTION).splitlines().index("notifications:") + 1
    assert found.startswith(f"plant.yaml:{line}: notifications:") and "routes.high: unknown recipient 'nobody'" in found


def test_a_bad_quiet_hour_and_an_unknown_priority_name_their_fields() -> None:
    found = problems(SECTION.replace('"22:00"', '"25:00"').replace("    high:", "    urgent:"))
    assert any("notifications.recipients.brewer.quiet_hours.start" in p for p in found), found
    assert any("notifications.routes.urgent" in p for p in found), found


def test_a_password_written_into_a_url_is_refused() -> None:
    [found] = problems(SECTION.replace("${SMTP_PW}", "hunter2"))
    assert "notifications.recipients.brewer.urls" in found and "${NAME}" in found and "hunter2" not in found


@pytest.mark.parametrize(("start", "end", "at", "quiet"), [
    ("22:00", "06:30", "23:15", True), ("22:00", "06:30", "03:00", True), ("22:00", "06:30", "06:30", False),
    ("22:00", "06:30", "12:00", False), ("12:00", "13:00", "12:30", True), ("12:00", "13:00", "13:00", False),
    ("08:00", "08:00", "08:00", False)])
def test_quiet_hours_may_cross_midnight(start: str, end: str, at: str, quiet: bool) -> None:
    hours, minutes = map(int, at.split(":"))
    assert in_quiet_hours(QuietHours(start=start, end=end), time(hours, minutes)) is quiet


def test_quiet_hours_let_the_allowed_priorities_through() -> None:
    night = QuietHours(start="22:00", end="06:00", allow=["critical", "high"])
    assert quiet_for(night, time(23), "low") and quiet_for(night, time(23), "medium")
    assert not quiet_for(night, time(23), "critical") and not quiet_for(night, time(23), "high")
    assert not quiet_for(night, time(12), "low") and not quiet_for(None, time(23), "low")


def test_the_rate_window_slides() -> None:
    window = RateWindow(NotifyRateLimit(messages=2, per_min=10))
    window.take(0)
    window.take(100)
    assert not window.allows(200) and window.next_free(200) == 600
    assert window.allows(600) and window.next_free(600) == 600


def test_the_chase_escalates_along_its_route_until_stopped() -> None:
    chase = Chase(7, "high", NotifyRoute(recipients=["a", "b", "c"], escalate_after_min=5))
    assert chase.first(0) == "a" and chase.due == 300
    assert chase.escalate(299) is None and chase.escalate(300) == "b" and chase.due == 600
    chase.stop()
    assert chase.escalate(10_000) is None
    last = Chase(8, "high", NotifyRoute(recipients=["a", "b"], escalate_after_min=5))
    last.first(0)
    assert last.escalate(300) == "b" and last.due is None  # nobody left
    never = Chase(9, "high", NotifyRoute(recipients=["a", "b"], escalate_after_min=None))
    never.first(0)
    assert never.due is None


def test_secrets_come_from_the_environment_or_the_file_and_are_masked(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secrets"
    path.write_text("# comment\nTOKEN=tok/en+1\nSMTP_PW=from-file\n", encoding="utf-8")
    values, problem = read_secrets_file(str(path))
    assert problem is None and values == {"TOKEN": "tok/en+1", "SMTP_PW": "from-file"}
    monkeypatch.setenv("SMTP_PW", "from-env")  # the environment wins
    book = SecretBook(values)
    assert book.resolve("mailto://u:${SMTP_PW}@h") == "mailto://u:from-env@h"
    assert book.mask("said from-env, tok/en+1 and tok%2Fen%2B1") == "said ****, **** and ****"
    with pytest.raises(MissingSecret, match=r"\$\{NOPE\}"):
        book.resolve("json://${NOPE}@h")
    _, problem = read_secrets_file(str(tmp_path / "missing"))
    assert problem is not None and "notifications.secrets_file" in problem


def test_a_log_line_with_a_secret_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    book = SecretBook({"PW": "s3cr3t-value"})
    logger = logging.getLogger("apprise")
    masking = MaskingFilter(book)
    logger.addFilter(masking)
    try:
        with caplog.at_level(logging.WARNING, logger="apprise"):
            logger.warning("login %s refused by %s", "bevforge:s3cr3t-value", "mail.lan")
    finally:
        logger.removeFilter(masking)
    assert "s3cr3t-value" not in caplog.text and "login bevforge:**** refused by mail.lan" in caplog.text


def test_a_url_whose_secret_is_missing_is_kept_with_its_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    target = load_target("brewer", ["mailto://u:${NOT_SET_ANYWHERE}@mail.lan?to=a@b.test", "ntfy://alarms"],
                         SecretBook())
    missing, ntfy = target.channels
    assert missing.plugin is None and missing.shown == "mailto://u:${NOT_SET_ANYWHERE}@mail.lan?to=a@b.test"
    assert missing.problem is not None and "NOT_SET_ANYWHERE" in missing.problem
    assert ntfy.plugin is not None and ntfy.problem is None and ntfy.shown.startswith("ntfy")
