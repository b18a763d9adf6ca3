"""The technician's file: the schema of config.yaml and a loader whose errors name file, line and field.

A technician edits YAML by hand at the brewhouse; an error that says only "validation failed" costs
a brew day. Every problem found here is reported as ``file:line: field.path: what is wrong``, all at
once, so one edit fixes them all.
"""

from __future__ import annotations

import operator
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from bevforge.domain import DataType, EndpointKind, Severity, Value
from bevforge.layout import PlantLayout, check_layout

TEMPERATURE_UNITS = ("°C", "°F")


class Strict(BaseModel):
    """Base of every section: unknown keys are errors, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Site(Strict):
    name: str = "BevForge brewhouse"
    timezone: str = "UTC"


class Node(Strict):
    """A vessel or area: HLT, MLT, BK, FV1 …"""

    id: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")]
    name: str
    kind: Literal["vessel", "fermenter", "area", "utility"] = "vessel"
    volume_l: float | None = Field(default=None, gt=0)


class Device(Strict):
    """Something a driver talks to. `settings` belong to the driver and are checked by it."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
    driver: str
    name: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    comms_timeout_s: float = Field(default=5.0, gt=0, description="no answer this long → device offline")
    history: Literal["recorded", "forwarded"] = Field(
        default="recorded", description="recorded: this panel stores the device's readings as history; "
        "forwarded (driver: site): the site forwards its own history, complete after an outage, and the live "
        "readings are not stored twice")

    @model_validator(mode="after")
    def _forwarded_from_a_site(self) -> Device:
        if self.history == "forwarded" and self.driver != "site":
            raise ValueError("history: forwarded is for driver: site (a site forwards its own history)")
        return self


class Range(Strict):
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min > self.max:
            raise ValueError("min must not be greater than max")
        return self


EndpointSource = Literal["device", "external", "software"]
MAX_ENDPOINT_ID = 2_000_000_000  # endpointIds past this are refused before any store sees them (SQLite INTEGER)


class Endpoint(Strict):
    """One point of the plant: a probe, an output, a setpoint. `id` is the seed's endpointId.

    Every reading has one owner (`source`): `device` — the driver of `device` polls it, and nothing
    else may write it (a client's ingest could otherwise open an interlock the device holds shut);
    `external` — it has no device and is fed only through the ingest API (a hydrometer gateway,
    a building sensor), so interlocks on it act on what that sender reports; `software` — a value
    the panel itself holds (a controller's software setpoint): never written in the file, made from
    `controllers[].setpoint` when the config is read, written only through the command pipeline.
    """

    id: int = Field(ge=1, le=MAX_ENDPOINT_ID)
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
    label: str | None = None
    node: str
    source: EndpointSource = Field(default="device", description="who feeds its readings: its device's driver, "
                                   "or an outside sender through the ingest API (external); software endpoints "
                                   "are made by the controllers' software setpoints")
    device: str | None = Field(default=None, description="the device whose driver polls it (source: device)")
    kind: EndpointKind
    unit: str = ""
    data_type: DataType = DataType.FLOAT
    writable: bool = False
    range: Range | None = None
    safe_value: Value | None = None
    feedback: int | None = Field(default=None, description="endpoint whose reading confirms a write")
    tolerance: float = Field(default=0.0, ge=0, description="readback tolerance for numeric writes")
    poll_interval_s: float = Field(default=1.0, gt=0)
    stale_after_s: float | None = Field(default=None, gt=0, description="default 3 × poll interval")
    critical: bool = Field(default=False, description="operator confirms current → target state")
    address: dict[str, Any] = Field(default_factory=dict, description="driver-specific point address")

    @property
    def stale_after(self) -> float:
        return self.stale_after_s if self.stale_after_s is not None else 3 * self.poll_interval_s

    @property
    def display_name(self) -> str:
        return self.label or self.name.replace("_", " ")

    @property
    def feedback_id(self) -> int:
        return self.feedback if self.feedback is not None else self.id

    @property
    def ingestable(self) -> bool:
        """Whether the ingest API (REST, later MQTT) may write it: only readings no device owns."""
        return self.source == "external"

    @model_validator(mode="after")
    def _consistent(self) -> Endpoint:
        if self.kind is EndpointKind.TEMPERATURE and self.unit not in TEMPERATURE_UNITS:
            raise ValueError(f"a temperature endpoint declares unit °C or °F, not {self.unit!r}")
        if self.range is not None and self.data_type is DataType.BOOL:
            raise ValueError("a bool endpoint has no range")
        if self.safe_value is not None:
            if self.data_type is DataType.BOOL and not isinstance(self.safe_value, bool):
                raise ValueError("safe_value of a bool endpoint must be true or false")
            if self.data_type is not DataType.BOOL and isinstance(self.safe_value, bool):
                raise ValueError("safe_value of a numeric endpoint must be a number")
            if self.range is not None and not isinstance(self.safe_value, bool):
                if not self.range.min <= self.safe_value <= self.range.max:
                    raise ValueError("safe_value lies outside range")
        return self


class Tile(Strict):
    id: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")]
    title: str
    node: str
    endpoints: list[int] = Field(min_length=1)
    order: int = 0


COMPARATORS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class Condition(Strict):
    """`endpoint op value`, e.g. bk_level_high == true, bk_temperature < 105."""

    endpoint: int
    op: Literal["==", "!=", "<", "<=", ">", ">="] = "=="
    value: Value


class Interlock(Strict):
    """A permissive/interlock on one output.

    The rule applies while the output is (or is commanded to be) in its `active_when` state —
    a heater ON, a pump speed above 0. While it applies, every condition in `requires` must hold;
    otherwise commands into that state are blocked, and a running output is driven to its safe value.
    """

    id: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")]
    target: int
    active_when: Condition | None = Field(
        default=None, description="default: target == true (bool) or target > 0 (numeric)"
    )
    requires: list[Condition] = Field(min_length=1)
    reason: str
    trip: bool = Field(default=True, description="drive the running output to its safe value when violated")


AlarmKind = Literal["HI", "HIHI", "LO", "LOLO", "deviation", "rate", "discrete", "comms", "interlock_trip",
                    "interlock_block"]
PROCESS_KINDS = ("HI", "HIHI", "LO", "LOLO", "deviation", "rate", "discrete")


class AlarmRule(Strict):
    """One alarm definition (ISA-18.2).

    Process kinds watch an endpoint: HI/HIHI (above `limit`), LO/LOLO (below), `deviation` (|value −
    setpoint endpoint| > limit), `rate` (|change per minute| > limit), `discrete` (value == `value`).
    `comms` sets the priority of a device's comms-loss alarm, `interlock_trip` that of a trip and
    `interlock_block` that of a command the interlock refused (by default an `alert`: no ACK needed).
    """

    id: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")]
    kind: AlarmKind = "HI"
    endpoint: int | None = None
    limit: float | None = None
    value: Value | None = Field(default=None, description="discrete: the abnormal value")
    setpoint: int | None = Field(default=None, description="deviation: the reference endpoint")
    rate_window_s: float = Field(default=60.0, gt=0, description="rate: the window the change is measured over")
    device: str | None = Field(default=None, description="comms: the device")
    interlock: str | None = Field(default=None, description="interlock_trip / interlock_block: the rule")
    deadband: float = Field(default=0.0, ge=0)
    on_delay_s: float = Field(default=0.0, ge=0)
    off_delay_s: float = Field(default=0.0, ge=0)
    priority: Severity = Field(default=Severity.MEDIUM, validation_alias=AliasChoices("priority", "severity"))
    latching: bool = False
    message: str = Field(default="{label} {kind}: {value:g}{unit} (limit {limit:g}{unit})")
    suppress_when: list[Condition] = Field(default_factory=list,
                                           description="suppressed by design while all these hold")

    @model_validator(mode="after")
    def _fields_for_kind(self) -> AlarmRule:
        if self.kind in PROCESS_KINDS and self.endpoint is None:
            raise ValueError(f"a {self.kind} alarm needs an endpoint")
        if self.kind in ("HI", "HIHI", "LO", "LOLO", "deviation", "rate") and self.limit is None:
            raise ValueError(f"a {self.kind} alarm needs a limit")
        if self.kind == "deviation" and self.setpoint is None:
            raise ValueError("a deviation alarm needs a setpoint endpoint")
        if self.kind == "discrete" and self.value is None:
            raise ValueError("a discrete alarm needs the abnormal value")
        if self.kind == "comms" and self.device is None:
            raise ValueError("a comms alarm needs a device")
        if self.kind in ("interlock_trip", "interlock_block") and self.interlock is None:
            raise ValueError(f"an {self.kind} alarm needs an interlock")
        return self


