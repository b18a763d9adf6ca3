"""Serial ports without hardware: a pty whose slave end is published under a fixed path.

`PtyPort` is what a USB-RS485 adapter looks like to the app: a path that can be opened with
pyserial, and that can vanish (`close()`, as when the adapter is unplugged) and come back
(`open()`, with a new /dev/pts node behind the same path). `PtyBridge` joins two ports like a
null-modem cable, so a pymodbus serial server and the app's serial client each open a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import Callable
from pathlib import Path


class PtyPort:
    def __init__(self, link: str | Path, on_data: Callable[[bytes], None] | None = None) -> None:
        self.link = Path(link)
        self.on_data = on_data
        self.master: int | None = None
        self._slave: int | None = None

    @property
    def is_open(self) -> bool:
        return self.master is not None

    def open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: bytes pass as on a wire
        os.set_blocking(master, False)
        self.master, self._slave = master, slave  # holding the slave keeps the pty up between opens
        tmp = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link)
        if self.on_data is not None:
            asyncio.get_running_loop().add_reader(master, self._readable)

    def close(self) -> None:
        """The port vanishes: the path disappears and an open client gets an I/O error. The path is
        removed only while it still points at this pty (never another program's link)."""
        if self._slave is not None:
            with contextlib.suppress(OSError):
                if os.readlink(self.link) == os.ttyname(self._slave):
                    self.link.unlink()
        if self.master is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_reader(self.master)
            os.close(self.master)
        if self._slave is not None:
            os.close(self._slave)
        self.master = self._slave = None

    def write(self, data: bytes) -> None:
        if self.master is None:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.master, data)

    def _readable(self) -> None:
        assert self.master is not None
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if data and self.on_data is not None:
            self.on_data(data)


class PtyBridge:
    """Two pty ports joined back to back: what is written on one side is read on the other."""

    def __init__(self, link_a: str | Path, link_b: str | Path) -> None:
        self.a = PtyPort(link_a, lambda data: self.b.write(data))
        self.b = PtyPort(link_b, lambda data: self.a.write(data))

    def open(self) -> None:
        self.a.open()
        self.b.open()

    def close(self) -> None:
        self.a.close()
        self.b.close()
