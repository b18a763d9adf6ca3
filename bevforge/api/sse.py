"""`GET /api/os/events`: the live feed as Server-Sent Events, for clients that only listen.

Same payloads as /ws (`data:` is the very text the bus serialised), `id:` is the bus sequence
number, `event:` the frame type. `Last-Event-ID` (sent by EventSource on reconnect) replays what was
missed out of the bus ring buffer; when the gap is older than the buffer the stream starts with a
`resync` event and a snapshot of current values instead. A `:` comment line every sse_keepalive_s
keeps proxies from closing a quiet stream. Open streams are capped per user and in total, and a
stream that stops reading is cut off for its own backlog (api/stream_limits.py, bus.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from bevforge import messages, permissions
from bevforge.api.deps import actor_for_request, runtime_of
from bevforge.api.livefeed import (
    CHANNELS,
    Interest,
    alarm_snapshot,
    controller_snapshot,
    program_snapshot,
    reply,
    telemetry_snapshot,
)
from bevforge.api.security import QUERY_TOKEN_KEY, enforce, requires
from bevforge.api.stream_limits import LiveStreamResponse, holder_of, stream_caps_of
from bevforge.bus import Event, SubscriberClosed
from bevforge.errors import (
    INVALID_ENDPOINT_ID,
    INVALID_LAST_EVENT_ID,
    TOO_SLOW,
    UNAUTHORIZED,
    UNKNOWN_CHANNEL,
    UNKNOWN_ENDPOINT,
    Invalid,
    TooManyRequests,
    Unauthorized,
)

CREDENTIALS_ENDED = "credentials ended: sign in again"
router = APIRouter(prefix="/api/os", dependencies=[Depends(enforce)])


def _csv(raw: str | None) -> list[str]:
    return [p.strip() for p in raw.split(",") if p.strip()] if raw else []


def _interest(request: Request, channels: str | None, endpoint_ids: str | None, command_ids: str | None) -> Interest:
    rt = runtime_of(request)
    interest = Interest(actor_for_request(request))
    wanted = _csv(channels) or list(CHANNELS)
    for channel in wanted:
        if channel not in CHANNELS:
            raise Invalid(f"unknown channel {channel!r}; expected some of "
                           + ",".join(CHANNELS), code=UNKNOWN_CHANNEL, field="channels")
    if "telemetry" in wanted:
        ids = []
        for part in _csv(endpoint_ids):
            if not part.lstrip("-").isdigit():
                raise Invalid(f"endpointIds must be integers, got {part!r}", code=INVALID_ENDPOINT_ID,
                              field="endpointIds")
            endpoint = rt.plant.endpoints.get(int(part))
            if endpoint is None or not permissions.may_see_endpoint(interest.actor, endpoint):
                raise Invalid(f"no endpoint with id {part}", code=UNKNOWN_ENDPOINT, field="endpointIds")
            ids.append(endpoint.id)
        if ids:
            interest.endpoints.update(ids)
        else:
            interest.all_telemetry = True
    if "alarms" in wanted:
        interest.alarms = True
    if "controllers" in wanted:
        interest.controllers = True
    if "programs" in wanted:
        interest.programs = True
    if "commands" in wanted:
        ids_c = _csv(command_ids)
        if ids_c:
            interest.commands.update(ids_c)
        else:
            interest.all_commands = True
    return interest


def _frame(event: Event) -> str:
    return f"id: {event.seq}\nevent: {event.type}\ndata: {event.data}\n\n"


@router.get("/events", summary="Live events as Server-Sent Events (telemetry, command_status, alarm, controller, "
            "program)",
            response_class=StreamingResponse, openapi_extra=requires("viewer") | {QUERY_TOKEN_KEY: True},
            responses={200: {"content": {"text/event-stream": {}}, "description": "an endless event stream"}})
async def events(
    request: Request,
    channels: Annotated[str | None, Query(
        description="comma list of telemetry,alarms,commands,controllers,programs (default all)")] = None,
    endpointIds: Annotated[str | None, Query(description="comma list of endpoint ids (default all)")] = None,  # noqa: N803
    commandIds: Annotated[str | None, Query(description="comma list of command ids (default all)")] = None,  # noqa: N803
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    lastEventId: Annotated[int | None, Query(description="resume point when a header cannot be set")] = None,  # noqa: N803
) -> StreamingResponse:
    rt = runtime_of(request)
    settings = rt.config.realtime
    interest = _interest(request, channels, endpointIds, commandIds)
    resume: int | None = lastEventId
    if last_event_id is not None and last_event_id.strip():
        if not last_event_id.strip().isdigit():
            raise Invalid("Last-Event-ID must be a sequence number", code=INVALID_LAST_EVENT_ID, field="Last-Event-ID")
        resume = int(last_event_id)
    # A slot before the stream starts: over a cap the answer is a 429/503 in the error format.
    holder = holder_of(actor_for_request(request))
    release = stream_caps_of(request.app).acquire(holder, settings.max_sse_streams_per_user, settings.max_sse_streams)
    # Subscribe before reading the ring buffer, with no await between: nothing can fall in the gap.
    subscriber = rt.bus.subscribe(interest.wants, limit=settings.queue_limit, name=f"sse:{holder}",
                                  stall_s=settings.stall_timeout_s)
    backlog = rt.bus.since(resume) if resume is not None else None
    if backlog is not None:
        first = [e for e in backlog if interest.wants(e)]
    else:
        first = []
        if resume is not None:
            first.append(reply(messages.resync(f"events after {resume} are no longer buffered; current values follow",
                                               rt.bus.last_seq)))
        if interest.all_telemetry or interest.endpoints:
            ids = sorted(interest.endpoints) if interest.endpoints else [
                e.id for e in permissions.visible_endpoints(interest.actor, rt.plant.endpoints.values())]
            first.extend(telemetry_snapshot(rt, ids))
        if interest.alarms:
            first.extend(alarm_snapshot(rt, interest))
        if interest.controllers:
            first.extend(controller_snapshot(rt, interest))
        if interest.programs:
            first.extend(program_snapshot(rt, interest))
    head = rt.bus.last_seq
    # Sign-out, a revoked token, or a password/role/node change or disabling (also from the CLI, through
    # auth_changes) ends the stream: closing the subscriber wakes the loop below with the reason.
    actor = actor_for_request(request)
    unregister = rt.auth.on_revoke(actor.credential, lambda _c: subscriber.close(CREDENTIALS_ENDED)) \
        if actor.credential else None

    async def stream() -> AsyncIterator[str]:
        try:
            yield f"retry: 3000\n: bevforge live feed from seq {head}\n\n"
            for event in first:
                yield _frame(event) if event.seq else _frame_at(event, head)
            while True:
                try:
                    async with asyncio.timeout(settings.sse_keepalive_s):
                        batch = await subscriber.get_many()
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield "".join(_frame(e) for e in batch)
        except SubscriberClosed as exc:
            ended = Unauthorized(exc.reason, code=UNAUTHORIZED) if exc.reason == CREDENTIALS_ENDED \
                else TooManyRequests(exc.reason + "; reconnect to resume", code=TOO_SLOW)
            yield _frame_at(reply(messages.error_of(ended)), rt.bus.last_seq)
        finally:
            subscriber.close("stream closed")
            if unregister is not None:
                unregister()

    return LiveStreamResponse(stream(), subscriber=subscriber, release=release, media_type="text/event-stream",
                              headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _frame_at(event: Event, seq: int) -> str:
    """A frame that is not a bus event (resync, error) carries the current position as its id."""
    return f"id: {seq}\nevent: {event.type}\ndata: {event.data}\n\n"