class CommandSettings(Strict):
    readback_timeout_s: float = Field(default=5.0, gt=0)
    write_timeout_s: float = Field(default=3.0, gt=0)
    expiry_s: float = Field(default=10.0, gt=0, description="a queued command older than this is not sent")


class StoreSettings(Strict):
    database_url: str | None = Field(default=None, min_length=1,
                                     description="SQLAlchemy URL of the database; --db and DATABASE_URL come first, "
                                     "default sqlite:///<data dir>/bevforge.db")
    flush_interval_s: float = Field(default=0.5, gt=0, le=10)
    flush_rows: int = Field(default=5000, ge=1)
    busy_timeout_s: float = Field(default=5.0, gt=0, le=60,
                                  description="how long a write waits for another program's lock before it is refused")
    max_pending_rows: int = Field(default=100_000, ge=1000,
                                  description="history rows held while the store refuses writes (oldest dropped)")


class RetentionSettings(Strict):
    """Disk discipline: raw history for `raw_days`, then 1-minute min/avg/max rollups for `rollup_days`.

    A 0.5 s probe writes ~170 000 rows a day; without a limit the history fills the panel PC's disk
    and the app stops recording (or stops). Rollups keep long trends drawable at a fraction of the size.
    """

    raw_days: float = Field(default=30, gt=0, description="raw samples older than this are rolled up")
    rollup_days: float = Field(default=730, gt=0, description="1-minute rollups older than this are deleted")
    check_interval_s: float = Field(default=60, gt=0, le=86400, description="how often pruning and the disk check run")
    batch_rows: int = Field(default=20000, ge=100, description="raw rows moved per writer transaction")
    min_free_mb: float = Field(default=500, ge=0, description="free space below this raises a high alarm")

    @model_validator(mode="after")
    def _rollups_outlive_raw(self) -> RetentionSettings:
        if self.rollup_days < self.raw_days:
            raise ValueError("rollup_days must be at least raw_days")
        return self


class RealtimeSettings(Strict):
    max_connections: int = Field(default=100, ge=1)
    max_messages_per_s: float = Field(default=10, gt=0)
    abuse_strikes: int = Field(default=20, ge=1, description="rate-limited messages before close 1008")
    max_subscriptions: int = Field(default=50, ge=1)
    ping_interval_s: float = Field(default=30, gt=0)
    idle_timeout_s: float = Field(default=60, gt=0)
    max_message_bytes: int = Field(default=65536, ge=256)
    queue_limit: int = Field(default=10000, ge=8, description="undelivered alarm/command/reply frames a live "
                             "client may have waiting before it is cut off (telemetry coalesces and is not counted)")
    stall_timeout_s: float = Field(default=30, gt=0, description="a live client with frames waiting that takes "
                                   "none for this long (it stopped reading) is cut off")
    max_sse_streams: int = Field(default=100, ge=1, description="open SSE streams in total")
    max_sse_streams_per_user: int = Field(default=10, ge=1, description="open SSE streams per signed-in user "
                                          "(per station address when anonymous)")
    sse_keepalive_s: float = Field(default=15, gt=0)
    telemetry_refresh_s: float = Field(
        default=10, ge=0, description="a sample equal to the last one sent is pushed again only after this "
        "long (report-by-exception); 0 pushes every sample")
    sse_buffer: int = Field(default=10000, ge=10)
    sse_buffer_s: float = Field(default=300, gt=0, description="SSE resume: events older than this are "
                                "forgotten (with sse_buffer, whichever is reached first)")


class IngestSettings(Strict):
    """Limits on readings sent by clients (POST /api/os/telemetry/ingest; later MQTT).

    The time window is wide enough for a buffered gateway that replays a day's outage, narrow enough
    that a reading stamped in year 1 or 9999 never reaches the store or a screen. The rate is per
    credential (token or session), so one busy script cannot starve the others.
    """

    max_age_s: float = Field(default=86400, gt=0, description="a reading stamped further in the past is refused")
    max_ahead_s: float = Field(default=300, ge=0, description="a reading stamped further in the future is refused")
    rate_per_s: float = Field(default=1000, gt=0, description="readings a second per credential (token bucket)")
    burst: int = Field(default=5000, ge=1, description="readings a credential may send at once before the rate "
                       "applies; a larger batch is refused as too large")


class KioskStation(Strict):
    """A touchscreen that signs in as a fixed user, from its own address only."""

    address: str
    user: str


