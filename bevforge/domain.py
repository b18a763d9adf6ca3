"""Plain types shared by every room of the house: readings, qualities, command states.

Nothing here does I/O, so these types can be used from drivers, the core and the screens alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bevforge.errors import INVALID_VALUE, Invalid

Value = bool | int | float

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what an int endpoint holds (SQLite INTEGER, a 64-bit register)


def utcnow() -> datetime:
    """The one clock of the plant (UTC, timezone-aware)."""
    return datetime.now(UTC)


def epoch_time(ts: Any) -> datetime | None:
    """An epoch-seconds column as an aware datetime; None for one no datetime can hold (NaN, 1e300, text)."""
    if ts is None or isinstance(ts, bool) or not isinstance(ts, int | float):
        return None
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, ValueError, OSError):
        return None


def plain_value(value: Any) -> Value | None:
    """A value every reader can show and every encoder can write, else None.

    Validation at the edge keeps poison out; this is the second wall, for a value that reached the
    store or the plant another way (an old database, a hand edit): reads format defensively.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


class Quality(StrEnum):
    """OPC-style quality of a value; only GOOD values are ever shown as live."""

    GOOD = "good"
    UNCERTAIN = "uncertain"  # no fresh sample within stale_after: shown as STALE
    BAD = "bad"  # device offline, framing error, or never read


class CommandStatus(StrEnum):
    """Lifecycle of an operator command (REFERENCE.md §3)."""

    BLOCKED = "blocked"
    QUEUED = "queued"
    SENT = "sent"
    ACKED = "acked"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (CommandStatus.BLOCKED, CommandStatus.SUCCEEDED, CommandStatus.FAILED)


IN_FLIGHT = (CommandStatus.QUEUED, CommandStatus.SENT, CommandStatus.ACKED)


class DataType(StrEnum):
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"


class EndpointKind(StrEnum):
    """What a point is in the brewery; decides how a tile shows and commands it."""

    TEMPERATURE = "temperature"
    SETPOINT = "setpoint"
    HEATER = "heater"
    PUMP = "pump"
    VALVE = "valve"
    LEVEL = "level"  # level switch (bool) or level measurement
    SPEED = "speed"  # pump speed / VFD frequency
    PRESSURE = "pressure"
    FLOW = "flow"
    VOLUME = "volume"
    POWER = "power"
    STATUS = "status"  # discrete status word, fault code
    GRAVITY = "gravity"  # wort or beer gravity, SG or °P (a floating hydrometer: drivers/hydrometer.py)


class Severity(StrEnum):
    """ISA-18.2 priorities, plus `alert`: below low, an event worth telling (a refused press) that needs
    no acknowledgement and returns to normal by itself — not an alarm an operator must answer."""

    ALERT = "alert"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class InvalidValue(Invalid, ValueError):
    """A value that does not fit an endpoint (`invalid_value`); `field` names what is wrong."""

    code = INVALID_VALUE

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


def coerce_value(value: Any, data_type: DataType, *, field: str = "value") -> Value:
    """Turn a JSON value into the endpoint's type, refusing anything that would need guessing.

    JSON has no int/float distinction worth trusting, so 1.0 is a fine int and 1 a fine float, but
    a string, a list or a NaN never is, nor an int past int64 (1e300 "is" a whole number).
    Booleans accept only true/false (and 0/1, as devices do).
    """
    if data_type is DataType.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        raise InvalidValue(field, f"{field} must be true or false")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue(field, f"{field} must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidValue(field, f"{field} must be a finite number")
    if data_type is DataType.INT:
        if isinstance(value, float):
            if not value.is_integer():
                raise InvalidValue(field, f"{field} must be a whole number")
            value = int(value)
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidValue(field, f"{field} must fit a 64-bit integer")
        return value
    try:
        return float(value)
    except OverflowError:  # an int past 1.8e308 has no float
        raise InvalidValue(field, f"{field} must be a finite number") from None


@dataclass(slots=True)
class Reading:
    """One sample of one endpoint, as a driver or the ingest API delivers it."""

    endpoint_id: int
    value: Value | None
    quality: Quality = Quality.GOOD
    source_time: datetime | None = None  # device/sender clock, if it has one
    error: str | None = None  # why quality is not GOOD


@dataclass(slots=True)
class EndpointState:
    """The plant's current knowledge of one endpoint (mirrors endpoint_current)."""

    endpoint_id: int
    value: Value | None = None
    quality: Quality = Quality.BAD
    source_time: datetime | None = None
    server_time: datetime | None = None
    error: str | None = "never read"
    seq: int = 0  # increments on every change; lets waiters detect a fresh sample
    # Its wire form is `messages.state_view(state)` (messages builds from domain types, not the reverse).


@dataclass(slots=True)
class Actor:
    """Who asked for something and from where; goes into every command and audit record."""

    user: str = "anonymous"
    station: str = "local"
    role: str = "admin"
    nodes: frozenset[str] | None = None  # None: all nodes
    credential: str | None = None  # "session:<hash>" or "token:<id>": what to close on logout/revoke

    @staticmethod
    def system() -> Actor:
        return Actor(user="system", station="plant", role="admin")


def station_of(conn: Any) -> str:
    """The station a request or socket comes from (its peer address), as actors and audit rows name it.

    Takes any connection with a `client` (host, port) pair, so the API and the screens share it
    without the screens importing the API layer.
    """
    client = getattr(conn, "client", None)
    return client.host if client else "unknown"


@dataclass(slots=True)
class InterlockVerdict:
    """Result of evaluating one rule: satisfied or not, and the words an operator reads."""

    rule_id: str
    target: int
    satisfied: bool
    applies: bool
    reason: str
    failed_conditions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.rule_id,
            "targetEndpointId": self.target,
            "satisfied": self.satisfied,
            "applies": self.applies,
            "reason": self.reason,
            "failedConditions": self.failed_conditions,
        }


@dataclass(frozen=True, slots=True)
class ControllerStatus:
    """What a controller is doing now, as screens and clients see it (its frame: `messages.controller`)."""

    id: str
    name: str
    node: str
    kind: str
    mode: str
    state: str
    reason: str
    pv: float | None
    setpoint: float | None
    setpoint_id: int
    output: float
    outputs: dict[int, Any]
    manual_output: float
    tuning: dict[str, Any] | None
    unit: str
    time: datetime
    autotune: dict[str, Any] | None = None  # the last relay test: state, reason, cycles_measured, result


@dataclass(frozen=True, slots=True)
class ProgramPrompt:
    """A question a running program puts to the operator ("Add 5.2 kg grain"), until confirmed."""

    step: int
    key: str
    message: str
    since: datetime
    overdue: bool


@dataclass(frozen=True, slots=True)
class ProgramStatus:
    """What a unit's program is doing now (its frame: `messages.program`)."""

    unit: str
    name: str
    kind: str
    state: str  # idle | running | paused | completed | aborted
    template_id: str | None
    template_name: str | None
    steps: list[tuple[str, str]]  # (name, type) of each step of the template
    step_index: int | None
    step_status: str | None
    remaining_s: float | None
    step_started_at: datetime | None
    prompts: list[ProgramPrompt]
    message: str | None
    started_at: datetime | None
    started_by: str | None
    ended_at: datetime | None
    controllers: list[str]
    time: datetime
    asks_resume: bool = False  # back paused after a restart, asking resume / restart the step / abort
