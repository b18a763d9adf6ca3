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


# a forwarded history row: (the site's row id, this panel's endpoint id or None, value, quality, source_ts, server_ts)
ForwardedRow = tuple[int, int | None, float | None, str, float | None, float]


class DeviceLink(Protocol):
    """What a driver may tell the core."""

    def readings(self, readings: Sequence[Reading]) -> None: ...

    def comms(self, online: bool, error: str | None = None) -> None: ...

    async def forwarded_history(self, site: str, store: str, after: int, up_to: int,
                                rows: Sequence[ForwardedRow]) -> tuple[int, bool]:
        """A remote site's forwarded history (driver `site`), stored once: (the watermark now, gap)."""
        ...


class Driver(ABC):
    """One configured device. Implementations must never let one device stall another."""

    def __init__(self, device: Device, endpoints: Sequence[Endpoint], link: DeviceLink) -> None:
        self.device = device
        self.endpoints = list(endpoints)
        self.link = link
        self.online = False
        self.last_error: str | None = None

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
