"""What went wrong with a Modbus transaction, in the terms the driver acts on.

- configuration (exceptions 01-03): the device says our request is wrong. Retrying cannot help;
  the technician must fix config.yaml. The device itself is fine (it answered).
- busy (05 acknowledge / 06 busy): try again shortly, with backoff.
- device failure (04) and gateway errors (0A/0B), timeouts, connection and framing errors,
  an answer from the wrong unit: the device or the path to it is failing; these count toward
  marking the device offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge (busy)",
    6: "device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


class Kind(StrEnum):
    CONFIGURATION = "configuration"
    BUSY = "busy"
    DEVICE_FAILURE = "device_failure"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    WRONG_DEVICE = "wrong_device"
    PROTOCOL = "protocol"


@dataclass
class ModbusFault(Exception):
    """A classified failure of one transaction."""

    kind: Kind
    message: str
    code: int | None = None

    def __str__(self) -> str:
        return self.message

    @property
    def retryable(self) -> bool:
        return self.kind is not Kind.CONFIGURATION

    @property
    def counts_toward_offline(self) -> bool:
        """A device that answers 'illegal address' or 'busy' is alive; one that does not answer is not."""
        return self.kind not in (Kind.CONFIGURATION, Kind.BUSY)

    @property
    def error_code(self) -> str:
        return f"exception_{self.code:02d}" if self.code is not None else self.kind.value


def from_exception_code(code: int, function_code: int) -> ModbusFault:
    name = EXCEPTION_NAMES.get(code, "unknown exception")
    message = f"exception {code:02d} ({name}) to function {function_code:02d}"
    if code in (1, 2, 3):
        return ModbusFault(Kind.CONFIGURATION, message + " — check the address/type in config.yaml", code)
    if code in (5, 6):
        return ModbusFault(Kind.BUSY, message, code)
    return ModbusFault(Kind.DEVICE_FAILURE, message, code)


def from_io_error(exc: Exception, timeout_s: float) -> ModbusFault:
    """Classify a pymodbus/OS exception raised by the client."""
    text = str(exc)
    if isinstance(exc, TimeoutError) or "No response received" in text:
        return ModbusFault(Kind.TIMEOUT, f"timeout: no answer within {timeout_s:g} s")
    if "device id" in text or "unit id" in text:
        return ModbusFault(Kind.WRONG_DEVICE, f"answer from the wrong device: {text}")
    if "Connection" in type(exc).__name__ or "[Connection]" in text or isinstance(exc, OSError):
        return ModbusFault(Kind.CONNECTION, f"connection: {text or type(exc).__name__}")
    return ModbusFault(Kind.PROTOCOL, f"protocol: {text or type(exc).__name__}")
