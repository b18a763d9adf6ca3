"""Every ISA-18.2 transition of an alarm point, as a table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bevforge.alarms.states import AlarmEvent as E
from bevforge.alarms.states import DisplayState as D
from bevforge.alarms.states import PointState, TransitionRefused, apply

NORMAL = PointState()
UNACK = PointState(active=True, acked=False)
ACKED = PointState(active=True, acked=True)
RTN_UNACK = PointState(active=False, acked=False)
LATCHED_ACTIVE = PointState(active=True, acked=False, latched=True)
LATCHED_RTN = PointState(active=False, acked=True, latched=True)
LATCHED_RTN_UNACK = PointState(active=False, acked=False, latched=True)
UNTIL = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SHELVED_TIMED_ACTIVE = PointState(active=True, acked=True, shelf="timed", shelved_until=UNTIL)
SHELVED_ONESHOT_ACTIVE = PointState(active=True, acked=False, shelf="oneshot")
SUPPRESSED_ACTIVE = PointState(active=True, acked=False, suppressed=True)
OOS = PointState(out_of_service=True)

TABLE = [
    # start, event, latching, until, end display, journal words
    (NORMAL, E.CONDITION_TRUE, False, None, D.UNACKNOWLEDGED, ["raised"]),
    (NORMAL, E.CONDITION_TRUE, True, None, D.UNACKNOWLEDGED, ["raised"]),
    (UNACK, E.ACK, False, None, D.ACKNOWLEDGED, ["acked"]),
    (UNACK, E.CONDITION_FALSE, False, None, D.RTN_UNACKNOWLEDGED, ["cleared"]),
    (ACKED, E.CONDITION_FALSE, False, None, D.NORMAL, ["cleared"]),
    (RTN_UNACK, E.ACK, False, None, D.NORMAL, ["acked"]),
    (RTN_UNACK, E.CONDITION_TRUE, False, None, D.UNACKNOWLEDGED, ["raised"]),
    (UNACK, E.CONDITION_TRUE, False, None, D.UNACKNOWLEDGED, []),
    (NORMAL, E.CONDITION_FALSE, False, None, D.NORMAL, []),
    (LATCHED_ACTIVE, E.CONDITION_FALSE, True, None, D.LATCHED, ["cleared"]),
    (LATCHED_RTN_UNACK, E.ACK, True, None, D.LATCHED, ["acked"]),
    (LATCHED_RTN, E.RESET, True, None, D.NORMAL, ["reset"]),
    (ACKED, E.SHELVE, False, UNTIL, D.SHELVED, ["shelved"]),
    (ACKED, E.SHELVE, False, None, D.SHELVED, ["shelved"]),
    (SHELVED_TIMED_ACTIVE, E.SHELF_EXPIRED, False, None, D.UNACKNOWLEDGED, ["shelf_expired", "reannunciated"]),
    (SHELVED_TIMED_ACTIVE, E.UNSHELVE, False, None, D.UNACKNOWLEDGED, ["unshelved", "reannunciated"]),
    (PointState(shelf="timed", shelved_until=UNTIL), E.SHELF_EXPIRED, False, None, D.NORMAL, ["shelf_expired"]),
    (NORMAL, E.SHELF_EXPIRED, False, None, D.NORMAL, []),
    (SHELVED_ONESHOT_ACTIVE, E.CONDITION_FALSE, False, None, D.RTN_UNACKNOWLEDGED, ["cleared", "unshelved"]),
    (SHELVED_TIMED_ACTIVE, E.CONDITION_FALSE, False, None, D.SHELVED, ["cleared"]),
    (UNACK, E.SUPPRESS, False, None, D.SUPPRESSED, ["suppressed"]),
    (SUPPRESSED_ACTIVE, E.UNSUPPRESS, False, None, D.UNACKNOWLEDGED, ["unsuppressed", "reannunciated"]),
    (PointState(suppressed=True), E.UNSUPPRESS, False, None, D.NORMAL, ["unsuppressed"]),
    (PointState(suppressed=True), E.SUPPRESS, False, None, D.SUPPRESSED, []),
    (PointState(suppressed=True), E.CONDITION_TRUE, False, None, D.SUPPRESSED, ["raised"]),
    (UNACK, E.REMOVE_FROM_SERVICE, False, None, D.OUT_OF_SERVICE, ["out_of_service"]),
    (SHELVED_TIMED_ACTIVE, E.REMOVE_FROM_SERVICE, False, None, D.OUT_OF_SERVICE, ["out_of_service"]),
    (OOS, E.CONDITION_TRUE, False, None, D.OUT_OF_SERVICE, ["raised"]),
    (OOS, E.RETURN_TO_SERVICE, False, None, D.NORMAL, ["in_service"]),
    (PointState(active=True, acked=False, out_of_service=True), E.RETURN_TO_SERVICE, False, None,
     D.UNACKNOWLEDGED, ["in_service"]),
]


@pytest.mark.parametrize(("start", "event", "latching", "until", "display", "words"), TABLE)
def test_transition(start: PointState, event: E, latching: bool, until: datetime | None, display: D,
                    words: list[str]) -> None:
    end, said = apply(start, event, latching=latching, until=until)
    assert end.display is display
    assert said == words


REFUSED = [
    (ACKED, E.ACK),
    (NORMAL, E.ACK),
    (LATCHED_ACTIVE, E.RESET),  # cannot reset while the condition is still active
    (NORMAL, E.RESET),  # not latched
    (NORMAL, E.UNSHELVE),
    (OOS, E.SHELVE),
    (OOS, E.REMOVE_FROM_SERVICE),
    (NORMAL, E.RETURN_TO_SERVICE),
]


@pytest.mark.parametrize(("start", "event"), REFUSED)
def test_refused(start: PointState, event: E) -> None:
    with pytest.raises(TransitionRefused):
        apply(start, event)


def test_latched_alarm_survives_return_to_normal_until_reset() -> None:
    point, _ = apply(NORMAL, E.CONDITION_TRUE, latching=True)
    point, _ = apply(point, E.ACK, latching=True)
    point, _ = apply(point, E.CONDITION_FALSE, latching=True)
    assert point.display is D.LATCHED and point.standing
    point, _ = apply(point, E.RESET, latching=True)
    assert point.display is D.NORMAL and not point.standing


def test_every_display_state_is_reachable() -> None:
    reached = {end.display for start, event, latching, until, *_ in TABLE
               for end in [apply(start, event, latching=latching, until=until)[0]]}
    assert reached == set(D)
