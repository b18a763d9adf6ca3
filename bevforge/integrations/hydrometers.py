"""What a floating hydrometer posts, read and checked: iSpindel JSON and the Tilt app / TiltPi post.

These devices cannot send headers or sign in, so each posts to its own URL carrying its own token
(`POST /api/hydrometers/<kind>/<device id>/<token>`, bevforge/api/hydrometers_api.py). This module
knows the bodies only: which field is missing or of the wrong type (named in the 4xx answer, so the
brewer finds the wrong setting in the device's portal), and the conversions between the units a
device sends and the units an endpoint declares. It does no I/O and keeps no state; the driver
(drivers/hydrometer.py) turns a `HydrometerSample` into readings of its endpoints.

Units: gravity "SG" (specific gravity, 1.050) or "°P" (degrees Plato, 12.4); temperature "°C" or
"°F" (the iSpindel may also send Kelvin); battery volts; angle degrees; RSSI dBm.
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass
from typing import Any

from bevforge.errors import INVALID_VALUE, MISSING_FIELD, OUT_OF_RANGE, Invalid, Malformed

KINDS = ("ispindel", "tilt")
GRAVITY_UNITS = ("SG", "°P")
READINGS = ("gravity", "temperature", "battery", "angle", "rssi")
TILT_COLOURS = ("RED", "GREEN", "BLACK", "PURPLE", "ORANGE", "BLUE", "YELLOW", "PINK")
_ISPINDEL_TEMP_UNITS = {"C": "°C", "F": "°F", "K": "K"}


@dataclass(frozen=True)
class HydrometerSample:
    """One post, in the device's own units (`gravity_unit`, `temperature_unit`); None: not sent."""

    gravity: float | None
    gravity_unit: str
    temperature: float | None
    temperature_unit: str
    battery_v: float | None = None
    angle_deg: float | None = None
    rssi_dbm: float | None = None
    interval_s: float | None = None
    name: str | None = None

    def value(self, reading: str, unit: str) -> float | None:
        """The sample's `reading` (one of READINGS) in the endpoint's `unit`; None when the post lacked it."""
        if reading == "gravity":
            return None if self.gravity is None else convert_gravity(self.gravity, self.gravity_unit, unit)
        if reading == "temperature":
            return None if self.temperature is None else convert_temperature(self.temperature,
                                                                             self.temperature_unit, unit)
        return {"battery": self.battery_v, "angle": self.angle_deg, "rssi": self.rssi_dbm}[reading]


# -- conversions --------------------------------------------------------------------------------


def plato_to_sg(plato: float) -> float:
    """°P → SG (the ASBC polynomial's usual inverse: good to ±0.0005 SG over 0-30 °P)."""
    return 1 + plato / (258.6 - (plato / 258.2) * 227.1)


def sg_to_plato(sg: float) -> float:
    """SG → °P (ASBC cubic)."""
    return -616.868 + 1111.14 * sg - 630.272 * sg ** 2 + 135.997 * sg ** 3


def convert_gravity(value: float, from_unit: str, to_unit: str) -> float:
    if from_unit == to_unit:
        return value
    if from_unit == "SG" and to_unit == "°P":
        return round(sg_to_plato(value), 2)
    if from_unit == "°P" and to_unit == "SG":
        return round(plato_to_sg(value), 4)
    raise ValueError(f"no gravity conversion from {from_unit!r} to {to_unit!r}")


def convert_temperature(value: float, from_unit: str, to_unit: str) -> float:
    celsius = {"°C": value, "°F": (value - 32) * 5 / 9, "K": value - 273.15}[from_unit]
    out = {"°C": celsius, "°F": celsius * 9 / 5 + 32}[to_unit]
    return round(out, 2)


# -- checks -------------------------------------------------------------------------------------


def token_matches(presented: str, expected: str) -> bool:
    """Compare a URL token with the device's in constant time (no timing oracle for guessing it)."""
    return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def _body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Malformed("the body must be a JSON object", field="body")
    return body


# Wide enough for any badly calibrated device (an iSpindel's formula can say -3 °P), narrow enough that
# the unit conversions stay finite
_LIMITS = {"gravity": (-100.0, 1000.0), "SG": (-100.0, 1000.0), "temperature": (-300.0, 1000.0),
           "Temp": (-300.0, 1000.0), "battery": (-100.0, 100.0), "angle": (-360.0, 360.0)}