class AuthSettings(Strict):
    mode: Literal["none", "required"] | None = None  # None: none on loopback, required elsewhere
    allowed_origins: list[str] = Field(default_factory=list, description="origins besides the server's own that "
                                       "may use its cookies and /ws (empty: its own origin only)")
    session_idle_minutes: float = Field(default=30, gt=0, description="a session unused this long ends")
    session_max_hours: float = Field(default=12, gt=0, description="a brew day; then sign in again")
    stations: list[KioskStation] = Field(default_factory=list)
    login_max_failures: int = Field(default=5, ge=1, description="failed logins per user or address …")
    login_window_s: float = Field(default=900, gt=0, description="… within this window before a lockout")
    login_lockout_s: float = Field(default=60, gt=0, description="first lockout; doubles while attacks go on")
    ws_auth_grace_s: float = Field(default=5, gt=0, description="an unauthenticated /ws is closed after this")
    shelve_durations_s: dict[str, list[Annotated[float, Field(gt=0)]]] = Field(
        default_factory=lambda: {"operator": [900.0, 3600.0, 28800.0]},
        description="the timed shelves each role may choose (s); a role not listed has the list of the "
                    "highest listed role below it",
    )

    @field_validator("shelve_durations_s")
    @classmethod
    def _known_roles(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        from bevforge.permissions import ROLES  # here: the role authority may itself read the config types

        for role, durations in value.items():
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
            if not durations:
                raise ValueError(f"{role}: at least one duration (or leave the role out)")
        return value


class SimulatorSettings(Strict):
    """The simulated brewhouse behind real protocols (drivers/sim): a Modbus TCP server, a serial
    probe on a pty, optionally a Modbus RTU line on a pty. `enabled`: the app starts it in-process
    (false for real hardware, or when it runs on its own: `python -m drivers.sim`)."""

    enabled: bool = True
    ambient_c: float = 20.0
    speedup: float = Field(default=1.0, gt=0, le=1000)
    host: str = "127.0.0.1"
    modbus_port: int = Field(default=5020, ge=0, le=65535, description="0: any free port")
    probe_link: str = Field(default="/tmp/bevforge-sim-probe", description="symlink to the probe's pty")
    rtu_link: str | None = Field(default=None, description="symlink to a Modbus RTU line on a pty")
    watchdog_s: float = Field(default=3.0, gt=0, description="no polling this long → outputs to safe state")


class UiSettings(Strict):
    """The screens: `kiosk` makes every page the touchscreen layout (large type, no hover affordances);
    `kiosk_start: mimic` makes a kiosk open on the process mimic (`/mimic`) instead of the tiles."""

    kiosk: bool = False
    kiosk_start: Literal["panel", "mimic"] = Field(default="panel", description="the page a kiosk opens "
                                                   "at /: the Control Panel's tiles, or the process mimic "
                                                   "(needs a layout)")


# ---------------------------------------------------------------------------------------------
# Controllers (issue 14): the loops that make the brewhouse hold its own temperatures
# ---------------------------------------------------------------------------------------------


class SoftwareSetpoint(Strict):
    """A setpoint no device holds: the controller keeps it (persisted in the store) within min..max.

    `id` is reserved like an endpoint id (no endpoint may use it), so the value can be named the
    same way everywhere; `default` is what a loop starts from the first time it runs.
    """

    id: int = Field(ge=1, le=MAX_ENDPOINT_ID, description="reserved id of the setpoint (no endpoint may use it)")
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
    min: float
    max: float
    unit: str = "°C"
    default: float

    @model_validator(mode="after")
    def _in_range(self) -> SoftwareSetpoint:
        if self.min > self.max:
            raise ValueError("min must not be greater than max")
        if not self.min <= self.default <= self.max:
            raise ValueError("default lies outside min..max")
        return self


class OutputRecord(Strict):
    """Where the loop's output % is kept as a reading: history, the trends, a tile, `/ws` like any value.

    Its `id` and `name` are reserved like a software setpoint's. The controller records the output
    when it moves (at most once per `period_s`) and at least every `OUTPUT_RECORD_EVERY_S` real
    seconds, so the value goes stale, as a probe would, if the loop stopped ticking.
    """

    id: int = Field(ge=1, le=MAX_ENDPOINT_ID, description="reserved id of the output reading (no endpoint may use it)")
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


OUTPUT_RECORD_EVERY_S = 10.0  # real seconds between two records of an unchanged output (its heartbeat)


def software_setpoint_endpoint(controller: Controller) -> Endpoint:
    """The endpoint a controller's software setpoint becomes: writable, in its range, on the controller's node."""
    sp = controller.setpoint
    assert isinstance(sp, SoftwareSetpoint)
    return Endpoint(id=sp.id, name=sp.name, label=f"{controller.name} setpoint", node=controller.node,
                    source="software", kind=EndpointKind.SETPOINT, unit=sp.unit, data_type=DataType.FLOAT,
                    writable=True, range=Range(min=sp.min, max=sp.max))


def output_record_endpoint(controller: Controller) -> Endpoint:
    """The read-only endpoint a controller's output % is recorded on: software-held, stale when not refreshed."""
    record = controller.output_record
    assert record is not None
    low, high = (controller.tuning.out_min, controller.tuning.out_max) if controller.tuning else (0.0, 100.0)
    return Endpoint(id=record.id, name=record.name, label=f"{controller.name} output", node=controller.node,
                    source="software", kind=EndpointKind.POWER, unit="%", data_type=DataType.FLOAT,
                    writable=False, range=Range(min=low, max=high), stale_after_s=3 * OUTPUT_RECORD_EVERY_S)


class PidSettings(Strict):
    """PID gains and limits (units: docs/architecture.md "Control maths"): kp %/°C, ki %/(°C·s), kd %·s/°C."""

    kp: float = Field(ge=0, description="% of output per °C of error")
    ki: float = Field(default=0.0, ge=0, description="% of output per °C of error per second")
    kd: float = Field(default=0.0, ge=0, description="% of output per °C/s of process-value rate")
    derivative_filter_s: float = Field(default=5.0, gt=0)
    out_min: float = Field(default=0.0, ge=-100, le=100)
    out_max: float = Field(default=100.0, ge=-100, le=100)
    ramp_c_per_min: float | None = Field(default=None, gt=0, description="the working setpoint moves at most this fast")
    boil_threshold_c: float | None = Field(default=None, description="above this PV the output holds boil_output_pct")
    boil_output_pct: float = Field(default=100.0, ge=0, le=100)

    @model_validator(mode="after")
    def _limits(self) -> PidSettings:
        if self.out_min >= self.out_max:
            raise ValueError("out_min must be below out_max")
        return self


class HysteresisLoopSettings(Strict):
    """On/off around the setpoint: on below setpoint − on_offset_c, off at setpoint + off_offset_c (heating)."""

    on_offset_c: float = Field(default=0.5, ge=0)
    off_offset_c: float = Field(default=0.0, ge=0)
    min_on_s: float = Field(default=0.0, ge=0)
    min_off_s: float = Field(default=0.0, ge=0)


class ControllerSafety(Strict):
    """What makes a loop give up and put its outputs safe."""

    input_stale_s: float | None = Field(default=None, gt=0, description="no GOOD sample of the input this long "
                                        "→ input fault (default: the input endpoint's stale_after)")
    runaway_output_pct: float = Field(default=90.0, gt=0, le=100, description="runaway: output at or above this …")
    runaway_minutes: float = Field(default=10.0, gt=0, description="… for this long …")
    runaway_min_change_c: float = Field(default=1.0, gt=0, description="… while the PV moved less than this the "
                                        "way the output pushes → tripped")
    over_temperature_c: float | None = Field(default=10.0, gt=0, description="PV above setpoint + this → tripped "
                                             "(heating); null: no check")


class Controller(Strict):
    """One control loop: reads `input`, drives `output` (and `cool_output`) toward the setpoint."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
    name: str
    node: str
    kind: Literal["pid", "hysteresis"] = "pid"
    input: int = Field(description="the process value: a numeric endpoint (°C)")
    output: int = Field(description="the heat output (or the only output): writable bool (time-proportioned) "
                        "or numeric 0–100 %")
    cool_output: int | None = Field(default=None, description="heat/cool pair: the cooling output")
    dead_band_c: float = Field(default=0.5, ge=0, description="heat/cool pair: full width of the band in which "
                               "the loop keeps its direction")
    setpoint: int | SoftwareSetpoint = Field(description="a writable setpoint endpoint id, or a software setpoint")
    period_s: float = Field(default=10.0, gt=0, description="bool output: the time-proportioning window; "
                            "also the control tick")
    min_on_s: float = Field(default=0.0, ge=0, description="bool output: shortest pulse")
    min_off_s: float = Field(default=0.0, ge=0, description="bool output: shortest gap")
    min_step_pct: float = Field(default=1.0, ge=0, le=100, description="numeric output: smallest change written")
    tuning: PidSettings | None = Field(default=None, description="kind pid: gains and limits")
    hysteresis: HysteresisLoopSettings | None = Field(default=None, description="kind hysteresis: band and times")
    safety: ControllerSafety = Field(default_factory=ControllerSafety)
    resume: Literal["auto", "off"] | None = Field(default=None, description="after a restart: the stored mode "
                                                  "(auto) or off; default off for a loop driving a heater")
    priority: int = Field(default=1, ge=1, le=10, description="power budget: 1 is served first")
    output_record: OutputRecord | None = Field(default=None, description="keep the output % as a reading "
                                               "(history, trends, tiles) on this reserved id and name")

    @model_validator(mode="after")
    def _settings_for_kind(self) -> Controller:
        if self.kind == "pid" and self.tuning is None:
            raise ValueError("a pid controller needs tuning (kp at least)")
        if self.kind == "pid" and self.hysteresis is not None:
            raise ValueError("hysteresis settings belong to a hysteresis controller (kind: hysteresis)")
        if self.kind == "hysteresis" and self.tuning is not None:
            raise ValueError("tuning belongs to a pid controller (kind: pid)")
        if self.kind == "hysteresis" and self.cool_output is not None:
            raise ValueError("a heat/cool pair is a pid controller (kind: pid)")
        if self.min_on_s + self.min_off_s > self.period_s:
            raise ValueError("min_on_s + min_off_s must fit in one period_s")
        return self

    @property
    def setpoint_id(self) -> int:
        return self.setpoint.id if isinstance(self.setpoint, SoftwareSetpoint) else self.setpoint

    @property
    def software_endpoints(self) -> list[Endpoint]:
        """The endpoints this controller makes: its software setpoint and its output record, if it has them."""
        made = [software_setpoint_endpoint(self)] if isinstance(self.setpoint, SoftwareSetpoint) else []
        return made + ([output_record_endpoint(self)] if self.output_record is not None else [])

    @property
    def outputs(self) -> tuple[int, ...]:
        return (self.output,) if self.cool_output is None else (self.output, self.cool_output)


# ---------------------------------------------------------------------------------------------
# Programs (issue 15): brew-day and fermentation programs that drive the controllers' setpoints
# ---------------------------------------------------------------------------------------------

StepType = Literal["heat", "hold", "ramp", "transfer", "boil", "chill", "prompt", "wait", "set"]
# which keys each step type takes (besides type and name); the model refuses the others, so a key
# that a step type ignores (a `minutes` on a heat step) is an error, not silently nothing
STEP_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {  # type → (required, optional)
    "heat": (frozenset({"controller", "target_c"}), frozenset({"band_c"})),
    "hold": (frozenset({"controller", "target_c"}), frozenset({"minutes", "days", "band_c", "grace_s"})),
    "ramp": (frozenset({"controller", "to_c"}),
             frozenset({"from_c", "rate_c_per_min", "rate_c_per_day", "minutes", "days"})),
    "transfer": (frozenset({"pump"}), frozenset({"valves", "until", "message", "controller"})),
    "boil": (frozenset({"controller", "minutes"}), frozenset({"target_c", "boil_c", "additions", "grace_s"})),
    "chill": (frozenset({"endpoint", "below_c"}), frozenset({"controller", "message"})),
    "prompt": (frozenset({"message"}), frozenset({"overdue_min"})),
    "wait": (frozenset(), frozenset({"minutes", "until"})),
    "set": (frozenset({"endpoint", "value"}), frozenset()),
}
RAMP_PACES = ("rate_c_per_min", "rate_c_per_day", "minutes", "days")


class BoilAddition(Strict):
    """A boil addition: a prompt `at_min` minutes before the end of the boil ("Add 20 g Cascade")."""

    at_min: float = Field(ge=0, description="minutes before the end of the boil")
    message: str = Field(min_length=1, max_length=200)


class ProgramStep(Strict):
    """One step of a program template; `type` decides which of the other keys it takes (STEP_KEYS)."""

    type: StepType
    name: str | None = Field(default=None, max_length=80, description="the step's name on screens and in the record")
    controller: str | None = Field(default=None, description="heat, hold, ramp, boil: the controller whose setpoint "
                                   "the step sets; transfer: a controller switched off while transferring (the tun's, "
                                   "whose element the run-off uncovers); chill: a controller switched off while "
                                   "chilling")
    target_c: float | None = Field(default=None, description="heat, hold: the setpoint; boil: the kettle setpoint "
                                   "(default: the controller's setpoint maximum)")
    band_c: float | None = Field(default=None, gt=0, description="heat, hold: in band means |PV − target| ≤ this "
                                 "(default 0.5)")
    minutes: float | None = Field(default=None, gt=0, description="hold, boil, wait: the time; ramp: its duration")
    days: float | None = Field(default=None, gt=0, description="hold, ramp: the time in days (fermentation)")
    grace_s: float | None = Field(default=None, ge=0, description="hold: out of band this long before the timer "
                                  "stops (default 60); boil: below boil_c this long before it stops")
    from_c: float | None = Field(default=None, description="ramp: the start (default: the setpoint when it starts)")
    to_c: float | None = Field(default=None, description="ramp: the end")
    rate_c_per_min: float | None = Field(default=None, gt=0)
    rate_c_per_day: float | None = Field(default=None, gt=0)
    boil_c: float | None = Field(default=None, description="boil: the timer runs while the PV is at or above this "
                                 "(default: the controller's boil_threshold_c, else target − 1)")
    additions: list[BoilAddition] = Field(default_factory=list)
    pump: int | None = Field(default=None, description="transfer: the pump (writable bool) started and stopped")
    valves: list[int] = Field(default_factory=list, description="transfer: valves opened first, closed last")
    until: Condition | None = Field(default=None, description="transfer, wait: done when this holds")
    message: str | None = Field(default=None, max_length=200, description="prompt: what the operator must do; "
                                "transfer, chill: shown while it runs")
    overdue_min: float | None = Field(default=None, gt=0, description="prompt: an alarm when unanswered this long")
    endpoint: int | None = Field(default=None, description="set: the endpoint written; chill: the temperature read")
    value: Value | None = Field(default=None, description="set: the value written")
    below_c: float | None = Field(default=None, description="chill: done once the endpoint reads below this")

    @model_validator(mode="after")
    def _keys_for_type(self) -> ProgramStep:
        required, optional = STEP_KEYS[self.type]
        given = {k for k in self.model_fields_set if k not in ("type", "name")}
        for key in sorted(required - given):
            raise ValueError(f"a {self.type} step needs {key}")
        extra = given - required - optional
        if extra:
            raise ValueError(f"a {self.type} step takes no {', '.join(sorted(extra))}")
        if self.type == "ramp" and sum(k in given for k in RAMP_PACES) != 1:
            raise ValueError("a ramp step takes exactly one of " + ", ".join(RAMP_PACES))
        if self.type == "hold" and ("minutes" in given) == ("days" in given):
            raise ValueError("a hold step takes minutes or days (one of them)")
        if self.type == "wait" and ("minutes" in given) == ("until" in given):
            raise ValueError("a wait step takes minutes or until (one of them)")
        if self.type == "boil" and any(a.at_min > (self.minutes or 0) for a in self.additions):
            raise ValueError("a boil addition's at_min must lie within the boil's minutes")
        return self

    @property
    def title(self) -> str:
        return self.name or self.type

    @property
    def duration_s(self) -> float | None:
        """The step's own time in seconds (hold, boil, wait; a ramp given minutes or days), else None."""
        if self.minutes is not None:
            return self.minutes * 60.0
        if self.days is not None:
            return self.days * 86400.0
        return None


class ProgramUnit(Strict):
    """What runs one program at a time: the brewhouse, or one fermenter.

    `controllers` are the loops its programs may drive (a controller belongs to one unit at most).
    `resume` is what happens after a restart: `paused` (the brewhouse default: an operator looks
    first) or `schedule` (the fermenter default: control goes on, the target taken from the
    wall-clock schedule)."""

    id: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")]
    name: str
    kind: Literal["brewhouse", "fermenter"] = "brewhouse"
    controllers: list[str] = Field(min_length=1)
    resume: Literal["paused", "schedule"] | None = None

    @property
    def resume_rule(self) -> str:
        return self.resume or ("schedule" if self.kind == "fermenter" else "paused")


class ProgramTemplate(Strict):
    """A named list of steps for a unit (a mash and boil, a fermentation profile)."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
    name: str
    unit: str
    steps: list[ProgramStep] = Field(min_length=1)


class ProgramSettings(Strict):
    units: list[ProgramUnit] = Field(default_factory=list)
    templates: list[ProgramTemplate] = Field(default_factory=list)
    save_every_s: float = Field(default=30.0, gt=0, description="a running program's state is stored at every "
                                "transition and at least this often (process seconds)")


class PowerElement(Strict):
    """One element on the supply: the controller output that switches it and its power."""

    output: int = Field(description="a controller's bool output endpoint")
    watts: float = Field(gt=0)


class PowerSettings(Strict):
    """The supply the elements share; the controllers never switch on more than `limit_w` at once."""

    limit_w: float = Field(gt=0, description="what the supply can carry (e.g. three-phase 3 × 16 A × 230 V = 11040 W)")
    elements: list[PowerElement] = Field(default_factory=list)
    slice_s: float = Field(default=10.0, ge=0, description="a granted element keeps its grant this long")
    aging_s: float = Field(default=60.0, gt=0, description="a waiting element gains one priority step per this")
    release_s: float = Field(default=1.0, ge=0, description="an element switched off counts this long more "
                             "(break-before-make)")


class MqttTls(Strict):
    """TLS to the broker: the CA that signed the broker's certificate, and a client certificate when the
    broker asks for one. `insecure` skips the check that the certificate names `host` (a lab only)."""

    ca_file: str | None = Field(default=None, min_length=1, description="PEM file of the CA that signed the "
                                "broker's certificate (absent: the system's CAs)")
    cert_file: str | None = Field(default=None, min_length=1, description="PEM client certificate (with key_file)")
    key_file: str | None = Field(default=None, min_length=1, description="PEM key of cert_file")
    insecure: bool = Field(default=False, description="skip the host name check of the broker's certificate")

    @model_validator(mode="after")
    def _pair(self) -> MqttTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttUser(Strict):
    """An MQTT user allowed to send commands: the BevForge role and nodes their commands run with."""

    role: str = Field(description="viewer, operator, technician or admin (commands need operator)")
    nodes: list[str] | None = Field(default=None, description="the nodes they may command (absent: all)")

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        from bevforge.permissions import ROLES  # here: the role authority may itself read the config types

        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        return role


MQTT_SEGMENT = r"^[A-Za-z0-9_\-]+$"  # one topic level: no '/', '+', '#' or spaces
MQTT_TOPIC_PATH = r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$"  # one or more plain levels: no wildcards


class MqttHomeAssistant(Strict):
    """Home Assistant MQTT discovery (docs/integrations.md "Home Assistant"): every endpoint announced as an
    entity. `user` names the entry of `mqtt.users` whose role and nodes decide which endpoints Home Assistant
    may switch or set; the others are announced read-only."""

    enabled: bool = Field(default=True, description="false: announce nothing (and remove nothing)")
    discovery_prefix: Annotated[str, Field(pattern=MQTT_TOPIC_PATH, max_length=128,
                                           description="Home Assistant's discovery prefix")] = "homeassistant"
    status_topic: Annotated[str, Field(pattern=MQTT_TOPIC_PATH, max_length=128)] | None = Field(
        default=None, description="Home Assistant's birth topic (absent: <discovery_prefix>/status)")
    user: Annotated[str, Field(pattern=MQTT_SEGMENT)] | None = Field(
        default=None, description="the MQTT user Home Assistant connects as (a key of mqtt.users): its role and "
        "nodes decide what is writable there; absent: everything read-only")

    @property
    def birth_topic(self) -> str:
        return self.status_topic or f"{self.discovery_prefix}/status"


CLIENT_ID_ENV = "BEVFORGE_MQTT_CLIENT_ID"


class MqttForward(Strict):
    """Store-and-forward of this site's history and events to a central panel (docs/mqtt.md "Store-and-forward")."""

    batch_rows: int = Field(default=500, ge=1, le=10_000, description="history rows per message")
    window_batches: int = Field(default=4, ge=1, le=100, description="messages sent ahead of the centre's ack")
    ack_timeout_s: float = Field(default=10.0, gt=0, le=600, description="no ack this long: send again from "
                                 "the last acknowledged row (the wait doubles up to 10 × this)")
    alarm_after_s: float = Field(default=300.0, gt=0, description="history not acknowledged for this long "
                                 "(with rows waiting): the forwarding alarm is raised")
    centres: list[Annotated[str, Field(pattern=MQTT_SEGMENT)]] = Field(
        default_factory=lambda: ["central"], min_length=1,
        description="the MQTT users (central panels, each in mqtt.users) whose acknowledgements move the site on")
    streams: list[Literal["telemetry", "alarm_journal", "audit"]] = Field(
        default_factory=lambda: ["telemetry", "alarm_journal", "audit"], min_length=1,
        description="what is forwarded: the history (telemetry), the alarm journal, the audit journal (with the "
                    "commands' requests and results)")

    @field_validator("streams")
    @classmethod
    def _each_stream_once(cls, streams: list[str]) -> list[str]:
        if len(set(streams)) != len(streams):
            raise ValueError("each stream once")
        return streams


class MqttSettings(Strict):
    """The plant's public face on an MQTT broker (docs/mqtt.md). Absent: no MQTT at all."""

    host: str = Field(min_length=1, description="the broker's host name or address")
    port: int = Field(default=1883, ge=1, le=65535, description="1883 plain, 8883 usual for TLS")
    client_id: str | None = Field(default=None, min_length=1, max_length=128,
                                  description="MQTT client id (absent: bevforge-<site>)")
    topic_prefix: Annotated[str, Field(pattern=MQTT_SEGMENT, max_length=64)] = "bevforge"
    site: Annotated[str, Field(pattern=MQTT_SEGMENT, max_length=64,
                               description="this site's topic level: the root is <topic_prefix>/<site>")]
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive: the broker publishes the "
                             "offline will after about 1.5 × this without a word")
    username: str | None = Field(default=None, min_length=1, description="BevForge's own broker user")
    password_env: str | None = Field(default=None, min_length=1, description="environment variable holding its "
                                     "password (never the password itself)")
    password_file: str | None = Field(default=None, min_length=1, description="file holding its password")
    tls: MqttTls | None = Field(default=None, description="absent: plain TCP")
    reconnect_min_s: float = Field(default=1.0, gt=0, le=60, description="first wait after a lost connection")
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600, description="the wait doubles up to this")
    qos: Literal[0, 1, 2] = Field(default=1, description="QoS of everything published and subscribed")
    command_queue: int = Field(default=1000, ge=10, le=100_000, description="command and alarm messages kept "
                               "for the broker while it is slow or down (the oldest dropped beyond)")
    commands_per_s: float = Field(default=5.0, gt=0, le=1000, description="commands a second each MQTT user may "
                                  "send (token bucket) …")
    commands_burst: int = Field(default=20, ge=1, le=10_000, description="… and at once; beyond: refused")
    users: dict[Annotated[str, Field(pattern=MQTT_SEGMENT)], MqttUser] = Field(
        default_factory=dict, description="MQTT users whose <root>/cmd/<user>/… commands are accepted, "
        "with the role they act as; anyone else is refused")
    forward: MqttForward | None = Field(default=None, description="store-and-forward of history to a central "
                                        "panel (absent: none); the centre's mqtt.users entry acknowledges it")
    homeassistant: MqttHomeAssistant | None = Field(default=None, description="Home Assistant MQTT discovery "
                                                    "(absent: none)")

    @model_validator(mode="after")
    def _checks(self) -> MqttSettings:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("password_env and password_file: give one")
        if (self.password_env is not None or self.password_file is not None) and self.username is None:
            raise ValueError("a password needs a username")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        if self.forward is not None:
            unknown = [user for user in self.forward.centres if user not in self.users]
            if unknown:
                raise ValueError(f"forward.centres: {unknown[0]!r} is not in mqtt.users (a centre acknowledges as "
                                 "its MQTT user, which the site must know)")
        ha_user = self.homeassistant.user if self.homeassistant is not None else None
        if ha_user is not None and ha_user not in self.users:
            raise ValueError(f"homeassistant.user {ha_user!r} is not one of mqtt.users (give it a role there)")
        return self

    @property
    def root(self) -> str:
        """The topic every message of this site lives under: `<topic_prefix>/<site>`."""
        return f"{self.topic_prefix}/{self.site}"

    @property
    def identifier(self) -> str:
        """The MQTT client id: BEVFORGE_MQTT_CLIENT_ID when set (several central instances run one config file,
        and the broker allows one connection per id), else `client_id`, else `bevforge-<site>`."""
        return os.environ.get(CLIENT_ID_ENV) or self.client_id or f"bevforge-{self.site}"


