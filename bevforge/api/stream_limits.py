"""Caps on open live streams (SSE), per holder and in total, and the response that frees its slot.

Why: a stream costs the server on every publish (its filter runs, its queue fills) for as long as
it is open, and opening one costs the client nothing. 1,500 SSE streams that never read were all
accepted and tripled command latency. So a stream needs a slot before it starts: at most
`realtime.max_sse_streams_per_user` per holder (the signed-in user or token; the station address
when anonymous) and `realtime.max_sse_streams` in all. Over a cap the request is refused in the
API's error format before any event is sent. The slot is freed when the stream ends, however it
ends: the client went away, the server shut down, or the bus cut it off for its own backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from fastapi import FastAPI
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from bevforge.bus import Subscriber
from bevforge.domain import Actor
from bevforge.errors import TOO_MANY_STREAMS, TooManyRequests, Unavailable

log = logging.getLogger(__name__)

CUTOFF_GRACE_S = 2.0  # how long a cut-off stream may take to end by itself before it is stopped
RETRY_AFTER_S = 5.0
_INCOMPLETE = "ASGI callable returned without completing response."
_stopped_on_purpose: ContextVar[bool] = ContextVar("stopped_on_purpose", default=False)


class _StoppedStreamFilter(logging.Filter):
    """uvicorn logs a response that ended without its last chunk as an ERROR. A stream stopped here
    on purpose (the client stopped reading) is no error: that one line is dropped, and this module
    logs a warning that says what happened instead. Any other such line still gets through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_stopped_on_purpose.get() and record.msg == _INCOMPLETE)


logging.getLogger("uvicorn.error").addFilter(_StoppedStreamFilter())


def holder_of(actor: Actor) -> str:
    """Whose streams count together: a signed-in user's (or token's) wherever they are, else a station's."""
    if actor.credential is not None or actor.user != "anonymous":
        return f"user:{actor.user}"
    return f"station:{actor.station}"


class StreamCaps:
    """Open streams per holder and in total for one app (the counts are the whole state)."""

    def __init__(self) -> None:
        self.total = 0
        self.by_holder: dict[str, int] = {}

    def acquire(self, holder: str, per_holder: int, total: int) -> Callable[[], None]:
        """Take a slot or raise; return the function that gives it back (safe to call twice)."""
        held = self.by_holder.get(holder, 0)
        if held >= per_holder:
            raise TooManyRequests(f"{per_holder} live streams already open for {holder.partition(':')[2]}; "
                                  "close one or try later", code=TOO_MANY_STREAMS, retry_after_s=RETRY_AFTER_S,
                                  limit=per_holder)
        if self.total >= total:
            raise Unavailable(f"server full: {total} live streams open; try later", code=TOO_MANY_STREAMS,
                              retry_after_s=RETRY_AFTER_S, limit=total)
        self.by_holder[holder] = held + 1
        self.total += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.total -= 1
            left = self.by_holder[holder] - 1
            if left:
                self.by_holder[holder] = left
            else:
                del self.by_holder[holder]

        return release


def stream_caps_of(app: FastAPI) -> StreamCaps:
    caps = getattr(app.state, "stream_caps", None)
    if caps is None:
        caps = app.state.stream_caps = StreamCaps()
    return caps


class LiveStreamResponse(StreamingResponse):
    """A streaming response tied to its bus subscriber and its slot.

    When the bus cuts the subscriber off (too slow), a stream that is waiting for events ends by
    itself with its last frame; one stuck writing to a client that does not read is stopped after
    CUTOFF_GRACE_S, which closes the connection. Either way the slot is released.
    """

    def __init__(self, content: Any, *, subscriber: Subscriber, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.subscriber = subscriber
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = asyncio.ensure_future(super().__call__(scope, receive, send))
        cutoff = asyncio.ensure_future(self.subscriber.wait_closed())
        try:
            await asyncio.wait((body, cutoff), return_when=asyncio.FIRST_COMPLETED)
            if not body.done():
                await asyncio.wait((body,), timeout=CUTOFF_GRACE_S)
            if body.done():
                body.result()
            else:
                log.warning("live stream %s cut off: %s", self.subscriber.name, self.subscriber.closed_reason)
                _stopped_on_purpose.set(True)  # uvicorn closes the connection without its last chunk
        finally:
            self.release()
            for task in (cutoff, body):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self.subscriber.close("stream closed")
