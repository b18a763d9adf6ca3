"""Notifications end to end (issue 18): the fixture brewhouse on a ManualClock, a real SMTP server (aiosmtpd,
with a password) and a real webhook receiver, both on free loopback ports, told through Apprise.

Clock minutes (escalation, retry backoff, the rate window) are stepped with the ManualClock; the tests
wait for mails and deliveries to arrive (events), never for wall-clock time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bevforge.bus import ALARM
from bevforge.clock import ManualClock
from bevforge.domain import Actor, Severity
from bevforge.notify import DeliveryState, NotificationService
from bevforge.runtime import Runtime
from drivers import driver_factories
from tests.support.notify import SmtpSink, WebhookSink, running_smtp
from tests.support.postgres import test_db_url
from tests.support.server import LiveServer, brewhouse_config, free_port, wait_for

SMTP_USER = "bevforge"
SMTP_SECRET = "Pa55-mash-tun-4711"  # from the environment (BF_SMTP_PASSWORD)
HOOK_SECRET = "hook-token-0815"  # from the secrets file (HOOK_TOKEN)
BREWER, HEAD = "brewer@brewery.test", "head@brewery.test"
OPERATOR = Actor(user="olga", station="test", role="operator")


def mailto(port: int, to: str) -> str:
    return (f"mailto://{SMTP_USER}:${{BF_SMTP_PASSWORD}}@127.0.0.1:{port}"
            f"?from=bevforge@brewery.test&to={to}&mode=insecure")


def notifications(smtp: SmtpSink, hook: WebhookSink, secrets_file: Path, **more: Any) -> Callable[[dict], None]:
    dead_port = free_port()  # nobody listens here: the pager's server is down

    def adjust(doc: dict[str, Any]) -> None:
        doc["notifications"] = {
            "secrets_file": str(secrets_file),
            "recipients": {
                "brewer": {"urls": [mailto(smtp.port, BREWER)]},
                "head_brewer": {"urls": [mailto(smtp.port, HEAD)]},
                # quiet all day but for critical alarms (the ManualClock starts at 00:00 UTC)
                "night_shift": {"urls": [f"json://hook:${{HOOK_TOKEN}}@127.0.0.1:{hook.port}/hook"],
                                "quiet_hours": {"start": "00:00", "end": "23:59", "allow": ["critical"]}},
                "pager": {"urls": [mailto(dead_port, "pager@brewery.test")]},
            },
            "routes": {
                "high": {"recipients": ["brewer", "head_brewer"], "escalate_after_min": 10},
                "medium": {"recipients": ["brewer"], "escalate_after_min": None},
                "low": {"recipients": ["night_shift"]},
                "critical": {"recipients": ["night_shift"]},
                "alert": {"recipients": ["pager"]},
            },
            "rate_limit": {"messages": 3, "per_min": 10},
            "attempts": 3, "retry_s": 30, "timeout_s": 20,
            **more,
        }
    return adjust


@pytest.fixture(autouse=True)
def no_apprise_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apprise sleeps up to 5.5 real seconds (`request_rate_per_sec`, its politeness to a service) before a
    plugin's next message. These tests step the notifications on a ManualClock, retries 30 s apart
    included, so every retry and every second message of a recipient waited those seconds of real time;
    what they check (tries, states, what arrives) is the same without the pause."""
    from apprise.plugins.base import NotifyBase

    monkeypatch.setattr(NotifyBase, "request_rate_per_sec", 0.0)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    yield from running_smtp(SMTP_USER, SMTP_SECRET)


@pytest.fixture
async def hook() -> AsyncIterator[WebhookSink]:
    sink = WebhookSink()
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop()


@pytest.fixture
def secrets_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BF_SMTP_PASSWORD", SMTP_SECRET)
    path = tmp_path / "notify.secrets"
    path.write_text(f"# notification secrets\nHOOK_TOKEN={HOOK_SECRET}\n", encoding="utf-8")
    return path


