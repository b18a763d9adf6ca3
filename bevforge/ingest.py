"""Readings sent by clients: checked at the edge, once, for every transport (REST today, MQTT later).

A reading a client sends is trusted only as far as this module lets it in:
- **Owner.** Only an endpoint whose `source` is `external` may be written. A device-polled endpoint
  (a level switch, a heater's feedback) has one owner, its driver; a client's `true` for
  `hlt_level_high` would otherwise open the heater interlock the device holds shut.
- **Value.** Finite, of the endpoint's type (a bool, a whole number within int64, a float), and in
  its range: nothing that the store, a screen or a later read cannot hold.
- **Time.** A sender's timestamp lies within `ingest.max_age_s` before and `ingest.max_ahead_s`
  after the server clock: a buffered gateway may replay a day's outage, year 1 or 9999 never passes.
- **Rate.** Each credential has a token bucket of `ingest.burst` readings refilled at
  `ingest.rate_per_s`; a batch over it is refused whole (429 with Retry-After), so one busy script
  cannot starve the plant or the screens.

A node-limited sender sees only its nodes' endpoints: another node's is answered like an unknown id.
A batch is all or nothing: every reading is checked before the first one is applied.
Errors are the core's typed errors (bevforge/errors.py); each transport translates them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bevforge import errors, messages
from bevforge.config import Endpoint, IngestSettings
from bevforge.domain import Actor, DataType, InvalidValue, Quality, Reading, coerce_value, utcnow
from bevforge.errors import Forbidden, Invalid, TooLarge, TooManyRequests
from bevforge.permissions import may_see_nodes, require_ingest
from bevforge.plant import Plant

MAX_BATCH = 5000
READING_KEYS = frozenset({"endpointId", "value", "timestamp", "quality"})
GOOD_READING_KEYS = frozenset({"endpointId", "value"})  # no time, quality good: the fast path of accept()
MAX_BUCKETS = 1000  # credentials remembered at once; full (idle) buckets are forgotten first


class RateLimiter:
    """A token bucket per credential: `burst` readings at once, refilled at `rate_per_s`."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 what: tuple[str, str] = ("ingest", "readings")) -> None:
        self.what = what  # (the rate's name, what it counts): the words of the refusal
        self.rate = rate_per_s
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)

    def take(self, key: str, count: int) -> None:
        """Spend `count` tokens of `key`'s bucket, or raise TooManyRequests and spend nothing."""
        now = self.clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < count:
            self._buckets[key] = (tokens, now)
            wait = (count - tokens) / self.rate
            name, counted = self.what
            raise TooManyRequests(f"over the {name} rate of {self.rate:g} {counted}/s for this credential; "
                                  f"retry in {wait:.1f} s", retry_after_s=wait)
        self._buckets[key] = (tokens - count, now)
        if len(self._buckets) > MAX_BUCKETS:
            self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        """Drop buckets that have refilled: they hold nothing a new bucket would not."""
        for key, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * self.rate >= self.burst:
                del self._buckets[key]


def credential_key(actor: Actor) -> str:
    """Whose bucket a request spends: its token or session; without sign-in, the user at the station."""
    return actor.credential or f"{actor.user}@{actor.station}"


