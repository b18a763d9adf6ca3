"""`--check-config` for the drivers: build every device's driver as start-up would, without running it.

The schema in bevforge/config.py cannot see inside `devices[].settings` or `endpoints[].address`:
those belong to the drivers. Building the drivers (nothing connects until `start()`) runs exactly
the checks start-up runs, so a technician's `--check-config` and the brew-day start agree.
Problems come back as (config path, message) pairs, the form bevforge.config turns into file:line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bevforge.config import Device, Endpoint, PlantConfig
from bevforge.devices import SettingsRefused
from bevforge.domain import Reading

Problem = tuple[tuple[Any, ...], str]


class _Unused:
    """The DeviceLink of a driver that is only built, never started: it has nothing to report."""

    def readings(self, readings: Sequence[Reading]) -> None:
        """Never called: readings come only from a started driver."""

    def comms(self, online: bool, error: str | None = None) -> None:
        """Never called: comms state comes only from a started driver."""


def check(config: PlantConfig) -> list[Problem]:
    """Every device's settings and every endpoint's address problem, each at its config path.

    A driver stops at its first problem, so a device whose endpoint is refused is built again
    without that endpoint: one run lists every bad address, as the schema check lists every bad key.
    """
    from drivers import driver_factories  # here, not at import: drivers/__init__ imports this module

    factories, _ = driver_factories(config)
    device_index = {d.id: i for i, d in enumerate(config.devices)}
    endpoint_index = {e.id: i for i, e in enumerate(config.endpoints)}
    problems: list[Problem] = []
    for i, device in enumerate(config.devices):
        factory = factories.get(device.driver)
        if factory is None:
            problems.append((("devices", i, "driver"), f"no driver named {device.driver!r} "
                                                      f"(available: {', '.join(sorted(factories))})"))
            continue
        endpoints = [e for e in config.endpoints if e.device == device.id]
        while True:
            try:
                factory(device, endpoints, _Unused())
            except SettingsRefused as exc:
                problems.append((_where(exc, device_index, endpoint_index), exc.reason))
                if isinstance(exc.owner, Device) or exc.owner not in endpoints:
                    break
                endpoints = [e for e in endpoints if e is not exc.owner]
                continue
            except ValueError as exc:  # a refusal that names no field: put it on the device
                problems.append((("devices", i), str(exc)))
            break
    return problems


def _where(exc: SettingsRefused, devices: dict[str, int], endpoints: dict[int, int]) -> tuple[Any, ...]:
    """The refused field as a config path, e.g. ("endpoints", 3, "address", "byte_order")."""
    owner = exc.owner
    entry: tuple[Any, ...] = (("devices", devices[owner.id]) if isinstance(owner, Device)
                              else ("endpoints", endpoints[owner.id]) if isinstance(owner, Endpoint) else ())
    return entry + tuple(exc.field.split("."))
