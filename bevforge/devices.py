"""The small interface between the core and device protocols.

The core never imports `drivers/`; it is handed factories that build a `Driver` per configured
device. A driver reports readings and its comms state through the `DeviceLink` it is given.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bevforge.config import Device, Endpoint
from bevforge.domain import Reading, Value
from bevforge.tallies import PollTally


class DeviceError(Exception):
    """A device refused or failed a request. `retryable` says whether trying again can help."""

    def __init__(self, message: str, *, code: str = "device_error", retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class SettingsRefused(ValueError):
    """A driver refused a device's `settings` or an endpoint's `address` (or another field) as built.

    It says which config entry and which field, not just a sentence, so `--check-config` can put
    the problem on its file:line like the schema's own errors; str() is the sentence start-up prints.
    `field` is dotted and relative to the entry: "settings.device_id", "address.byte_order", "writable".
    """

    def __init__(self, owner: Device | Endpoint, field: str, reason: str) -> None:
        self.owner = owner
        self.field = field
        self.reason = reason
        label = f"device {owner.id}" if isinstance(owner, Device) else f"endpoint {owner.name}"
        super().__init__(f"{label}: {field}: {reason}")


SITE_ALARM_KIND = "site"


def site_alarm_prefix(device_id: str) -> str:
    """The start of the keys under which a central panel shows the alarms of the site that is its `device_id`."""
    return f"site:{device_id}:"


def site_alarm_key(device_id: str, alarm_id: int) -> str:
    return f"{site_alarm_prefix(device_id)}{alarm_id}"


# a forwarded history row: (the site's row id, this panel's endpoint id or None, value, quality, source_ts, server_ts)
ForwardedRow = tuple[int, int | None, float | None, str, float | None, float]


class DeviceLink(Protocol):
    """What a driver may tell the core."""

    def readings(self, readings: Sequence[Reading]) -> None: ...

    def comms(self, online: bool, error: str | None = None) -> None: ...

    def site_alarm(self, alarm_id: int, frame: dict[str, Any] | None) -> None:
        """A remote site's alarm (driver `site`) as it stands there: `frame` its latest alarm frame, None once
        it is over at the site. Shown on this panel as the alarm `site:<device id>:<alarm id>`."""
        ...

    def site_alarms_standing(self, alarm_ids: frozenset[int]) -> None:
        """Every alarm standing at the site now (after a reconnect): any other shown here is cleared."""
        ...

    async def forwarded_history(self, site: str, store: str, after: int, up_to: int,
                                rows: Sequence[ForwardedRow]) -> tuple[int, bool]:
        """A remote site's forwarded history (driver `site`), stored once: (the watermark now, gap)."""
        ...

    async def forwarded_events(self, site: str, store: str, stream: str, after: int, up_to: int,
                               rows: Sequence[dict[str, Any]]) -> tuple[int, bool]:
        """A remote site's forwarded alarm journal or audit entries (`stream`; each row the site table's
        columns, `site_id` its id there), stored once: (the watermark now, gap)."""
        ...


class Driver(ABC):
    """One configured device. Implementations must never let one device stall another."""

    def __init__(self, device: Device, endpoints: Sequence[Endpoint], link: DeviceLink) -> None:
        self.device = device
        self.endpoints = list(endpoints)
        self.link = link
        self.online = False
        self.last_error: str | None = None
        # each request's duration and the failed ones, for /metrics (bevforge/metrics); a driver that
        # polls keeps it (drivers/modbus, drivers/serial_probe), one that is pushed to leaves it at zero
        self.polls = PollTally()

    @abstractmethod
    async def start(self) -> None:
        """Begin polling; return promptly (polling runs in tasks of the driver's own)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop polling and release the port or socket."""

    @abstractmethod
    async def write(self, endpoint: Endpoint, value: Value) -> None:
        """Send one write; return when the device accepted it, raise DeviceError otherwise."""

    async def refresh(self, endpoint: Endpoint) -> None:  # noqa: B027 - optional hook
        """Read `endpoint` now instead of at its next poll (speeds up command readback)."""

    def status(self) -> dict[str, Any]:
        return {
            "deviceId": self.device.id,
            "driver": self.device.driver,
            "online": self.online,
            "lastError": self.last_error,
        }


DriverFactory = Callable[[Device, Sequence[Endpoint], DeviceLink], Driver]


class PostedDriver(Driver):
    """A device that posts its readings to the panel over HTTP instead of being polled (a floating
    hydrometer: drivers/hydrometer.py). The route `POST /api/hydrometers/<kind>/<device>/<token>`
    hands it the body; it checks the token itself (constant time) and reports readings through its
    link like any driver. Raises `errors.Unauthorized` for a wrong token or kind, `errors.Invalid` /
    `errors.Malformed` naming the field for a body it cannot read."""

    kind: str = ""

    @abstractmethod
    def accept_post(self, kind: str, token: str, body: Any) -> dict[str, Any]:
        """Check and apply one post; return what was applied (endpoint ids and values) for the answer."""