class ReadingIntake:
    """The one door for readings from outside: validate a body, charge its sender, apply it to the plant."""

    def __init__(self, plant: Plant, settings: IngestSettings, clock: Callable[[], datetime] = utcnow) -> None:
        self.plant = plant
        self.settings = settings
        self.clock = clock
        self.limiter = RateLimiter(settings.rate_per_s, settings.burst)

    def accept(self, body: Any, actor: Actor) -> int:
        """Check a decoded body (one reading, or `{readings: [...]}`) whole, then apply it; return the count."""
        items, prefix = _items(body)
        if len(items) > self.settings.burst:
            raise TooLarge(f"at most {self.settings.burst} readings per batch (ingest.burst)", field="readings")
        self.limiter.take(credential_key(actor), max(1, len(items)))
        now = self.clock()
        readings = [self._plain_good(item, actor) or self.parse(item, f"{prefix}[{i}]" if prefix else "", now, actor)
                    for i, item in enumerate(items)]
        return self.plant.ingest(readings)

    def _plain_good(self, item: Any, actor: Actor) -> Reading | None:
        """The common reading — `{endpointId, value}` with a finite float in range for a fed float endpoint
        the sender may see — checked in one pass (a gateway posts thousands a second). None for anything
        else, which `parse` then checks field by field and names the field at fault: the same rules."""
        if type(item) is not dict or len(item) != len(GOOD_READING_KEYS):
            return None
        endpoint_id, value = item.get("endpointId"), item.get("value")  # both there, or a type check fails
        if type(endpoint_id) is not int or type(value) is not float or not math.isfinite(value):
            return None
        endpoint = self.plant.endpoints.get(endpoint_id)
        if (endpoint is None or not endpoint.ingestable or endpoint.data_type is not DataType.FLOAT
                or (endpoint.range is not None and not endpoint.range.min <= value <= endpoint.range.max)
                or not may_see_nodes(actor, endpoint.node)):
            return None
        return Reading(endpoint_id, value)

    def parse(self, item: Any, where: str, now: datetime, actor: Actor) -> Reading:
        """One reading checked against its endpoint: the sender's nodes, owner, type, range and time."""
        def name(field: str) -> str:
            return f"{where}.{field}" if where else field

        if not isinstance(item, dict):
            raise Invalid("a reading must be an object", field=where or "body")
        unknown = set(item) - READING_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise Invalid(f"unknown field {key!r}", code=errors.UNKNOWN_FIELD, field=name(key))
        endpoint_id = item.get("endpointId")
        if isinstance(endpoint_id, bool) or not isinstance(endpoint_id, int):
            raise Invalid("endpointId must be an integer", code=errors.INVALID_ENDPOINT_ID, field=name("endpointId"))
        # another node's endpoint looks like none at all (the node rule: `permissions`)
        endpoint = require_ingest(actor, self.plant.endpoints.get(endpoint_id), endpoint_id, name("endpointId"))
        if not endpoint.ingestable:
            owner = f"read from device {endpoint.device}" if endpoint.device else "held by the panel (a setpoint)"
            raise Forbidden(f"{endpoint.name} is {owner}; only endpoints with "
                            "source: external accept readings from clients",
                            code=errors.NOT_INGESTABLE, field=name("endpointId"))
        quality_raw = item.get("quality", "good")
        try:
            quality = Quality(quality_raw)
        except (ValueError, TypeError):
            raise Invalid("quality must be good, uncertain or bad", code=errors.INVALID_QUALITY,
                          field=name("quality")) from None
        if "value" not in item:
            raise Invalid("value is required", code=errors.MISSING_FIELD, field=name("value"))
        value = self._value(endpoint, item["value"], quality, name("value"))
        source_time = self._time(item.get("timestamp"), name("timestamp"), now)
        return Reading(endpoint_id, value, quality, source_time=source_time,
                       error=None if quality is Quality.GOOD else "reported by sender")

    @staticmethod
    def _value(endpoint: Endpoint, raw: Any, quality: Quality, field: str) -> Any:
        if raw is None:
            if quality is Quality.GOOD:
                raise Invalid("value may be null only with quality bad", code=errors.INVALID_VALUE, field=field)
            return None
        try:
            value = coerce_value(raw, endpoint.data_type, field=field)
        except InvalidValue as exc:
            raise Invalid(exc.message, code=errors.INVALID_VALUE, field=field) from None
        if endpoint.range is not None and not endpoint.range.min <= float(value) <= endpoint.range.max:
            raise Invalid(f"{value} is outside {endpoint.name}'s range "
                          f"{endpoint.range.min:g}…{endpoint.range.max:g}", code=errors.OUT_OF_RANGE, field=field)
        return value

    def _time(self, raw: Any, field: str, now: datetime) -> datetime | None:
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise Invalid("timestamp must be an ISO-8601 string", code=errors.INVALID_TIMESTAMP, field=field)
        try:
            ts = datetime.fromisoformat(raw)
            if ts.tzinfo is None:
                ts = ts.replace(tzinfo=UTC)
            ahead = (ts - now).total_seconds()  # aware arithmetic: no conversion that could overflow
        except (ValueError, OverflowError):
            raise Invalid("timestamp must be an ISO-8601 string", code=errors.INVALID_TIMESTAMP, field=field) from None
        if not math.isfinite(ahead) or ahead < -self.settings.max_age_s or ahead > self.settings.max_ahead_s:
            raise Invalid(f"timestamp must lie within {self.settings.max_age_s:g} s before and "
                          f"{self.settings.max_ahead_s:g} s after the server clock ({messages.iso(now)})",
                          code=errors.INVALID_TIMESTAMP, field=field)
        return ts.astimezone(UTC)


def _items(body: Any) -> tuple[list[Any], str | None]:
    """The readings of a body and the field prefix that names them in errors."""
    if isinstance(body, dict) and "readings" in body:
        items = body["readings"]
        if not isinstance(items, list):
            raise Invalid("readings must be a list", field="readings")
        if len(items) > MAX_BATCH:
            raise TooLarge(f"at most {MAX_BATCH} readings per batch", field="readings")
        extra = set(body) - {"readings"}
        if extra:
            key = sorted(extra)[0]
            raise Invalid(f"unknown field {key!r}", code=errors.UNKNOWN_FIELD, field=key)
        return items, "readings"
    if isinstance(body, dict):
        return [body], None
    raise Invalid("body must be a reading or {readings: [...]}", field="body")
