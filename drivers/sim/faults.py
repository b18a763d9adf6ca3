"""Fault switches a test or a demo flips to make one simulated device misbehave.

The same switches work for the in-process `simulator` driver and for the simulator behind real
protocols (Modbus TCP/RTU server, serial probe), so a test written against one runs on the other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    offline: bool = False  # stops answering reads and writes (no answer at all: the master times out)
    reject_writes: str | None = None  # writes refused (over Modbus: with `write_exception_code`)
    write_exception_code: int = 4  # the Modbus exception a rejected write gets (04 device failure)
    ignore_writes: bool = False  # writes acked but not applied (readback fails)
    write_delay_s: float = 0.0  # the device is slow to accept writes
    delay_s: float = 0.0  # every answer comes this late
    exception_code: int | None = None  # every request answered with this Modbus exception code
    corrupt_lines: bool = False  # serial probe: answers are garbage
    port_closed: bool = False  # serial: the port has vanished (USB adapter unplugged)
    stalled: bool = False  # serial probe: silent, but keeps the requests and answers them all when cleared

    def clear(self) -> None:
        """Back to a healthy device."""
        for name, value in Faults().__dict__.items():
            setattr(self, name, value)