def notify_runtime(tmp_path: Path, adjust: Callable[[dict], None], clock: ManualClock) -> Runtime:
    config = brewhouse_config(adjust)
    factories, sim = driver_factories(config)
    runtime = Runtime(config, test_db_url(tmp_path / "bevforge.db"), factories, clock=clock)
    runtime.attachments["simulator"] = sim
    return runtime


@pytest.fixture
async def plant(tmp_path: Path, smtp: SmtpSink, hook: WebhookSink, secrets_file: Path
                ) -> AsyncIterator[tuple[Runtime, ManualClock]]:
    clock = ManualClock()
    runtime = notify_runtime(tmp_path, notifications(smtp, hook, secrets_file), clock)
    await runtime.start()
    try:
        yield runtime, clock
    finally:
        await runtime.stop()


def service(runtime: Runtime) -> NotificationService:
    assert runtime.notifications is not None
    return runtime.notifications


def deliveries(runtime: Runtime, **match: Any) -> list[dict[str, Any]]:
    return [d for d in service(runtime).recent(500) if all(d[k] == v for k, v in match.items())]


async def test_one_alarm_of_a_routed_priority_is_one_mail_and_escalates_while_unacknowledged(
        plant: tuple[Runtime, ManualClock], smtp: SmtpSink) -> None:
    runtime, clock = plant
    alarm = runtime.alarms.raise_alarm("mlt_overtemp", "test", Severity.HIGH, "MLT temperature high: 79.5 °C")
    await wait_for(lambda: deliveries(runtime, alarmId=alarm.id, state="sent"), timeout=10)
    [mail] = smtp.to(BREWER)
    assert mail.subject == "[BevForge] HIGH alarm: MLT temperature high: 79.5 °C"
    assert "Priority: high" in mail.body and f"Alarm: {alarm.id} (mlt_overtemp)" in mail.body
    assert smtp.to(HEAD) == []
    await clock.advance(9 * 60)  # not yet
    assert smtp.to(HEAD) == [] and deliveries(runtime, recipient="head_brewer") == []
    await clock.advance(60)  # ten minutes unacknowledged: the next in the chain is told
    await wait_for(lambda: smtp.to(HEAD), timeout=10)
    [escalated] = smtp.to(HEAD)
    assert escalated.subject.startswith("[BevForge] ESCALATED HIGH alarm") and "brewer" in escalated.body
    await clock.advance(30 * 60)  # nobody further in the chain
    await wait_for(lambda: deliveries(runtime, recipient="head_brewer", state="sent"), timeout=10)
    assert len(smtp.to(BREWER)) == 1 and len(smtp.to(HEAD)) == 1


async def test_acknowledging_stops_the_escalation(plant: tuple[Runtime, ManualClock], smtp: SmtpSink) -> None:
    runtime, clock = plant
    alarm = runtime.alarms.raise_alarm("hlt_dry", "test", Severity.HIGH, "HLT element dry-fire risk")
    await wait_for(lambda: smtp.to(BREWER), timeout=10)
    assert service(runtime).chases[alarm.id].due is not None
    runtime.alarms.ack(alarm.id, OPERATOR, "on my way")
    await wait_for(lambda: service(runtime).chases[alarm.id].due is None)  # the acked frame was read
    await clock.advance(60 * 60)
    assert smtp.to(HEAD) == [] and deliveries(runtime, recipient="head_brewer") == []


async def test_a_flood_of_a_hundred_alarms_is_a_digest_not_a_hundred_mails(
        plant: tuple[Runtime, ManualClock], smtp: SmtpSink) -> None:
    runtime, clock = plant
    for i in range(100):
        runtime.alarms.raise_alarm(f"flood_{i}", "test", Severity.MEDIUM, f"Fermenter probe {i} lost")
    # the first three within the window go out one by one; the other 97 wait for the digest
    await wait_for(lambda: len(deliveries(runtime, recipient="brewer", state="sent")) == 3, timeout=15)
    await wait_for(lambda: service(runtime).status()["recipients"][0]["held"] == 97)
    assert len(smtp.to(BREWER)) == 3
    await clock.advance(10 * 60)  # the rate window opens again: one digest
    await wait_for(lambda: deliveries(runtime, kind="digest", state="sent"), timeout=10)
    mails = smtp.to(BREWER)
    assert len(mails) == 4
    digest = mails[-1]
    assert digest.subject == "[BevForge] Digest: 97 notifications held back by the rate limit"
    for i in range(3, 100):
        assert f"Fermenter probe {i} lost" in digest.body


