"""Floating hydrometers that post to the panel: driver names `ispindel` and `tilt` (docs/integrations.md).

An iSpindel (its "HTTP" service) or a Tilt bridge (the Tilt app's or TiltPi's cloud URL) posts every
few minutes to `POST /api/hydrometers/<kind>/<device id>/<token>`; the route hands the body to this
driver, which checks the token in constant time, reads the body (bevforge/integrations/hydrometers.py)
and reports one reading per configured endpoint through its link — the same path a Modbus poll takes,
so quality, staleness, alarms, trends and history treat gravity like any other value.

Staleness: each endpoint's `poll_interval_s` is the interval the device posts at; the plant marks a
value UNCERTAIN after its `stale_after` (default 3 × that) and BAD after 3 × stale_after. This driver
also watches the device on the process clock: with no accepted post for `offline_after_s` (default the
longest 3 × stale_after of its endpoints) the device is offline (every value BAD, a comms alarm,
"no post for … s"), and online again with the next good post.

The device's token comes from `settings.token_env` (an environment variable) or `settings.token_file`,
read at each post, never from config.yaml and never logged or echoed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bevforge.clock import Clock, SystemClock
from bevforge.config import TEMPERATURE_UNITS, Device, Endpoint
from bevforge.devices import DeviceError, DeviceLink, PostedDriver, SettingsRefused
from bevforge.domain import DataType, EndpointKind, Quality, Reading, Value, utcnow
from bevforge.errors import NOT_FOUND, UNAUTHORIZED, NotFound, Unauthorized
from bevforge.integrations import hydrometers
from bevforge.integrations.hydrometers import GRAVITY_UNITS, READINGS, TILT_COLOURS, HydrometerSample
from bevforge.tasks import stop_task

log = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 16
MIN_INTERVAL_S = 10.0
REFUSED = "device id or token not accepted"  # the same for an unknown device and a wrong token: nothing leaks
_SETTINGS = {"ispindel": {"token_env", "token_file", "gravity_unit", "offline_after_s"},
             "tilt": {"token_env", "token_file", "gravity_unit", "offline_after_s", "colour", "temperature_unit"}}
_UNITS = {"battery": ("V",), "angle": ("°",), "rssi": ("dBm",)}


class HydrometerDriver(PostedDriver):
    """One iSpindel, or one Tilt (one colour) behind a Tilt app or TiltPi."""

    def __init__(self, device: Device, endpoints: Sequence[Endpoint], link: DeviceLink, kind: str,
                 clock: Clock | None = None) -> None:
        super().__init__(device, endpoints, link)
        self.kind = kind
        self.clock: Clock = clock if clock is not None else SystemClock()
        settings = dict(device.settings)
        unknown = sorted(set(settings) - _SETTINGS[kind])
        if unknown:
            raise SettingsRefused(device, f"settings.{unknown[0]}",
                                  f"unknown setting ({', '.join(sorted(_SETTINGS[kind]))})")
        if ("token_env" in settings) == ("token_file" in settings):
            raise SettingsRefused(device, "settings.token_env", "give the device's URL token as token_env (an "
                                  "environment variable) or token_file (a file), one of them")
        for key in ("token_env", "token_file"):
            if key in settings and (not isinstance(settings[key], str) or not settings[key].strip()):
                raise SettingsRefused(device, f"settings.{key}", "a name, not empty")
        self.token_env: str | None = settings.get("token_env")
        self.token_file: str | None = settings.get("token_file")
        self.gravity_unit = settings.get("gravity_unit", "SG")
        if self.gravity_unit not in GRAVITY_UNITS:
            raise SettingsRefused(device, "settings.gravity_unit", "the unit the device sends gravity in: SG or °P")
        self.colour = ""
        self.temperature_unit = "°C"
        if kind == "tilt":
            colour = settings.get("colour")
            if not isinstance(colour, str) or colour.upper() not in TILT_COLOURS:
                raise SettingsRefused(device, "settings.colour", f"the Tilt's colour: {', '.join(TILT_COLOURS)}")
            self.colour = colour.upper()
            self.temperature_unit = settings.get("temperature_unit", "°F")
            if self.temperature_unit not in TEMPERATURE_UNITS:
                raise SettingsRefused(device, "settings.temperature_unit",
                                      "the unit the Tilt app sends Temp in: °F or °C")
        self.reading_of: dict[int, str] = {}
        for endpoint in self.endpoints:
            self.reading_of[endpoint.id] = _reading_of(endpoint, kind)
        longest = max((3 * e.stale_after for e in self.endpoints), default=3 * 3 * 900.0)
        offline = settings.get("offline_after_s", longest)
        if (not isinstance(offline, int | float) or isinstance(offline, bool)
                or not MIN_INTERVAL_S <= offline <= 7 * 86400):
            raise SettingsRefused(device, "settings.offline_after_s", f"seconds, from {MIN_INTERVAL_S:g} to a week")
        self.offline_after_s = float(offline)
        self.posts = 0
        self.refused = 0
        self.last_post_at: str | None = None
        self._last_post = 0.0
        self._reported = False
        self._posted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- the driver interface ---------------------------------------------------------------------

    async def start(self) -> None:
        self._last_post = self.clock.monotonic()
        self._task = asyncio.create_task(self._watch(), name=f"hydrometer-{self.device.id}")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def write(self, endpoint: Endpoint, value: Value) -> None:
        raise DeviceError(f"{self.device.id} is a hydrometer: it only reports", code="not_writable")

    def status(self) -> dict[str, Any]:
        return super().status() | {"posts": self.posts, "refusedPosts": self.refused, "lastPostAt": self.last_post_at,
                                   "offlineAfterS": self.offline_after_s}

    # -- a post -----------------------------------------------------------------------------------

    def accept_post(self, kind: str, token: str, body: Any) -> dict[str, Any]:
        expected = self._token()
        if expected is None or not hydrometers.token_matches(token, expected):
            self.refused += 1
            raise Unauthorized(REFUSED, code=UNAUTHORIZED, field="token")
        if kind != self.kind:
            raise NotFound(f"device {self.device.id} is a {self.kind}: post to /api/hydrometers/{self.kind}/…",
                           code=NOT_FOUND, field="kind")
        sample = self._parse(body)
        readings = []
        for endpoint in self.endpoints:
            value = sample.value(self.reading_of[endpoint.id], endpoint.unit)
            if value is not None:
                readings.append(Reading(endpoint.id, round(value) if endpoint.data_type is DataType.INT
                                        else value, Quality.GOOD, utcnow()))
        self.posts += 1
        self.last_post_at = utcnow().isoformat()
        self._last_post = self.clock.monotonic()
        self._posted.set()
        self._report(True, None)
        self.link.readings(readings)
        return {"deviceId": self.device.id, "readings": [{"endpointId": r.endpoint_id, "value": r.value}
                                                          for r in readings]}

    def _parse(self, body: Any) -> HydrometerSample:
        if self.kind == "ispindel":
            return hydrometers.parse_ispindel(body, self.gravity_unit)
        return hydrometers.parse_tilt(body, self.colour, self.gravity_unit, self.temperature_unit)

    def _token(self) -> str | None:
        """The device's URL token now (from the environment or its file); None, logged, when unusable."""
        try:
            if self.token_env is not None:
                token = os.environ.get(self.token_env)
                where = f"the variable {self.token_env}"
            else:
                assert self.token_file is not None
                token = Path(self.token_file).read_text(encoding="utf-8").strip()
                where = f"the file {self.token_file}"
        except OSError as exc:
            log.warning("hydrometer %s: cannot read its token file: %s", self.device.id, exc.strerror)
            return None
        if token is None or len(token.strip()) < MIN_TOKEN_CHARS:
            log.warning("hydrometer %s: %s holds no token of at least %d characters: every post is refused",
                        self.device.id, where, MIN_TOKEN_CHARS)
            return None
        return token.strip()

    # -- silence ----------------------------------------------------------------------------------

    def _report(self, online: bool, error: str | None) -> None:
        if online != self.online or not self._reported:
            self._reported = True
            self.online = online
            self.last_error = error
            self.link.comms(online, error)

    async def _watch(self) -> None:
        """Offline once no post has come for offline_after_s of process time; back with the next post."""
        while True:
            deadline = self._last_post + self.offline_after_s
            if self.clock.monotonic() < deadline:
                await self.clock.sleep_until(deadline)
                continue
            if self.online or not self._reported:
                self._report(False, f"no post for {self.clock.monotonic() - self._last_post:.0f} s")
            self._posted.clear()
            await self._posted.wait()


