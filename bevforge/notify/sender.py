"""One recipient's Apprise URLs and one try at sending to them, in a worker thread.

Apprise is blocking (SMTP dialogues, HTTP posts): a try runs on the notifications' own thread pool,
never on the event loop, so a dead or slow server costs a thread of this pool and nothing of alarm
handling. Each URL is its own Apprise object: a retry goes only to the URLs that have not taken the
message yet, so an e-mail that went out is not sent again because the Telegram beside it failed.
The loaded plugin is called directly (not `Apprise.notify`, which may hand the work to a thread of
its own), so the lines it logs while failing are this try's and become the delivery's `lastError`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import apprise

from bevforge.notify.secrets import MissingSecret, SecretBook

APPRISE_LOGGER = "apprise"


class _ThisThread(logging.Handler):
    """Keeps the lines the `apprise` logger writes on one thread: why a try failed, in Apprise's words."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())


@dataclass
class Channel:
    """One Apprise URL of a recipient: the loaded service, or why it could not be loaded."""

    shown: str  # Apprise's privacy form (passwords and tokens elided), or the URL with ${NAME} left in
    plugin: Any = None  # the Apprise plugin (NotifyBase) loaded from the URL
    problem: str | None = None


@dataclass
class Target:
    """A recipient's channels, loaded once at start."""

    name: str
    channels: list[Channel] = field(default_factory=list)

    @property
    def shown(self) -> list[str]:
        return [c.shown for c in self.channels]


def load_target(name: str, urls: list[str], book: SecretBook) -> Target:
    """Resolve each URL's `${NAME}`s and load it into Apprise; a URL that cannot be loaded stays, with its problem
    (its deliveries fail with it, visibly, instead of the plant refusing to start over a phone number)."""
    target = Target(name)
    asset = apprise.AppriseAsset(async_mode=False)  # send on the calling thread: its log lines are this try's
    for raw in urls:
        try:
            url = book.resolve(raw)
        except MissingSecret as exc:
            target.channels.append(Channel(shown=raw, problem=str(exc)))
            continue
        service = apprise.Apprise(asset=asset)
        if not service.add(url):
            target.channels.append(Channel(shown=book.mask(raw), problem="Apprise does not understand this URL"))
            continue
        plugin = service[0]
        target.channels.append(Channel(shown=book.mask(plugin.url(privacy=True)), plugin=plugin))
    return target


def send_blocking(channel: Channel, title: str, body: str, book: SecretBook) -> str | None:
    """One try on one channel (in a worker thread): None when the service took it, else why not (masked)."""
    if channel.plugin is None:
        return channel.problem or "not loaded"
    capture = _ThisThread()
    logger = logging.getLogger(APPRISE_LOGGER)
    logger.addHandler(capture)
    try:
        ok = bool(channel.plugin.notify(body=body, title=title))
    except Exception as exc:  # a plugin's own bug must fail this try, not the worker
        return book.mask(f"{type(exc).__name__}: {exc}")
    finally:
        logger.removeHandler(capture)
    if ok:
        return None
    return book.mask("; ".join(capture.lines)) or "the service did not take the message"