async def test_a_cleared_alarm_tells_everyone_already_told(plant: tuple[Runtime, ManualClock],
                                                          smtp: SmtpSink) -> None:
    runtime, clock = plant
    alarm = runtime.alarms.raise_alarm("bk_boilover", "test", Severity.HIGH, "Kettle boil-over")
    await wait_for(lambda: smtp.to(BREWER), timeout=10)
    await clock.advance(10 * 60)
    await wait_for(lambda: smtp.to(HEAD), timeout=10)
    runtime.alarms.clear("bk_boilover")
    await wait_for(lambda: len(smtp.to(BREWER)) == 2 and len(smtp.to(HEAD)) == 2, timeout=10)
    for mail in (smtp.to(BREWER)[-1], smtp.to(HEAD)[-1]):
        assert mail.subject == "[BevForge] Cleared: Kettle boil-over" and f"Alarm: {alarm.id}" in mail.body
    assert alarm.id not in service(runtime).chases


async def test_quiet_hours_hold_back_a_low_alarm_but_not_a_critical_one(
        plant: tuple[Runtime, ManualClock], hook: WebhookSink) -> None:
    runtime, _ = plant
    low = runtime.alarms.raise_alarm("glycol_low", "test", Severity.LOW, "Glycol tank level low")
    await wait_for(lambda: deliveries(runtime, alarmId=low.id, state="quiet"))
    critical = runtime.alarms.raise_alarm("co2_room", "test", Severity.CRITICAL, "CO2 in the cellar")
    await wait_for(lambda: deliveries(runtime, alarmId=critical.id, state="sent"), timeout=10)
    [post] = hook.posts  # the low one never left
    assert post["path"] == "/hook"
    assert post["body"]["title"] == "[BevForge] CRITICAL alarm: CO2 in the cellar"
    assert "Priority: critical" in post["body"]["message"]


async def test_a_program_prompt_is_told_to_the_prompt_recipients_once(
        tmp_path: Path, smtp: SmtpSink, hook: WebhookSink, secrets_file: Path) -> None:
    runtime = notify_runtime(tmp_path, notifications(smtp, hook, secrets_file, prompts=["brewer"]), ManualClock())
    await runtime.start()
    try:
        frame = {"type": "program", "unit": "brewhouse", "name": "Pale ale", "state": "running",
                 "prompts": [{"step": 2, "key": "add_grain", "message": "Add the grain, then confirm",
                              "since": "2026-01-01T00:00:00Z", "overdue": False}]}
        runtime.bus.publish("program", dict(frame), key="brewhouse")
        runtime.bus.publish("program", dict(frame), key="brewhouse")  # the same prompt still waiting
        await wait_for(lambda: deliveries(runtime, kind="prompt", state="sent"), timeout=10)
        [mail] = smtp.to(BREWER)
        assert mail.subject == "[BevForge] brewhouse: waiting for you — Add the grain, then confirm"
        assert len(deliveries(runtime, kind="prompt")) == 1
    finally:
        await runtime.stop()