def _number(body: dict[str, Any], field: str, *, required: bool, text_ok: bool = False) -> float | None:
    """A finite number; a form post's text ("1.050") is read when `text_ok` (the Tilt app sends forms)."""
    if field not in body or body[field] is None or (text_ok and body[field] == ""):
        if required:
            raise Invalid(f"{field} is missing: the device's post must carry it", code=MISSING_FIELD, field=field)
        return None
    value = body[field]
    if text_ok and isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise Invalid(f"{field} must be a number, not {value[:20]!r}", code=INVALID_VALUE, field=field) from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid(f"{field} must be a number", code=INVALID_VALUE, field=field)
    low, high = _LIMITS.get(field, (-1e12, 1e12))
    if not low <= value <= high:
        raise Invalid(f"{field} {value:g} is not a value this device can mean ({low:g} to {high:g})",
                      code=OUT_OF_RANGE, field=field)
    return float(value)


def _text(body: dict[str, Any], field: str, *, required: bool) -> str | None:
    if field not in body or body[field] is None:
        if required:
            raise Invalid(f"{field} is missing: the device's post must carry it", code=MISSING_FIELD, field=field)
        return None
    if not isinstance(body[field], str):
        raise Invalid(f"{field} must be text", code=INVALID_VALUE, field=field)
    return body[field]


def parse_ispindel(body: Any, gravity_unit: str) -> HydrometerSample:
    """An iSpindel's HTTP post: `name`, `ID`, `token`, `angle`, `temperature`, `temp_units`, `battery`,
    `gravity`, `interval`, `RSSI`. `gravity` is in the unit its calibration formula gives, which the
    device's `settings.gravity_unit` states (the iSpindel does not say). `token` in the body is the
    iSpindel portal's "Token" field, not the URL token, and is not checked."""
    data = _body(body)
    name = _text(data, "name", required=True)
    units = _text(data, "temp_units", required=False) or "C"
    if units not in _ISPINDEL_TEMP_UNITS:
        raise Invalid(f"temp_units must be C, F or K, not {units[:8]!r}", code=INVALID_VALUE, field="temp_units")
    _number(data, "ID", required=False)
    _text(data, "token", required=False)
    interval = _number(data, "interval", required=False)
    return HydrometerSample(
        gravity=_number(data, "gravity", required=True), gravity_unit=gravity_unit,
        temperature=_number(data, "temperature", required=True), temperature_unit=_ISPINDEL_TEMP_UNITS[units],
        battery_v=_number(data, "battery", required=True), angle_deg=_number(data, "angle", required=True),
        rssi_dbm=_number(data, "RSSI", required=False), interval_s=interval, name=name)


def parse_tilt(body: Any, colour: str, gravity_unit: str, temperature_unit: str) -> HydrometerSample:
    """The Tilt app's / TiltPi's cloud-logging post: `Color`, `SG`, `Temp`, `Timepoint`, `Beer`, `Comment`
    (a form or JSON; a form's values are text). `SG` and `Temp` are in the units set in the app, which
    the device's settings state. `Timepoint` (a spreadsheet date, the phone's local time without a zone)
    is checked but not used as the reading's time. A post for another colour than this device's is
    refused: it is another Tilt."""
    data = _body(body)
    posted = _text(data, "Color", required=True) or ""
    # TiltPi sends "RED", a Tilt Pico "ORANGE:f9:15:82:6f:de:27" (colour, then the Tilt's MAC address)
    if posted.split(":", 1)[0].strip().upper() != colour:
        raise Invalid(f"Color {posted[:30]!r} is not this device's Tilt ({colour})", code=INVALID_VALUE,
                      field="Color")
    _text(data, "Beer", required=False)
    _text(data, "Comment", required=False)
    timepoint = _number(data, "Timepoint", required=False, text_ok=True)
    if timepoint is not None and not 1 <= timepoint <= 2_958_465:  # 1900-01-01 … 9999-12-31, as spreadsheets allow
        raise Invalid("Timepoint must be a spreadsheet date (days since 1899-12-30)", code=INVALID_VALUE,
                      field="Timepoint")
    # Timepoint is the phone's local time without a zone: the reading keeps the time it arrived instead
    return HydrometerSample(
        gravity=_number(data, "SG", required=True, text_ok=True), gravity_unit=gravity_unit,
        temperature=_number(data, "Temp", required=True, text_ok=True), temperature_unit=temperature_unit,
        name=posted)