def _reading_of(endpoint: Endpoint, kind: str) -> str:
    """Which value of the post an endpoint takes (`address.reading`), with its unit checked."""
    address = dict(endpoint.address)
    unknown = sorted(set(address) - {"reading"})
    if unknown:
        raise SettingsRefused(endpoint, f"address.{unknown[0]}", "unknown key (reading)")
    reading = address.get("reading")
    offered = READINGS if kind == "ispindel" else ("gravity", "temperature")
    if reading not in offered:
        raise SettingsRefused(endpoint, "address.reading", f"one of {', '.join(offered)}")
    if endpoint.writable:
        raise SettingsRefused(endpoint, "writable", "a hydrometer only reports: false")
    if endpoint.data_type is DataType.BOOL:
        raise SettingsRefused(endpoint, "data_type", "a number: float (or int)")
    if reading == "gravity" and (endpoint.kind is not EndpointKind.GRAVITY or endpoint.unit not in GRAVITY_UNITS):
        raise SettingsRefused(endpoint, "unit", "a gravity endpoint is kind: gravity with unit SG or °P")
    if reading == "temperature" and endpoint.kind is not EndpointKind.TEMPERATURE:
        raise SettingsRefused(endpoint, "kind", "the temperature is kind: temperature (unit °C or °F)")
    if reading in _UNITS and endpoint.unit not in _UNITS[reading]:
        raise SettingsRefused(endpoint, "unit", f"{reading} is reported in {_UNITS[reading][0]}")
    if endpoint.poll_interval_s < MIN_INTERVAL_S:
        raise SettingsRefused(endpoint, "poll_interval_s", "the interval the device posts at (the iSpindel's "
                              f"update interval, the Tilt app's logging interval), at least {MIN_INTERVAL_S:g} s")
    return reading