async def test_a_dead_mail_server_delays_no_alarm_handling_and_shows_failed_with_retries(
        tmp_path: Path, smtp: SmtpSink, hook: WebhookSink, secrets_file: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = ManualClock()
    adjust = notifications(smtp, hook, secrets_file)

    def secured(doc: dict[str, Any]) -> None:
        adjust(doc)
        doc["auth"] = {"mode": "required"}

    live = LiveServer(notify_runtime(tmp_path, secured, clock), free_port())
    await live.start()
    try:
        runtime = live.runtime
        tokens = {role: runtime.auth.create_token(f"{role}-token", role, None, "test")[1]
                  for role in ("viewer", "operator", "technician")}
        events = runtime.bus.subscribe(lambda e: e.type == ALARM, name="test")
        async def next_word() -> str:
            async with asyncio.timeout(10):
                return (await events.get()).payload["event"]

        # an alert (a refused press: momentary, acknowledged by the system) is routed to the pager, whose
        # mail server is down
        runtime.alarms.raise_alarm("pump_refused", "test", Severity.ALERT, "Transfer pump start refused",
                                   momentary=True)
        assert [await next_word() for _ in range(3)] == ["raised", "cleared", "acked"]
        # a real alarm is raised and acknowledged over REST while the pager's tries fail
        alarm = runtime.alarms.raise_alarm("fv1_hot", "test", Severity.HIGH, "FV1 temperature high")
        assert await next_word() == "raised"
        answer = await live.http.post(f"/api/os/alarms/{alarm.id}/ack", json={"comment": "seen"},
                                      headers={"Authorization": f"Bearer {tokens['operator']}"})
        assert answer.status_code == 200 and answer.json()["acked"] is True
        assert await next_word() == "acked"
        events.close("done")

        def pager(**match: Any) -> list[dict[str, Any]]:
            return deliveries(runtime, recipient="pager", kind="alarm", **match)

        await wait_for(lambda: pager(state="retrying", attempts=1), timeout=10)
        await clock.advance(30)
        await wait_for(lambda: pager(state="retrying", attempts=2), timeout=10)
        await clock.advance(60)
        await wait_for(lambda: pager(state="failed"), timeout=10)

        viewer = await live.http.get("/api/notifications/deliveries",
                                     headers={"Authorization": f"Bearer {tokens['viewer']}"})
        assert viewer.status_code == 403
        answer = await live.http.get("/api/notifications/deliveries",
                                     headers={"Authorization": f"Bearer {tokens['technician']}"})
        assert answer.status_code == 200
        body = answer.json()
        [failed] = [d for d in body["deliveries"] if d["recipient"] == "pager" and d["kind"] == "alarm"]
        assert failed["state"] == "failed" and failed["attempts"] == 3 and failed["kind"] == "alarm"
        assert "Connection" in failed["lastError"] and "****" in failed["lastError"]
        assert failed["title"] == "[BevForge] ALERT alarm: Transfer pump start refused"
        shown = {r["name"]: r for r in body["recipients"]}
        assert shown["pager"]["urls"][0].startswith("mailto://bevforge:****@127.0.0.1:")
        assert shown["night_shift"]["urls"][0].startswith("json://hook:****@127.0.0.1:")
        # the secrets were used (the SMTP server took the brewer's login) and are shown nowhere
        await wait_for(lambda: smtp.to(BREWER), timeout=10)
        assert smtp.refused_logins == 0
        for secret in (SMTP_SECRET, HOOK_SECRET):
            assert secret not in answer.text
            assert secret not in caplog.text
        assert "try 1 failed" in caplog.text and "failed after 3 tries" in caplog.text
    finally:
        await live.stop()


async def test_a_technician_sends_a_test_message_and_it_is_audited(
        tmp_path: Path, smtp: SmtpSink, hook: WebhookSink, secrets_file: Path) -> None:
    adjust = notifications(smtp, hook, secrets_file)

    def secured(doc: dict[str, Any]) -> None:
        adjust(doc)
        doc["auth"] = {"mode": "required"}

    live = LiveServer(notify_runtime(tmp_path, secured, ManualClock()), free_port())
    await live.start()
    try:
        runtime = live.runtime
        tech = runtime.auth.create_token("tech", "technician", None, "test")[1]
        operator = runtime.auth.create_token("op", "operator", None, "test")[1]
        as_tech = {"Authorization": f"Bearer {tech}"}
        refused = await live.http.post("/api/notifications/test", json={"recipient": "brewer"},
                                       headers={"Authorization": f"Bearer {operator}"})
        assert refused.status_code == 403
        unknown = await live.http.post("/api/notifications/test", json={"recipient": "nobody"}, headers=as_tech)
        assert unknown.status_code == 404 and unknown.json()["field"] == "recipient"
        empty = await live.http.post("/api/notifications/test", json={}, headers=as_tech)
        assert empty.status_code == 422 and empty.json()["field"] == "recipient"
        sent = await live.http.post("/api/notifications/test", json={"recipient": "brewer"}, headers=as_tech)
        assert sent.status_code == 200 and sent.json()["kind"] == "test"
        await wait_for(lambda: smtp.to(BREWER), timeout=10)
        assert smtp.to(BREWER)[0].subject == "[BevForge] Test message"
        await wait_for(lambda: deliveries(runtime, kind="test", state="sent"))
        entries = await runtime.audit.query(action="notifications.test")
        assert entries and entries[0]["user"] == "token:tech" and entries[0]["target"] == "brewer"
        # the node rule: a technician of the HLT only does not see the deliveries of a fermenter's alarm
        alarm = runtime.alarms.raise_alarm("fv1_hot", "test", Severity.HIGH, "FV1 temperature high", node="FV1")
        await wait_for(lambda: deliveries(runtime, alarmId=alarm.id, state="sent"), timeout=10)
        hlt_tech = runtime.auth.create_token("hlt-tech", "technician", ["HLT"], "test")[1]
        limited = (await live.http.get("/api/notifications/deliveries",
                                       headers={"Authorization": f"Bearer {hlt_tech}"})).json()["deliveries"]
        assert [d["kind"] for d in limited] == ["test"]  # a test message is every technician's
        everything = (await live.http.get("/api/notifications/deliveries", headers=as_tech)).json()["deliveries"]
        assert [d["alarmId"] for d in everything] == [alarm.id, None]
    finally:
        await live.stop()


async def test_without_a_notifications_section_nothing_is_built(server: LiveServer) -> None:
    assert server.runtime.notifications is None
    answer = await server.http.get("/api/notifications/deliveries")
    assert answer.status_code == 200 and answer.json()["enabled"] is False
    assert (await server.http.post("/api/notifications/test", json={"recipient": "brewer"})).status_code == 404
    assert DeliveryState.FAILED.value == "failed"


async def test_a_mail_server_that_never_answers_holds_no_alarm_up(
        tmp_path: Path, smtp: SmtpSink, hook: WebhookSink, secrets_file: Path) -> None:
    """The try hangs in the silent server's socket (on the notifications' thread pool) while the alarm is raised and
    acknowledged; the try then ends at `timeout_s` and is retried."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, say nothing

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    adjust = notifications(smtp, hook, secrets_file, timeout_s=1)

    def slow_pager(doc: dict[str, Any]) -> None:
        adjust(doc)
        doc["notifications"]["recipients"]["pager"] = {"urls": [mailto(port, "pager@brewery.test") + "&cto=3"]}
        doc["notifications"]["routes"]["high"] = {"recipients": ["pager"]}

    clock = ManualClock()
    runtime = notify_runtime(tmp_path, slow_pager, clock)
    await runtime.start()
    try:
        events = runtime.bus.subscribe(lambda e: e.type == ALARM, name="test")
        alarm = runtime.alarms.raise_alarm("fv2_hot", "test", Severity.HIGH, "FV2 temperature high")
        await wait_for(lambda: held and deliveries(runtime, recipient="pager", state="sending"), timeout=10)
        runtime.alarms.ack(alarm.id, OPERATOR)  # while the try hangs
        async with asyncio.timeout(10):
            assert [(await events.get()).payload["event"] for _ in range(2)] == ["raised", "acked"]
        assert deliveries(runtime, recipient="pager", state="sending")  # still hanging: nobody waited for it
        events.close("done")
        await wait_for(lambda: deliveries(runtime, recipient="pager", state="retrying"), timeout=10)
        [retrying] = deliveries(runtime, recipient="pager")
        assert retrying["attempts"] == 1 and "no answer within 1 s" in retrying["lastError"]
    finally:
        await runtime.stop()
        for writer in held:
            writer.close()
        listener.close()
