"""The event bus on its own: serialise once, coalesce telemetry, never drop critical events."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from bevforge.bus import ALARM, COMMAND_STATUS, TELEMETRY, Event, EventBus, SubscriberClosed


def telemetry(bus: EventBus, endpoint_id: int, value: float) -> Event:
    return bus.publish(TELEMETRY, {"type": TELEMETRY, "endpointId": endpoint_id, "value": value},
                       key=endpoint_id, node="HLT")


def status(bus: EventBus, command_id: str, state: str) -> Event:
    return bus.publish(COMMAND_STATUS, {"type": COMMAND_STATUS, "commandId": command_id, "status": state})


async def test_event_is_serialised_once_and_shared_by_every_subscriber() -> None:
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    event = telemetry(bus, 10, 65.5)
    [a] = await first.get_many()
    [b] = await second.get_many()
    assert a is b is event
    assert orjson.loads(event.data) == {"type": "telemetry", "endpointId": 10, "value": 65.5, "seq": 1}


async def test_lagging_subscriber_gets_latest_telemetry_per_endpoint_in_first_seen_order() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    for value in (1.0, 2.0, 3.0):
        telemetry(bus, 10, value)
        telemetry(bus, 11, value * 10)
    events = await sub.get_many()
    assert [(e.payload["endpointId"], e.payload["value"]) for e in events] == [(10, 3.0), (11, 30.0)]
    assert sub.coalesced == 4
    assert sub.high_water == 2


async def test_critical_events_are_never_coalesced_and_keep_their_order() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    for state in ("queued", "sent", "acked", "succeeded"):
        status(bus, "c1", state)
    telemetry(bus, 10, 1.0)
    bus.publish(ALARM, {"type": ALARM, "alarmId": 1, "event": "raised"})
    bus.publish(ALARM, {"type": ALARM, "alarmId": 1, "event": "acked"})
    events = await sub.get_many()
    assert [e.payload.get("status") or e.payload.get("event") or e.type for e in events] == [
        "queued", "sent", "acked", "succeeded", "telemetry", "raised", "acked"]


async def test_subscriber_that_lets_critical_events_pile_up_is_closed_with_a_reason() -> None:
    bus = EventBus()
    slow = bus.subscribe(limit=8, name="slow")
    fast = bus.subscribe(limit=8, name="fast")
    for i in range(9):
        status(bus, f"c{i}", "queued")
        assert len(await fast.get_many()) == 1  # the fast one keeps up and is never closed
    assert slow.closed_reason is not None and "too slow" in slow.closed_reason
    assert len(slow) == 0  # its backlog is released at once
    assert bus.subscriber_count == 1
    with pytest.raises(SubscriberClosed) as exc:
        await slow.get_many()
    assert "too slow" in exc.value.reason
    assert fast.closed_reason is None


async def test_telemetry_alone_never_closes_a_subscriber_and_stays_bounded_by_endpoints() -> None:
    bus = EventBus()
    sub = bus.subscribe(limit=8)
    for i in range(10_000):
        telemetry(bus, 10 + i % 5, float(i))
    assert sub.closed_reason is None
    assert len(sub) == 5 and sub.high_water == 5
    assert [e.payload["value"] for e in await sub.get_many()] == [9995.0, 9996.0, 9997.0, 9998.0, 9999.0]


async def test_filter_selects_events_and_a_failing_filter_costs_only_its_subscriber() -> None:
    bus = EventBus()
    only_11 = bus.subscribe(lambda e: e.payload.get("endpointId") == 11)
    broken = bus.subscribe(lambda e: e.payload["missing"])
    telemetry(bus, 10, 1.0)
    telemetry(bus, 11, 2.0)
    assert [e.payload["endpointId"] for e in await only_11.get_many()] == [11]
    assert broken.closed_reason is not None and "filter" in broken.closed_reason


async def test_get_many_waits_for_the_next_event_and_wakes_on_close() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    waiter = asyncio.create_task(sub.get_many())
    await asyncio.sleep(0)
    assert not waiter.done()
    telemetry(bus, 10, 1.0)
    assert [e.payload["value"] for e in await waiter] == [1.0]
    waiter = asyncio.create_task(sub.get_many())
    await asyncio.sleep(0)
    sub.close("bye")
    with pytest.raises(SubscriberClosed):
        await waiter


async def test_get_many_returns_at_most_max_items() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    for i in range(5):
        status(bus, f"c{i}", "queued")
    assert len(await sub.get_many(max_items=3)) == 3
    assert len(await sub.get_many(max_items=3)) == 2


def test_ring_buffer_replays_every_event_after_a_sequence_number() -> None:
    bus = EventBus(history=100)
    for i in range(10):
        telemetry(bus, 10, float(i))  # the ring buffer never coalesces
    replay = bus.since(6)
    assert replay is not None
    assert [e.seq for e in replay] == [7, 8, 9, 10]
    assert bus.since(10) == []
    assert [e.seq for e in bus.since(0) or []] == list(range(1, 11))


def test_ring_buffer_reports_a_gap_it_cannot_fill() -> None:
    bus = EventBus(history=10)
    for i in range(25):
        telemetry(bus, 10, float(i))
    assert [e.seq for e in bus.recent] == list(range(16, 26))
    assert bus.since(14) is None  # 15 is gone
    assert [e.seq for e in bus.since(15) or []] == list(range(16, 26))
    assert bus.since(99) is None  # an id from a previous run of the server
    assert EventBus().since(0) == []
    assert EventBus().since(3) is None


async def test_wait_closed_reports_the_reason() -> None:
    bus = EventBus()
    sub = bus.subscribe(limit=8)
    waiter = asyncio.create_task(sub.wait_closed())
    for i in range(9):
        status(bus, f"c{i}", "queued")
    assert "too slow" in await waiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_consumer_that_takes_nothing_for_stall_s_is_cut_off_for_its_own_backlog() -> None:
    bus = EventBus()
    bus.clock = clock = FakeClock()
    stuck = bus.subscribe(stall_s=30, name="stuck")
    reader = bus.subscribe(stall_s=30, name="reader")
    for second in range(0, 61, 5):  # telemetry only: coalesced, one frame waiting; never over the limit
        clock.now = 1000.0 + second
        telemetry(bus, 10, float(second))
        assert await reader.get_many()
    assert stuck.closed_reason is not None and "took no frame for 30 s" in stuck.closed_reason
    assert reader.closed_reason is None
    assert stuck.high_water == 1  # cut off while its backlog was one coalesced frame


async def test_an_idle_consumer_is_not_slow_when_frames_arrive_after_a_quiet_hour() -> None:
    bus = EventBus()
    bus.clock = clock = FakeClock()
    sub = bus.subscribe(stall_s=30)
    clock.now += 3600  # nothing to take for an hour: no backlog, so no judgement
    status(bus, "c1", "queued")
    clock.now += 29
    status(bus, "c1", "sent")
    assert sub.closed_reason is None
    assert [e.payload["status"] for e in await sub.get_many()] == ["queued", "sent"]


async def test_in_process_consumers_without_stall_s_are_never_cut_off_by_time() -> None:
    bus = EventBus()
    bus.clock = clock = FakeClock()
    screen = bus.subscribe()
    telemetry(bus, 10, 1.0)
    clock.now += 3600
    telemetry(bus, 10, 2.0)
    assert screen.closed_reason is None


def test_the_ring_keeps_each_event_as_its_text_and_replays_the_same_frame() -> None:
    bus = EventBus(history=10)
    event = telemetry(bus, 10, 65.5)
    assert not hasattr(bus.recent[0], "payload")  # no payload dict held for resume: half the memory
    [again] = bus.since(0) or []
    assert again.data is event.data and again.payload == event.payload
    assert (again.seq, again.type, again.key, again.node) == (event.seq, event.type, event.key, event.node)


def test_the_ring_also_forgets_events_older_than_history_s() -> None:
    bus = EventBus(history=1000, history_s=300)
    bus.clock = clock = FakeClock()
    for _ in range(5):
        telemetry(bus, 10, 1.0)
    clock.now += 200
    for _ in range(5):
        telemetry(bus, 10, 2.0)
    assert [e.seq for e in bus.since(0) or []] == list(range(1, 11))
    clock.now += 150  # the first five are now 350 s old
    telemetry(bus, 10, 3.0)
    assert [e.seq for e in bus.recent] == list(range(6, 12))
    assert bus.since(0) is None  # too old to replay: the client resynchronises from a snapshot
    assert [e.seq for e in bus.since(5) or []] == list(range(6, 12))
