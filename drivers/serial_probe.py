"""The `serial` driver: line-oriented ASCII probes (`T1?` → `T1=65.20`) on a serial port.

Built on pyserial-asyncio-fast. Each endpoint names the request to send and a regular expression
for the answer; the number is taken from the group named `value` (or the first group), then scaled.
An answer that does not match (noise, a framing error, a half line) becomes a BAD reading with the
reason — the probe answered, so it stays online. Silence counts toward offline; a port that
vanishes (USB adapter unplugged) makes the device offline at once and is reopened with backoff.
Nothing that arrives on the wire can end the polling task.

Each answer is matched to its request, so a line that fell out of step (a probe that stalled and
then answered every request it had held, answers later than `timeout_s`) is back in step on the
next poll: everything received before a request is written is thrown away (the OS input queue
too), and an answer that names another channel (`T2=…` while asking `T1?`) belongs to another
request and is skipped. If only such answers come, the reading is BAD, never another channel's
number or an old value read from a backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import Sequence
from typing import ClassVar, Literal

import serial
import serial_asyncio_fast
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bevforge.config import Device, Endpoint
from bevforge.devices import DeviceError, DeviceLink, SettingsRefused
from bevforge.domain import DataType, Quality, Reading, Value, utcnow
from drivers.polling import Due, PollingDriver, next_due, take_due
from drivers.serial_lines import Line, LineCollector, LineLost

log = logging.getLogger(__name__)
MAX_LINE = 256


class SerialProbeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    port: str = Field(description="serial device, e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    timeout_s: float = Field(default=0.5, gt=0, le=10, description="answer time of one request")
    eol: str = Field(default="\r\n", min_length=1, description="sent after each request")
    poll_interval_s: float | None = Field(default=None, gt=0, description="default: each endpoint's own")
    offline_after: int = Field(default=3, ge=1, le=20, description="unanswered requests in a row → offline")
    reprobe_s: float = Field(default=0.5, gt=0)
    reprobe_max_s: float = Field(default=10.0, gt=0)


class ProbeAddress(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    request: str = Field(min_length=1, description="sent to ask for this value, e.g. T1?")
    pattern: str = Field(description=r"regex for the answer, e.g. ^T1=(?P<value>-?\d+(?:\.\d+)?)$")
    scale: float = 1.0
    offset: float = 0.0

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        if compiled.groups == 0:
            raise ValueError("needs a group that captures the number, e.g. (?P<value>...)")
        return pattern


def _checked(model: type[BaseModel], data: dict[str, object], owner: Device | Endpoint, where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        raise SettingsRefused(owner, f"{where}.{field}" if field else where, message) from None


class PortLost(Exception):
    """The serial port failed or vanished."""


class SerialProbeDriver(PollingDriver[SerialProbeSettings]):
    protocol: ClassVar[str] = "serial"
    log: ClassVar[logging.Logger] = log

    def __init__(self, device: Device, endpoints: Sequence[Endpoint], link: DeviceLink) -> None:
        settings: SerialProbeSettings = _checked(  # type: ignore[assignment]
            SerialProbeSettings, device.settings, device, "settings")
        super().__init__(device, endpoints, link, settings)
        self.addresses: dict[int, ProbeAddress] = {}
        for e in self.endpoints:
            if e.writable:
                raise SettingsRefused(e, "writable", "a serial probe is read-only")
            if e.data_type is DataType.BOOL:
                raise SettingsRefused(e, "data_type", "a serial probe reads numbers")
            self.addresses[e.id] = _checked(ProbeAddress, e.address, e, "address")  # type: ignore[assignment]
        self.patterns = {eid: re.compile(a.pattern) for eid, a in self.addresses.items()}
        self.answers = 0
        self.reopens = 0
        self._transport: asyncio.Transport | None = None
        self._lines: LineCollector | None = None
        self._lock = asyncio.Lock()
        self.timetable: list[Due[Endpoint]] = [Due(e, self._interval(e)) for e in self.endpoints]

    async def write(self, endpoint: Endpoint, value: Value) -> None:
        raise DeviceError("a serial probe has no outputs", code="not_writable")

    async def refresh(self, endpoint: Endpoint) -> None:
        if self._transport is not None:
            await self._poll(endpoint)

    # -- the port --------------------------------------------------------------------------

    async def _open(self) -> None:
        s = self.settings
        try:
            self._transport, self._lines = await serial_asyncio_fast.create_serial_connection(
                asyncio.get_running_loop(), lambda: LineCollector(MAX_LINE),
                url=s.port, baudrate=s.baudrate, parity=s.parity, stopbits=s.stopbits, bytesize=s.bytesize)
        except (OSError, serial.SerialException, ValueError) as exc:
            raise PortLost(f"cannot open {s.port}: {exc}") from None

    def _release(self) -> None:
        """Close the port (stop, port lost, or a surprise: the next cycle opens it afresh)."""
        if self._transport is not None:
            with contextlib.suppress(Exception):
                self._transport.close()
        self._transport = self._lines = None

    # -- polling ---------------------------------------------------------------------------

    async def _cycle(self) -> float | None:
        loop = asyncio.get_running_loop()
        try:
            if self._transport is None:
                await self._open()
                self.reopens += 1
                self.backoff.reset()
            for entry in take_due(self.timetable, loop.time()):
                await self._poll(entry.item)
            return max(0.0, next_due(self.timetable) - loop.time())
        except PortLost as exc:
            # An unplugged adapter is offline at once; reopen it at growing intervals.
            self._release()
            self._offline(str(exc))
            await asyncio.sleep(self.backoff.delay)
            self.backoff.failed()
            return None

    def _after_surprise(self) -> float:
        self._release()
        return self.backoff.delay

    async def _poll(self, endpoint: Endpoint) -> None:
        async with self._lock:
            if self._transport is None or self._lines is None:
                return
            address = self.addresses[endpoint.id]
            loop = asyncio.get_running_loop()
            try:
                if self._transport.is_closing() or self._lines.lost is not None:
                    raise LineLost(self._lines.lost or "closing")
                self._drop_stale_input()
                written = loop.time()
                self._transport.write((address.request + self.settings.eol).encode("ascii"))
                answer, others = await self._answer_to(endpoint, written, written + self.settings.timeout_s)
            except (LineLost, ConnectionError, OSError, serial.SerialException) as exc:
                self.polls.errors += 1
                raise PortLost(f"port {self.settings.port} lost: {exc or type(exc).__name__}") from None
        self.polls.timings.observe(loop.time() - written)
        if answer is None and not others:
            self.polls.errors += 1
            self._silent(f"timeout: no answer to {address.request!r} within {self.settings.timeout_s:g} s")
            return
        self._answered()
        if answer is None:
            self._bad(endpoint, f"unexpected answer: {others[-1][:40]!r} (none to {address.request!r})")
        elif answer.overlong:
            self._bad(endpoint, "garbled answer: line too long")
        else:
            self._parse(endpoint, answer.raw)

    def _drop_stale_input(self) -> None:
        """Forget whatever came before this request: late answers, a backlog, noise (also the OS queue)."""
        assert self._transport is not None and self._lines is not None
        port = self._transport.get_extra_info("serial")
        if port is not None:
            try:
                port.reset_input_buffer()
            except Exception as exc:  # termios.error is no OSError; the port is gone either way
                raise LineLost(f"cannot flush input: {exc}") from None
        self._lines.discard()

    async def _answer_to(self, endpoint: Endpoint, written: float, deadline: float) -> tuple[Line | None, list[str]]:
        """The first line after `written` that is this request's answer (or noise); skip other channels' answers.

        Returns (the answer, or None on timeout; the other channels' answers skipped on the way).
        An answer matching another endpoint's pattern is a late one to that endpoint's request.
        """
        assert self._lines is not None
        others: list[str] = []
        while True:
            line = await self._lines.next_line(deadline)
            if line is None:
                return None, others
            if line.started < written:
                continue  # began before the request went out: not its answer
            if line.overlong:
                return line, others
            text = line.raw.decode("ascii", "replace").strip()
            if not text:
                continue
            if self.patterns[endpoint.id].search(text) is None and any(
                    p.search(text) for eid, p in self.patterns.items() if eid != endpoint.id):
                others.append(text)
                continue
            return line, others

    def _parse(self, endpoint: Endpoint, raw: bytes) -> None:
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            self._bad(endpoint, f"garbled answer (framing error?): {raw[:40]!r}")
            return
        match = self.patterns[endpoint.id].search(text)
        if match is None:
            self._bad(endpoint, f"unexpected answer: {text[:40]!r}")
            return
        group = match.group("value") if "value" in match.groupdict() else match.group(1)
        try:
            number = float(group)
        except (TypeError, ValueError):
            self._bad(endpoint, f"not a number: {group!r}")
            return
        if not math.isfinite(number):
            self._bad(endpoint, f"not a number: {group!r}")
            return
        address = self.addresses[endpoint.id]
        value: Value = number * address.scale + address.offset
        if endpoint.data_type is DataType.INT:
            value = round(value)
        self.link.readings([Reading(endpoint.id, value, Quality.GOOD, source_time=utcnow())])

    def _bad(self, endpoint: Endpoint, error: str) -> None:
        self.last_error = error
        self.link.readings([Reading(endpoint.id, None, Quality.BAD, source_time=utcnow(), error=error)])

    # -- comms state -----------------------------------------------------------------------

    def _answered(self) -> None:
        self.answers += 1
        super()._answered()

    def _silent(self, error: str) -> None:
        """No answer in time: offline after `offline_after` of these in a row (the port stays open)."""
        self.failures += 1
        self.last_error = error
        if self.failures >= self.settings.offline_after:
            self._offline(error)
