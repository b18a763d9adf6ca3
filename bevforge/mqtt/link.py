"""How BevForge reaches its broker: the aiomqtt client's settings (credentials, TLS, will) and the backoff.

The password comes from the environment or a file named in config.yaml, never from the file itself,
and is never logged or shown: a problem with it is reported by the variable's or the file's name.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import orjson

from bevforge import messages
from bevforge.mqtt import topics

if TYPE_CHECKING:
    from bevforge.config import MqttSettings


class LinkSettingsError(Exception):
    """The client cannot be built (a password variable unset, a certificate unreadable): retried later."""


def password(settings: MqttSettings) -> str | None:
    """BevForge's broker password from `password_env` or `password_file` (a trailing newline dropped)."""
    if settings.password_env is not None:
        value = os.environ.get(settings.password_env)
        if value is None:
            raise LinkSettingsError(f"mqtt.password_env: the variable {settings.password_env} is not set")
        return value
    if settings.password_file is not None:
        try:
            return Path(settings.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise LinkSettingsError(f"mqtt.password_file: cannot read {settings.password_file}: "
                                    f"{exc.strerror or exc}") from None
    return None


def tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context for the broker: its CA (else the system's), an optional client certificate; the host
    name is checked unless `tls.insecure`."""
    tls = settings.tls
    if tls is None:
        return None
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
        if tls.cert_file is not None:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise LinkSettingsError(f"mqtt.tls: {exc}") from None
    if tls.insecure:
        context.check_hostname = False
    return context


def client(settings: MqttSettings, site_name: str) -> aiomqtt.Client:
    """A client for one connection attempt, with `<root>/status` offline as its Last Will (retained)."""
    will = aiomqtt.Will(topics.status(settings.root),
                        orjson.dumps(messages.site_status(False, site_name, "connection lost")),
                        qos=settings.qos, retain=True)
    context = tls_context(settings)
    return aiomqtt.Client(
        settings.host, settings.port, username=settings.username, password=password(settings),
        identifier=settings.identifier, will=will, keepalive=settings.keepalive_s, tls_context=context,
        tls_insecure=settings.tls.insecure if settings.tls is not None else None,
        timeout=max(5.0, float(settings.keepalive_s)),
    )


class Backoff:
    """Waits between connection attempts: `min_s`, doubling up to `max_s`; back to `min_s` once connected."""

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.next_s = min_s

    def wait_s(self) -> float:
        wait = self.next_s
        self.next_s = min(self.max_s, self.next_s * 2)
        return wait

    def reset(self) -> None:
        self.next_s = self.min_s