class MetricsSettings(Strict):
    """`GET /metrics` for a Prometheus scraper (docs/integrations.md "Prometheus and Grafana").

    On by default, and closed by default: without credentials only this machine's own addresses may
    scrape (a Prometheus on the same box, as Prometheus' own node exporter is usually run); from
    anywhere else a scraper sends an API token of at least `role` that sees every node (the figures
    span all devices and nodes). The figures hold no process values and no secrets, but device names,
    error counts and client numbers map the plant, so the network at large is not handed them.
    """

    enabled: bool = Field(default=True, description="serve /metrics (false: it answers 404)")
    role: str = Field(default="viewer", description="the least role of a session or API token that may scrape; "
                      "the credential must not be limited to some nodes")
    allow_from: list[IPvAnyNetwork] = Field(
        default_factory=lambda: [ip_network("127.0.0.0/8"), ip_network("::1/128")],
        description="addresses (CIDR) that may scrape without credentials; [] requires credentials from everyone")

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        from bevforge.permissions import ROLES  # here: the role authority may itself read the config types

        if value not in ROLES:
            raise ValueError(f"unknown role {value!r} (roles: {', '.join(ROLES)})")
        return value


class BrewfatherStream(Strict):
    """One fermenter as one device in Brewfather: its name there and the endpoints whose values go."""

    name: str = Field(min_length=1, max_length=64, description="the device's name in Brewfather (its id there)")
    temperature: int | None = Field(default=None, description="endpoint id of the temperature sent (°C or °F)")
    gravity: int | None = Field(default=None, description="endpoint id of the gravity sent (SG or °P)")
    beer: str | None = Field(default=None, max_length=100, description="the beer's name, sent as `beer`")
    comment: str | None = Field(default=None, max_length=200, description="sent as `comment`")

    @model_validator(mode="after")
    def _something_to_send(self) -> BrewfatherStream:
        if self.temperature is None and self.gravity is None:
            raise ValueError("name a temperature or a gravity endpoint (or both)")
        return self


