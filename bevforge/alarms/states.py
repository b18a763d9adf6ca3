"""ISA-18.2 alarm state machine as pure functions.

An alarm *point* (one definition, or one system condition such as a device's comms) keeps runtime
fields — active, acked, latched, shelf, suppressed, out of service — and its display state is
derived from them, never stored. `apply(point, event)` returns the new point and the journal
entries the transition produced; no clock, no I/O, so every transition is table-tested.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from bevforge.errors import NOT_ALLOWED_NOW, Conflict


class AlarmEvent(StrEnum):
    CONDITION_TRUE = "condition_true"  # the process condition became abnormal (after on-delay)
    CONDITION_FALSE = "condition_false"  # returned to normal (after deadband and off-delay)
    ACK = "ack"
    RESET = "reset"  # clears a latched alarm; authorised users only
    SHELVE = "shelve"  # timed (shelved_until) or one-shot (until the alarm next clears)
    UNSHELVE = "unshelve"
    SHELF_EXPIRED = "shelf_expired"
    SUPPRESS = "suppress"  # suppressed by design (e.g. no low-temperature alarm while empty)
    UNSUPPRESS = "unsuppress"
    REMOVE_FROM_SERVICE = "remove_from_service"
    RETURN_TO_SERVICE = "return_to_service"


class DisplayState(StrEnum):
    NORMAL = "normal"
    UNACKNOWLEDGED = "unacknowledged"
    ACKNOWLEDGED = "acknowledged"
    RTN_UNACKNOWLEDGED = "rtn_unacknowledged"
    LATCHED = "latched"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"
    OUT_OF_SERVICE = "out_of_service"


class TransitionRefused(Conflict):
    """The event makes no sense in the current state (reset while still active, ack when normal): 409."""

    code = NOT_ALLOWED_NOW


@dataclass(frozen=True, slots=True)
class PointState:
    active: bool = False
    acked: bool = True
    latched: bool = False
    shelf: str | None = None  # None, "timed", "oneshot"
    shelved_until: datetime | None = None
    suppressed: bool = False
    out_of_service: bool = False

    @property
    def display(self) -> DisplayState:
        if self.out_of_service:
            return DisplayState.OUT_OF_SERVICE
        if self.suppressed:
            return DisplayState.SUPPRESSED
        if self.shelf is not None:
            return DisplayState.SHELVED
        if self.active:
            return DisplayState.ACKNOWLEDGED if self.acked else DisplayState.UNACKNOWLEDGED
        if self.latched:
            return DisplayState.LATCHED
        return DisplayState.NORMAL if self.acked else DisplayState.RTN_UNACKNOWLEDGED

    @property
    def annunciated(self) -> bool:
        """Shown to the operator as an alarm needing attention (not hidden by shelf/suppression/OOS)."""
        return self.display in (DisplayState.UNACKNOWLEDGED, DisplayState.ACKNOWLEDGED,
                                DisplayState.RTN_UNACKNOWLEDGED, DisplayState.LATCHED)

    @property
    def standing(self) -> bool:
        """Not yet back to normal: the occurrence is still open (an alarm id stays the same)."""
        return self.active or not self.acked or self.latched


def apply(point: PointState, event: AlarmEvent, *, latching: bool = False,
          until: datetime | None = None) -> tuple[PointState, list[str]]:
    """Return the point after `event` and the journal words for what happened."""
    e = AlarmEvent
    if event is e.CONDITION_TRUE:
        if point.active:
            return point, []
        return replace(point, active=True, acked=False, latched=latching or point.latched), ["raised"]
    if event is e.CONDITION_FALSE:
        if not point.active:
            return point, []
        new = replace(point, active=False)
        words = ["cleared"]
        if point.shelf == "oneshot":
            new = replace(new, shelf=None, shelved_until=None)
            words.append("unshelved")
        return new, words
    if event is e.ACK:
        if point.acked:
            raise TransitionRefused("already acknowledged")
        return replace(point, acked=True), ["acked"]
    if event is e.RESET:
        if not point.latched:
            raise TransitionRefused("not latched")
        if point.active:
            raise TransitionRefused("cannot reset while the condition is still active")
        return replace(point, latched=False, acked=True), ["reset"]
    if event is e.SHELVE:
        if point.out_of_service:
            raise TransitionRefused("out of service")
        kind = "timed" if until is not None else "oneshot"
        return replace(point, shelf=kind, shelved_until=until), ["shelved"]
    if event in (e.UNSHELVE, e.SHELF_EXPIRED):
        if point.shelf is None:
            if event is e.SHELF_EXPIRED:
                return point, []
            raise TransitionRefused("not shelved")
        new = replace(point, shelf=None, shelved_until=None)
        words = ["unshelved" if event is e.UNSHELVE else "shelf_expired"]
        if point.active:  # still abnormal: it annunciates again and needs a fresh ack
            new = replace(new, acked=False)
            words.append("reannunciated")
        return new, words
    if event is e.SUPPRESS:
        return (point, []) if point.suppressed else (replace(point, suppressed=True), ["suppressed"])
    if event is e.UNSUPPRESS:
        if not point.suppressed:
            return point, []
        new = replace(point, suppressed=False)
        if point.active and not point.acked:
            return new, ["unsuppressed", "reannunciated"]
        return new, ["unsuppressed"]
    if event is e.REMOVE_FROM_SERVICE:
        if point.out_of_service:
            raise TransitionRefused("already out of service")
        return replace(point, out_of_service=True, shelf=None, shelved_until=None), ["out_of_service"]
    if event is e.RETURN_TO_SERVICE:
        if not point.out_of_service:
            raise TransitionRefused("not out of service")
        return replace(point, out_of_service=False), ["in_service"]
    raise TransitionRefused(f"unknown event {event}")
