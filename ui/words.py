"""How a value reads to an operator: state words, numbers with units, quality badges, command verbs.

Pure functions (no NiceGUI), so every screen and test says the same thing in the same words:
RUNNING / STOPPED, OPEN / CLOSED, ON / OFF, HIGH / LOW (REFERENCE.md §2).
"""

from __future__ import annotations

from dataclasses import dataclass

from bevforge.config import Endpoint
from bevforge.domain import CommandStatus, DataType, EndpointKind, EndpointState, Quality, Value

# (word when true, word when false, verb to make it true, verb to make it false)
_BOOL_WORDS: dict[EndpointKind, tuple[str, str, str, str]] = {
    EndpointKind.PUMP: ("RUNNING", "STOPPED", "START", "STOP"),
    EndpointKind.VALVE: ("OPEN", "CLOSED", "OPEN", "CLOSE"),
    EndpointKind.LEVEL: ("HIGH", "LOW", "HIGH", "LOW"),
}
_DEFAULT_BOOL = ("ON", "OFF", "ON", "OFF")


def bool_words(endpoint: Endpoint) -> tuple[str, str, str, str]:
    return _BOOL_WORDS.get(endpoint.kind, _DEFAULT_BOOL)


def state_word(endpoint: Endpoint, value: Value | None) -> str:
    """RUNNING / STOPPED … for a bool endpoint; '—' when nothing was ever read."""
    if value is None:
        return "—"
    on, off, _, _ = bool_words(endpoint)
    return on if value else off


def verb(endpoint: Endpoint, value: Value) -> str:
    """The button word that commands `value`: START / STOP, OPEN / CLOSE, ON / OFF, or the setpoint."""
    if endpoint.data_type is DataType.BOOL:
        _, _, make_on, make_off = bool_words(endpoint)
        return make_on if value else make_off
    return number(endpoint, value)


def number(endpoint: Endpoint, value: Value | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:.1f}"
    else:
        text = str(value)
    return f"{text} {endpoint.unit}".strip()


def value_text(endpoint: Endpoint, value: Value | None) -> str:
    """What the big value field of a row says."""
    if endpoint.data_type is DataType.BOOL:
        return state_word(endpoint, value)
    return number(endpoint, value)


@dataclass(frozen=True, slots=True)
class QualityView:
    """The badge of a value: its word, a CSS modifier, and whether the value may be shown as live."""

    word: str
    css: str
    live: bool
    detail: str


def quality_view(state: EndpointState) -> QualityView:
    """GOOD is live; UNCERTAIN reads STALE; BAD reads BAD. Neither of the last two is ever live."""
    if state.quality is Quality.GOOD and state.value is not None:
        return QualityView("LIVE", "good", True, "")
    if state.quality is Quality.UNCERTAIN:
        return QualityView("STALE", "stale", False, state.error or "no fresh sample")
    return QualityView("BAD", "bad", False, state.error or "no good reading")


def shown_value(endpoint: Endpoint, state: EndpointState) -> str:
    """The value text, marked so a last-good value never reads as live: '? 72.4 °C' when stale/bad."""
    view = quality_view(state)
    if view.live:
        return value_text(endpoint, state.value)
    if state.value is None or state.quality is Quality.BAD:
        return "?"
    return f"? {value_text(endpoint, state.value)}"


STATUS_WORDS = {
    CommandStatus.QUEUED: "queued",
    CommandStatus.SENT: "sent to device",
    CommandStatus.ACKED: "accepted, confirming",
    CommandStatus.SUCCEEDED: "confirmed",
    CommandStatus.FAILED: "failed",
    CommandStatus.BLOCKED: "blocked",
}


# A batch's or a batch step's outcome as the Batches screen says it (bevforge/programs/batches.py).
BATCH_OUTCOMES = {"running": "RUNNING", "completed": "COMPLETED", "aborted": "ABORTED", "done": "DONE",
                  "skipped": "SKIPPED", "restarted": "RESTARTED"}


def batch_outcome(outcome: str | None) -> str:
    return BATCH_OUTCOMES.get(outcome or "", (outcome or "—").upper())


def minutes_text(seconds: float | None) -> str:
    """A duration in minutes with one decimal (`60.0 min`); '—' when there is none."""
    return "—" if seconds is None else f"{seconds / 60:.1f} min"


def celsius_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} °C"