class BrewfatherSettings(Strict):
    """Push fermenter temperature and gravity to a Brewfather custom stream (docs/integrations.md)."""

    url_env: str | None = Field(default=None, min_length=1, description="environment variable holding the "
                                "stream URL (it contains a secret id: never written here)")
    url_file: str | None = Field(default=None, min_length=1, description="file holding the stream URL")
    interval_s: float = Field(default=900.0, ge=900.0, le=86400.0, description="one post per stream this "
                              "often; Brewfather takes at most one every 15 minutes")
    retry_s: float = Field(default=60.0, ge=10.0, le=900.0, description="wait after a failed or skipped post")
    timeout_s: float = Field(default=10.0, gt=0, le=60.0, description="one post's time limit")
    streams: list[BrewfatherStream] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_url(self) -> BrewfatherSettings:
        if (self.url_env is None) == (self.url_file is None):
            raise ValueError("give the stream URL as url_env or url_file, one of them")
        return self


NotifyPriority = Literal["alert", "low", "medium", "high", "critical"]
CLOCK_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
# `${NAME}` in an Apprise URL: from the environment or notifications.secrets_file
SECRET_REFERENCE = r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}"


class QuietHours(Strict):
    """A recipient's night: from `start` to `end` (site time zone, may cross midnight) only the priorities in
    `allow` reach them; the others are not sent (shown as `quiet` on the status screen)."""

    start: str = Field(pattern=CLOCK_TIME, description="HH:MM, site time")
    end: str = Field(pattern=CLOCK_TIME, description="HH:MM, site time (before start: the next morning)")
    allow: list[NotifyPriority] = Field(default_factory=lambda: ["critical"],
                                        description="priorities still sent during quiet hours")


class Recipient(Strict):
    """Someone (or a channel) told about alarms: one or more Apprise URLs (https://github.com/caronc/apprise/wiki).
    A secret in a URL is written as `${NAME}`, never as itself."""

    urls: list[Annotated[str, Field(min_length=4, pattern=r"^[A-Za-z][A-Za-z0-9+.\-]*://")]] = Field(
        min_length=1, description="Apprise URLs; secrets as ${NAME}")
    quiet_hours: QuietHours | None = None

    @field_validator("urls")
    @classmethod
    def _no_written_password(cls, urls: list[str]) -> list[str]:
        for url in urls:  # scheme://user:password@host — the password must be a ${NAME}
            if re.search(r"://[^/@:?#]+:(?!\$\{[A-Za-z_][A-Za-z0-9_]*\}@)[^@/?#]+@", url):
                raise ValueError("write the password in a URL as ${NAME} (from the environment or secrets_file), "
                                 "never as itself")
        return urls


