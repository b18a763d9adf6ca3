"""Anti-chatter: deadband, on-delay, off-delay; deviation, rate and discrete kinds."""

from __future__ import annotations

import random

from bevforge.alarms.rules import ConditionTracker
from bevforge.alarms.states import AlarmEvent
from bevforge.config import AlarmRule


def rule(**kw: object) -> AlarmRule:
    base: dict[str, object] = {"id": "r", "kind": "HI", "endpoint": 1, "limit": 100.0, "message": "m"}
    base.update(kw)
    return AlarmRule.model_validate(base)


def run(tracker: ConditionTracker, samples: list[tuple[float, float]], reference: float | None = None) -> list:
    return [e for t, v in samples if (e := tracker.update(v, t, reference)) is not None]


def test_noise_within_deadband_raises_exactly_one_alarm() -> None:
    tracker = ConditionTracker(rule(deadband=2.0))
    rng = random.Random(7)
    samples = [(float(t), 100.0 + rng.uniform(-0.9, 0.9) * 2.0) for t in range(2000)]
    samples.insert(0, (-1.0, 100.5))  # start just beyond the limit
    events = run(tracker, samples)
    assert events == [AlarmEvent.CONDITION_TRUE]


def test_clears_only_below_limit_minus_deadband() -> None:
    tracker = ConditionTracker(rule(deadband=2.0))
    assert run(tracker, [(0, 101), (1, 99), (2, 98.5)]) == [AlarmEvent.CONDITION_TRUE]
    assert run(tracker, [(3, 97.9)]) == [AlarmEvent.CONDITION_FALSE]


def test_spike_shorter_than_on_delay_raises_nothing() -> None:
    tracker = ConditionTracker(rule(on_delay_s=10))
    assert run(tracker, [(0, 99), (1, 150), (5, 150), (9.9, 150), (10, 99), (30, 99)]) == []
    assert tracker.tick(40) is None


def test_sustained_excursion_raises_after_on_delay_even_without_new_samples() -> None:
    tracker = ConditionTracker(rule(on_delay_s=10))
    assert run(tracker, [(0, 120)]) == []
    assert tracker.pending
    assert tracker.tick(9.0) is None
    assert tracker.tick(10.0) is AlarmEvent.CONDITION_TRUE


def test_off_delay_holds_the_alarm() -> None:
    tracker = ConditionTracker(rule(off_delay_s=5))
    run(tracker, [(0, 120)])
    assert run(tracker, [(1, 90), (3, 90), (4, 120), (5, 90)]) == []
    assert tracker.tick(9.9) is None
    assert tracker.tick(10.0) is AlarmEvent.CONDITION_FALSE


def test_low_alarm() -> None:
    tracker = ConditionTracker(rule(kind="LO", limit=2.0, deadband=0.5))
    assert run(tracker, [(0, 3), (1, 1.9), (2, 2.3), (3, 2.6)]) == [AlarmEvent.CONDITION_TRUE,
                                                                     AlarmEvent.CONDITION_FALSE]


def test_deviation_from_setpoint() -> None:
    tracker = ConditionTracker(rule(kind="deviation", limit=5.0, setpoint=2))
    assert run(tracker, [(0, 66)], reference=65.0) == []
    assert run(tracker, [(1, 71)], reference=65.0) == [AlarmEvent.CONDITION_TRUE]
    assert tracker.update(71, 2, None) is None  # no trustworthy reference: frozen


def test_rate_of_change_per_minute() -> None:
    tracker = ConditionTracker(rule(kind="rate", limit=1.0, rate_window_s=60))
    slow = [(float(t), 20 + t * 0.01) for t in range(0, 120, 5)]  # 0.6 °C/min
    assert run(tracker, slow) == []
    fast = [(120.0 + t, 21.2 + t * 0.05) for t in range(0, 60, 5)]  # 3 °C/min
    assert run(tracker, fast) == [AlarmEvent.CONDITION_TRUE]


def test_discrete_state() -> None:
    tracker = ConditionTracker(rule(kind="discrete", limit=None, value=True))
    assert run(tracker, [(0, False), (1, True), (2, True), (3, False)]) == [AlarmEvent.CONDITION_TRUE,
                                                                            AlarmEvent.CONDITION_FALSE]
