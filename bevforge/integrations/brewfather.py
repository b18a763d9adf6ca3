"""Fermenter temperature and gravity to a Brewfather custom stream (docs/integrations.md "Brewfather").

Brewfather's custom stream takes a JSON POST per reading — `name` (the device there), `temp`,
`temp_unit` (C, F), `gravity`, `gravity_unit` (G for SG, P for °P), `beer`, `comment` — and at most one
reading per device every 15 minutes. Each configured stream is posted on the runtime's process clock
once per `interval_s` (900 s at least), on a fixed grid from its first post. Only a GOOD value is
sent: a stale or bad one is left out, and a stream with nothing good is not posted (tried again after
`retry_s`, so it never counts against the limit). A post that fails (no answer within `timeout_s`,
refused, not 2xx) is logged, counted in `/api/os/health`, and tried again after `retry_s`.

The push runs in its own task and only reads the plant's present state: nothing in control, alarms or
the command pipeline waits for it. The stream URL carries the account's secret id, so it is read
from `url_env` or `url_file` at each post and never logged, echoed in health, or put in an error.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bevforge.clock import Clock
from bevforge.config import BrewfatherSettings, BrewfatherStream, PlantConfig
from bevforge.domain import EndpointState, Quality
from bevforge.messages import iso
from bevforge.tasks import stop_task

log = logging.getLogger(__name__)

_TEMP_UNITS = {"°C": "C", "°F": "F"}
_GRAVITY_UNITS = {"SG": "G", "°P": "P"}


class UrlUnavailable(Exception):
    """The stream URL cannot be read now (variable unset, file unreadable): the post waits for retry_s."""


def stream_payload(stream: BrewfatherStream, config: PlantConfig,
                   states: dict[int, EndpointState]) -> dict[str, Any] | None:
    """One custom-stream body from the present state; None when no configured value is GOOD."""
    body: dict[str, Any] = {"name": stream.name}
    for eid, value_key, unit_key, units in ((stream.temperature, "temp", "temp_unit", _TEMP_UNITS),
                                            (stream.gravity, "gravity", "gravity_unit", _GRAVITY_UNITS)):
        if eid is None:
            continue
        state = states.get(eid)
        endpoint = config.endpoints_by_id.get(eid)
        if state is None or endpoint is None or state.quality is not Quality.GOOD or state.value is None \
                or isinstance(state.value, bool) or endpoint.unit not in units:
            continue
        body[value_key] = state.value
        body[unit_key] = units[endpoint.unit]
    if len(body) == 1:
        return None
    if stream.beer is not None:
        body["beer"] = stream.beer
    if stream.comment is not None:
        body["comment"] = stream.comment
    return body


class BrewfatherPush:
    """The custom-stream poster: one task, one schedule per stream, on the process clock."""

    def __init__(self, settings: BrewfatherSettings, config: Callable[[], PlantConfig],
                 states: dict[int, EndpointState], clock: Clock) -> None:
        self.settings = settings
        self.config = config
        self.states = states
        self.clock = clock
        self.posts = 0
        self.failures = 0
        self.skipped = 0
        self.last_post_at: str | None = None
        self.last_error: str | None = None
        self.sent: dict[str, float] = {}  # stream name → clock time of its last accepted post
        self.attempts: dict[str, int] = {}  # stream name → posts tried (accepted or failed; skips not counted)
        self.posting = False  # a post is on the wire
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="brewfather-push")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    def status(self) -> dict[str, Any]:
        """For /api/os/health: counts and the last error, never the URL."""
        return {"streams": len(self.settings.streams), "posts": self.posts, "failures": self.failures,
                "skipped": self.skipped, "lastPostAt": self.last_post_at, "lastError": self.last_error}

    def url(self) -> str:
        settings = self.settings
        try:
            if settings.url_env is not None:
                url = os.environ.get(settings.url_env, "")
                where = f"brewfather.url_env: the variable {settings.url_env}"
            else:
                assert settings.url_file is not None
                url = Path(settings.url_file).read_text(encoding="utf-8")
                where = f"brewfather.url_file: the file {settings.url_file}"
        except OSError as exc:
            raise UrlUnavailable(f"brewfather.url_file: cannot read {settings.url_file}: {exc.strerror}") from None
        url = url.strip()
        if not url.startswith(("https://", "http://")):
            raise UrlUnavailable(f"{where} holds no http(s) URL")
        return url

    async def _run(self) -> None:
        due = {s.name: self.clock.monotonic() for s in self.settings.streams}
        async with httpx.AsyncClient(timeout=self.settings.timeout_s, follow_redirects=False) as client:
            while True:
                now = self.clock.monotonic()
                for stream in self.settings.streams:
                    if now >= due[stream.name]:
                        due[stream.name] = now + await self._push(client, stream, now)
                await self.clock.sleep_until(min(due.values()))

    async def _push(self, client: httpx.AsyncClient, stream: BrewfatherStream, now: float) -> float:
        """Post one stream; the wait until its next attempt (the interval after a post, retry_s otherwise)."""
        body = stream_payload(stream, self.config(), self.states)
        if body is None:
            self.skipped += 1
            log.debug("brewfather %s: no good value to send; next try in %.0f s", stream.name, self.settings.retry_s)
            return self.settings.retry_s
        self.attempts[stream.name] = self.attempts.get(stream.name, 0) + 1
        self.posting = True
        try:
            answer = await client.post(self.url(), json=body)
            error = None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"
        except UrlUnavailable as exc:
            error = str(exc)
        except httpx.TimeoutException:
            error = f"no answer within {self.settings.timeout_s:g} s"
        except Exception as exc:  # never end the push; its text may carry the URL: only its kind is told
            error = f"{type(exc).__name__}: could not post"
        finally:
            self.posting = False
        if error is not None:
            self.failures += 1
            self.last_error = error
            log.warning("brewfather %s: post failed (%s); next try in %.0f s", stream.name, error,
                        self.settings.retry_s)
            return self.settings.retry_s
        self.posts += 1
        self.last_error = None
        self.last_post_at = iso(self.clock.now())
        self.sent[stream.name] = now
        return self.settings.interval_s