class NotifyRoute(Strict):
    """Who hears of an alarm of one priority: `recipients[0]` at once, then the next one each
    `escalate_after_min` while the alarm stays active and unacknowledged."""

    recipients: list[str] = Field(min_length=1, description="recipient names, in escalation order")
    escalate_after_min: float | None = Field(default=15.0, gt=0, description="absent/null: no escalation")


class NotifyRateLimit(Strict):
    """At most `messages` per recipient in any `per_min` minutes; beyond, alarms wait in one digest sent when
    the window allows."""

    messages: int = Field(default=5, ge=1, le=1000)
    per_min: float = Field(default=10.0, gt=0, le=1440)


class NotificationSettings(Strict):
    """Alarms and program prompts told to people outside the building through Apprise (docs/integrations.md)."""

    recipients: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+$", max_length=64)], Recipient] = Field(
        min_length=1)
    routes: dict[NotifyPriority, NotifyRoute] = Field(default_factory=dict,
                                                      description="alarm priority → who hears of it")
    prompts: list[str] = Field(default_factory=list, description="recipients told of a program's prompt")
    on_clear: bool = Field(default=True, description="tell the recipients already told when the alarm clears")
    rate_limit: NotifyRateLimit = Field(default_factory=NotifyRateLimit)
    secrets_file: str | None = Field(default=None, min_length=1, description="NAME=value lines for ${NAME} "
                                     "(the environment wins)")
    attempts: int = Field(default=5, ge=1, le=50, description="tries per message before it is failed")
    retry_s: float = Field(default=30.0, gt=0, le=3600, description="wait before the first retry; doubles")
    retry_max_s: float = Field(default=900.0, gt=0, le=86400, description="the longest wait between tries")
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="one try's limit (a slow server)")
    queue: int = Field(default=500, ge=10, le=100_000, description="messages waiting to go; beyond, dropped "
                       "and logged")
    title_prefix: str = Field(default="BevForge", max_length=64)

    @model_validator(mode="after")
    def _names(self) -> NotificationSettings:
        for priority, route in self.routes.items():
            for name in route.recipients:
                if name not in self.recipients:
                    raise ValueError(f"routes.{priority}: unknown recipient {name!r}")
            if len(set(route.recipients)) != len(route.recipients):
                raise ValueError(f"routes.{priority}: a recipient is named twice")
        for name in self.prompts:
            if name not in self.recipients:
                raise ValueError(f"prompts: unknown recipient {name!r}")
        if self.retry_max_s < self.retry_s:
            raise ValueError("retry_max_s must be at least retry_s")
        return self


class PlantConfig(Strict):
    version: Literal[1] = 1
    site: Site = Field(default_factory=Site)
    nodes: list[Node] = Field(min_length=1)
    devices: list[Device] = Field(min_length=1)
    endpoints: list[Endpoint] = Field(min_length=1)
    tiles: list[Tile] = Field(default_factory=list)
    interlocks: list[Interlock] = Field(default_factory=list)
    alarms: list[AlarmRule] = Field(default_factory=list)
    controllers: list[Controller] = Field(default_factory=list)
    power: PowerSettings | None = None
    programs: ProgramSettings = Field(default_factory=lambda: ProgramSettings())
    commands: CommandSettings = Field(default_factory=CommandSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    layout: PlantLayout | None = Field(default=None, description="the process mimic's drawing (/mimic)")
    mqtt: MqttSettings | None = Field(default=None, description="publish to an MQTT broker (docs/mqtt.md)")
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    brewfather: BrewfatherSettings | None = Field(default=None, description="push to a Brewfather custom stream")
    notifications: NotificationSettings | None = Field(default=None, description="alarms by e-mail, Telegram, "
                                                       "… (docs/integrations.md)")
    _by_id: dict[int, Endpoint] = PrivateAttr(default_factory=dict)
    _device_nodes: dict[str, frozenset[str]] = PrivateAttr(default_factory=dict)
    _alarms_by_id: dict[str, AlarmRule] = PrivateAttr(default_factory=dict)

    @field_validator("tiles")
    @classmethod
    def _sorted_tiles(cls, tiles: list[Tile]) -> list[Tile]:
        return sorted(tiles, key=lambda t: t.order)

    def model_post_init(self, context: Any, /) -> None:
        # the controllers' software setpoints are endpoints like the others (tiles, commands, the node rule);
        # appended after the file's, so every index below len(file endpoints) is still the file's line
        file_ids = {e.id for e in self.endpoints if e.source != "software"}
        for c in self.controllers:
            for made in c.software_endpoints:
                if made.id not in file_ids and all(e.id != made.id for e in self.endpoints):
                    self.endpoints.append(made)
        self._by_id = {e.id: e for e in self.endpoints}
        served: dict[str, set[str]] = {}
        for e in self.endpoints:
            served.setdefault(e.device, set()).add(e.node)
        self._device_nodes = {device: frozenset(nodes) for device, nodes in served.items()}
        self._alarms_by_id = {a.id: a for a in self.alarms}

    def endpoint(self, endpoint_id: int) -> Endpoint:
        return self._by_id[endpoint_id]

    @property
    def endpoints_by_id(self) -> dict[int, Endpoint]:
        return self._by_id

    def node_of(self, endpoint_id: int) -> str:
        return self._by_id[endpoint_id].node

    def forwarded_sites(self) -> dict[str, Device]:
        """The sites forwarding to this (central) panel: `settings.site` → its `site` device with
        `history: forwarded` (docs/mqtt.md "Store-and-forward")."""
        return {str(d.settings.get("site")): d for d in self.devices
                if d.driver == "site" and d.history == "forwarded"}

    def nodes_of_device(self, device_id: str) -> frozenset[str]:
        """The nodes of a device's endpoints (empty for a device with none, or an unknown one)."""
        return self._device_nodes.get(device_id, frozenset())

    def alarm_definition(self, rule_id: str) -> AlarmRule | None:
        return self._alarms_by_id.get(rule_id)


# ---------------------------------------------------------------------------------------------
# Loading with file:line errors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field or '(document)'}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


class ConfigError(Exception):
    """All problems found in one config file; str() is what a technician reads."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item."""


# The same loader on libyaml's parser when PyYAML has it: a config file parses about 8× faster (every
# start and every reload parses it before the plant runs). Its errors are read again with the pure
# Python loader, whose messages and positions the problems report.
_FastLineLoader: type[yaml.SafeLoader] = _LineLoader
if yaml.__with_libyaml__:
    class _CLineLoader(yaml.CSafeLoader):  # type: ignore[misc,valid-type]
        """CSafeLoader that remembers the line of every mapping key and sequence item."""

    _FastLineLoader = _CLineLoader  # type: ignore[assignment]


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    lines: dict[Any, int] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from exc
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        lines[key] = key_node.start_mark.line + 1
    loader.line_index[id(mapping)] = (node.start_mark.line + 1, lines)
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> list[Any]:
    items = [loader.construct_object(child, deep=True) for child in node.value]
    loader.line_index[id(items)] = (
        node.start_mark.line + 1,
        {i: child.start_mark.line + 1 for i, child in enumerate(node.value)},
    )
    return items


for _loader in {_LineLoader, _FastLineLoader}:
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _load_with_lines(text: str) -> tuple[Any, dict[int, tuple[int, dict[Any, int]]]]:
    """The document and its line index; libyaml first, the pure Python loader when libyaml finds a problem."""
    if _FastLineLoader is not _LineLoader:
        fast = _FastLineLoader(text)
        fast.line_index = {}  # type: ignore[attr-defined]
        try:
            return fast.get_single_data(), fast.line_index  # type: ignore[attr-defined]
        except Exception:  # any problem (libyaml's own, or text it cannot encode) is read again
            pass  # by the Python loader below, which finds it and reports it with its position
        finally:
            fast.dispose()
    loader = _LineLoader(text)  # the reader checks the characters here, before any parsing
    loader.line_index = {}  # type: ignore[attr-defined]
    try:
        return loader.get_single_data(), loader.line_index  # type: ignore[attr-defined]
    finally:
        loader.dispose()


class _LineMap:
    """Answers 'on which line is field path X' for a parsed document."""

    def __init__(self, document: Any, index: dict[int, tuple[int, dict[Any, int]]]) -> None:
        self.document = document
        self.index = index

    def line_of(self, path: tuple[Any, ...]) -> int | None:
        node = self.document
        line = self.index.get(id(node), (1, {}))[0]
        for part in path:
            entry = self.index.get(id(node))
            if entry is None:
                break
            own_line, children = entry
            if part not in children:
                return own_line if line is None else line
            line = children[part]
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
        return line


def _format_path(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


# A check the core cannot run itself (the drivers' device settings and point addresses): it gets the
# validated config and returns (field path, message) pairs, e.g. (("devices", 2, "settings", "device_id"), "…").
ExtraCheck = Callable[[PlantConfig], list[tuple[tuple[Any, ...], str]]]


def parse_config(text: str, filename: str = "config.yaml", extra_check: ExtraCheck | None = None) -> PlantConfig:
    """Parse and validate config text; raise ConfigError listing every problem with its line.

    `extra_check` is how the composition root adds the drivers' checks without this module
    importing them; its problems get file:line like every other.
    """
    try:
        document, line_index = _load_with_lines(text)
    except yaml.reader.ReaderError as exc:  # a control character, e.g. pasted from a terminal
        line = text[: exc.position].count("\n") + 1
        raise ConfigError([ConfigProblem(filename, line, "", f"YAML syntax: character #x{exc.character:04x} "
                                         "is not allowed (a control character?)")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(
            [ConfigProblem(filename, line, "", f"YAML syntax: {exc.problem or exc.context}")]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(filename, None, "", f"YAML syntax: {exc}")]) from None
    lines = _LineMap(document, line_index)
    if not isinstance(document, dict):
        raise ConfigError([ConfigProblem(filename, 1, "", "the file must be a mapping of sections")])
    try:
        config = PlantConfig.model_validate(document)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(ConfigProblem(filename, lines.line_of(loc), _format_path(loc), message))
        raise ConfigError(problems) from None
    found = check_references(config)
    if extra_check is not None:
        found += extra_check(config)
    problems = [ConfigProblem(filename, lines.line_of(path), _format_path(path), message) for path, message in found]
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: str | Path, extra_check: ExtraCheck | None = None) -> PlantConfig:
    """Read a config file; a missing or unreadable file is a ConfigError too."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(str(path), None, "", "not UTF-8 text")]) from None
    return parse_config(text, str(path), extra_check)


def check_references(config: PlantConfig) -> list[tuple[tuple[Any, ...], str]]:
    """Cross-section checks pydantic cannot see: duplicates and dangling references."""
    problems: list[tuple[tuple[Any, ...], str]] = []

    def unique(section: str, items: list[Any], attr: str) -> set[Any]:
        seen: set[Any] = set()
        for i, item in enumerate(items):
            key = getattr(item, attr)
            if key in seen:
                problems.append(((section, i, attr), f"duplicate {attr} {key!r}"))
            seen.add(key)
        return seen

    node_ids = unique("nodes", config.nodes, "id")
    device_ids = unique("devices", config.devices, "id")
    software = {e.id for c in config.controllers for e in c.software_endpoints}
    in_file = [e for e in config.endpoints if not (e.source == "software" and e.id in software)]
    endpoint_ids = unique("endpoints", in_file, "id") | software
    unique("endpoints", in_file, "name")
    unique("tiles", config.tiles, "id")
    unique("interlocks", config.interlocks, "id")
    unique("alarms", config.alarms, "id")
    by_id = {e.id: e for e in config.endpoints}

    for i, ep in enumerate(in_file):
        if ep.source == "software":
            problems.append((("endpoints", i, "source"), "software endpoints are made by a controller's software "
                             "setpoint (controllers[].setpoint), not written here"))
        if ep.node not in node_ids:
            problems.append((("endpoints", i, "node"), f"unknown node {ep.node!r}"))
        if ep.source == "device" and ep.device is None:
            problems.append((("endpoints", i, "device"), "a polled endpoint names its device "
                             "(or says source: external when a client feeds it)"))
        elif ep.source == "external" and ep.device is not None:
            problems.append((("endpoints", i, "device"), "an external endpoint has no device: one owner per "
                             "reading (remove device, or source: external)"))
        elif ep.device is not None and ep.device not in device_ids:
            problems.append((("endpoints", i, "device"), f"unknown device {ep.device!r}"))
        if ep.source == "external" and ep.writable:
            problems.append((("endpoints", i, "writable"), "an external endpoint has no device to write to"))
        if ep.feedback is not None and ep.feedback not in endpoint_ids:
            problems.append((("endpoints", i, "feedback"), f"unknown endpoint id {ep.feedback}"))
        if ep.writable and ep.safe_value is None and ep.kind in (EndpointKind.HEATER, EndpointKind.PUMP):
            problems.append((("endpoints", i, "safe_value"), "a writable heater or pump needs a safe_value"))
    for i, tile in enumerate(config.tiles):
        if tile.node not in node_ids:
            problems.append((("tiles", i, "node"), f"unknown node {tile.node!r}"))
        for j, eid in enumerate(tile.endpoints):
            if eid not in endpoint_ids:
                problems.append((("tiles", i, "endpoints", j), f"unknown endpoint id {eid}"))
    for i, rule in enumerate(config.interlocks):
        if rule.target not in endpoint_ids:
            problems.append((("interlocks", i, "target"), f"unknown endpoint id {rule.target}"))
        elif not by_id[rule.target].writable:
            problems.append((("interlocks", i, "target"), f"endpoint {rule.target} is not writable"))
        elif rule.trip and by_id[rule.target].safe_value is None:
            problems.append((("interlocks", i, "target"), f"endpoint {rule.target} has no safe_value to trip to"))
        for j, cond in enumerate(rule.requires):
            if cond.endpoint not in endpoint_ids:
                problems.append((("interlocks", i, "requires", j, "endpoint"), f"unknown endpoint id {cond.endpoint}"))
        if rule.active_when is not None and rule.active_when.endpoint != rule.target:
            problems.append((("interlocks", i, "active_when", "endpoint"), "must be the rule's target"))
    if config.mqtt is not None:
        for name, user in config.mqtt.users.items():
            for j, node in enumerate(user.nodes or ()):
                if node not in node_ids:
                    problems.append((("mqtt", "users", name, "nodes", j), f"unknown node {node!r}"))
    if config.brewfather is not None:
        for i, stream in enumerate(config.brewfather.streams):
            for attr, kind in (("temperature", EndpointKind.TEMPERATURE), ("gravity", EndpointKind.GRAVITY)):
                eid = getattr(stream, attr)
                if eid is not None and (eid not in by_id or by_id[eid].kind is not kind
                                        or (kind is EndpointKind.GRAVITY and by_id[eid].unit not in ("SG", "°P"))):
                    problems.append((("brewfather", "streams", i, attr), f"not a {kind.value} endpoint id: {eid}"
                                     + (" in SG or °P" if kind is EndpointKind.GRAVITY else "")))
        names: set[str] = set()
        for i, stream in enumerate(config.brewfather.streams):
            if stream.name in names:
                problems.append((("brewfather", "streams", i, "name"), f"duplicate name {stream.name!r}"))
            names.add(stream.name)
    interlock_ids = {r.id for r in config.interlocks}
    for i, alarm in enumerate(config.alarms):
        for attr in ("endpoint", "setpoint"):
            eid = getattr(alarm, attr)
            if eid is not None and eid not in endpoint_ids:
                problems.append((("alarms", i, attr), f"unknown endpoint id {eid}"))
        if alarm.endpoint in by_id and alarm.kind in ("HI", "HIHI", "LO", "LOLO", "deviation", "rate") \
                and by_id[alarm.endpoint].data_type is DataType.BOOL:
            problems.append((("alarms", i, "endpoint"), f"a {alarm.kind} alarm needs a numeric endpoint"))
        if alarm.device is not None and alarm.device not in device_ids:
            problems.append((("alarms", i, "device"), f"unknown device {alarm.device!r}"))
        if alarm.interlock is not None and alarm.interlock not in interlock_ids:
            problems.append((("alarms", i, "interlock"), f"unknown interlock {alarm.interlock!r}"))
        for j, cond in enumerate(alarm.suppress_when):
            if cond.endpoint not in endpoint_ids:
                problems.append((("alarms", i, "suppress_when", j, "endpoint"), f"unknown endpoint id {cond.endpoint}"))
    problems += _check_controllers(config, node_ids, {e.id for e in in_file}, by_id, {e.name for e in in_file})
    if config.layout is not None:
        problems += check_layout(config.layout, by_id, node_ids, {c.id for c in config.controllers})
    elif config.ui.kiosk_start == "mimic":
        problems.append((("ui", "kiosk_start"), "the mimic needs a layout: section to draw"))
    problems += _check_programs(config, by_id)
    return problems


def _check_controllers(config: PlantConfig, node_ids: set[Any], endpoint_ids: set[Any],
                       by_id: dict[int, Endpoint], names: set[str]) -> list[tuple[tuple[Any, ...], str]]:
    """Controllers name real, suitable endpoints; no output is driven by two loops; the power budget adds up."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    seen_ids: set[str] = set()
    driven: dict[int, str] = {}
    soft_ids: set[int] = set()
    for i, c in enumerate(config.controllers):
        at = ("controllers", i)
        if c.id in seen_ids:
            problems.append(((*at, "id"), f"duplicate id {c.id!r}"))
        seen_ids.add(c.id)
        if c.node not in node_ids:
            problems.append(((*at, "node"), f"unknown node {c.node!r}"))
        pv = by_id.get(c.input)
        if pv is None:
            problems.append(((*at, "input"), f"unknown endpoint id {c.input}"))
        elif pv.data_type is DataType.BOOL:
            problems.append(((*at, "input"), f"endpoint {c.input} is not numeric"))
        for attr in ("output", "cool_output"):
            eid = getattr(c, attr)
            if eid is None:
                continue
            ep = by_id.get(eid)
            if ep is None:
                problems.append(((*at, attr), f"unknown endpoint id {eid}"))
                continue
            if not ep.writable:
                problems.append(((*at, attr), f"endpoint {eid} is not writable"))
            elif ep.data_type is not DataType.BOOL:
                lo, hi = (ep.range.min, ep.range.max) if ep.range else (None, None)
                if lo is None or lo > 0 or hi < 100:
                    problems.append(((*at, attr), f"numeric endpoint {eid} needs a range covering 0–100 (%)"))
            elif ep.safe_value is None:
                problems.append(((*at, attr), f"endpoint {eid} has no safe_value for the loop's faults"))
            if eid in driven:
                problems.append(((*at, attr), f"endpoint {eid} is already driven by controller {driven[eid]!r}"))
            driven[eid] = c.id
            if c.kind == "hysteresis" and ep.data_type is not DataType.BOOL:
                problems.append(((*at, attr), "a hysteresis controller drives a bool output"))
        if c.cool_output is not None and c.cool_output == c.output:
            problems.append(((*at, "cool_output"), "the cooling output must differ from output"))
        if c.cool_output is not None and c.tuning is not None and c.tuning.out_min >= 0:
            problems.append(((*at, "tuning", "out_min"), "a heat/cool pair needs a negative out_min (cooling "
                             "demand), e.g. -100"))
        if c.cool_output is None and c.tuning is not None and c.tuning.out_min < 0:
            problems.append(((*at, "tuning", "out_min"), "a negative output needs a cool_output to drive"))
        if isinstance(c.setpoint, SoftwareSetpoint):
            if c.setpoint.id in endpoint_ids or c.setpoint.id in soft_ids:
                problems.append(((*at, "setpoint", "id"), f"id {c.setpoint.id} is already in use"))
            if c.setpoint.name in names:
                problems.append(((*at, "setpoint", "name"), f"name {c.setpoint.name!r} is already in use"))
            soft_ids.add(c.setpoint.id)
            names.add(c.setpoint.name)
        else:
            sp = by_id.get(c.setpoint)
            if sp is None:
                problems.append(((*at, "setpoint"), f"unknown endpoint id {c.setpoint}"))
            elif not sp.writable:
                problems.append(((*at, "setpoint"), f"endpoint {c.setpoint} is not writable"))
            elif sp.data_type is DataType.BOOL:
                problems.append(((*at, "setpoint"), f"endpoint {c.setpoint} is not numeric"))
        if c.output_record is not None:
            if c.output_record.id in endpoint_ids or c.output_record.id in soft_ids:
                problems.append(((*at, "output_record", "id"), f"id {c.output_record.id} is already in use"))
            if c.output_record.name in names:
                problems.append(((*at, "output_record", "name"), f"name {c.output_record.name!r} is already in use"))
            soft_ids.add(c.output_record.id)
            names.add(c.output_record.name)
    if config.power is not None:
        seen_outputs: set[int] = set()
        for j, element in enumerate(config.power.elements):
            at = ("power", "elements", j)
            if element.output not in driven:
                problems.append(((*at, "output"), f"endpoint {element.output} is not a controller's output"))
            elif by_id[element.output].data_type is not DataType.BOOL:
                problems.append(((*at, "output"), f"endpoint {element.output} is not a bool (on/off) output"))
            if element.output in seen_outputs:
                problems.append(((*at, "output"), f"duplicate output {element.output}"))
            seen_outputs.add(element.output)
            if element.watts > config.power.limit_w:
                problems.append(((*at, "watts"), f"{element.watts:g} W can never fit the {config.power.limit_w:g} W "
                                 "supply (power.limit_w)"))
    return problems


def check_program_template(config: PlantConfig, template: ProgramTemplate) -> list[tuple[tuple[Any, ...], str]]:
    """The start-up checks of one program that is not in config.yaml (a recipe's) against this plant: its
    unit, its controllers and their setpoint ranges, its endpoints. Paths start at the template
    (`("steps", 2, "target_c")`)."""
    programs = config.programs.model_copy(update={"templates": [template]})
    problems = _check_programs(config.model_copy(update={"programs": programs}),
                               {e.id: e for e in config.endpoints})
    return [(path[3:], message) for path, message in problems if path[:2] == ("programs", "templates")]


def _check_programs(config: PlantConfig, by_id: dict[int, Endpoint]) -> list[tuple[tuple[Any, ...], str]]:
    """Units name real controllers (each in one unit); templates name a unit and only its controllers,
    real endpoints of the right kind (writable bool pump and valves, numeric temperatures), and targets
    within their controller's setpoint range."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    controllers = {c.id: c for c in config.controllers}
    owner: dict[str, str] = {}
    units: dict[str, ProgramUnit] = {}
    for i, unit in enumerate(config.programs.units):
        if unit.id in units:
            problems.append((("programs", "units", i, "id"), f"duplicate id {unit.id!r}"))
        units[unit.id] = unit
        for j, cid in enumerate(unit.controllers):
            if cid not in controllers:
                problems.append((("programs", "units", i, "controllers", j), f"unknown controller {cid!r}"))
            elif cid in owner:
                problems.append((("programs", "units", i, "controllers", j),
                                 f"controller {cid!r} already belongs to unit {owner[cid]!r}"))
            owner.setdefault(cid, unit.id)
    seen: set[str] = set()

    def endpoint(at: tuple[Any, ...], eid: int, *, writable: bool = False, bool_: bool | None = None) -> None:
        ep = by_id.get(eid)
        if ep is None:
            problems.append((at, f"unknown endpoint id {eid}"))
        elif writable and not ep.writable:
            problems.append((at, f"endpoint {eid} is not writable"))
        elif bool_ is True and ep.data_type is not DataType.BOOL:
            problems.append((at, f"endpoint {eid} is not an on/off (bool) endpoint"))
        elif bool_ is False and ep.data_type is DataType.BOOL:
            problems.append((at, f"endpoint {eid} is not numeric"))

    for i, template in enumerate(config.programs.templates):
        at = ("programs", "templates", i)
        if template.id in seen:
            problems.append(((*at, "id"), f"duplicate id {template.id!r}"))
        seen.add(template.id)
        unit = units.get(template.unit)
        if unit is None:
            problems.append(((*at, "unit"), f"unknown unit {template.unit!r}"))
        for j, step in enumerate(template.steps):
            here = (*at, "steps", j)
            if step.controller is not None:
                c = controllers.get(step.controller)
                if c is None:
                    problems.append(((*here, "controller"), f"unknown controller {step.controller!r}"))
                elif unit is not None and step.controller not in unit.controllers:
                    problems.append(((*here, "controller"), f"controller {step.controller!r} does not belong to "
                                     f"unit {unit.id!r}"))
                elif isinstance(c.setpoint, SoftwareSetpoint):
                    for attr in ("target_c", "from_c", "to_c"):
                        value = getattr(step, attr)
                        if value is not None and not c.setpoint.min <= value <= c.setpoint.max:
                            problems.append(((*here, attr), f"{value:g} lies outside the setpoint range "
                                             f"{c.setpoint.min:g}…{c.setpoint.max:g} of controller {c.id!r}"))
            if step.pump is not None:
                endpoint((*here, "pump"), step.pump, writable=True, bool_=True)
            for k, valve in enumerate(step.valves):
                endpoint((*here, "valves", k), valve, writable=True, bool_=True)
            if step.until is not None:
                endpoint((*here, "until", "endpoint"), step.until.endpoint)
            if step.type == "set" and step.endpoint is not None:
                endpoint((*here, "endpoint"), step.endpoint, writable=True)
            if step.type == "chill" and step.endpoint is not None:
                endpoint((*here, "endpoint"), step.endpoint, bool_=False)
    return problems
