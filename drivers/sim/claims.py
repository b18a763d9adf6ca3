"""What one running simulated brewhouse holds for itself: its Modbus port and its pty links.

A second copy of the app on the same machine must not take them over: its pty link would replace
the first copy's (the first copy's probe driver then reads the second's simulator), and on exit it
would delete it. So each link is claimed with an advisory lock on `<link>.lock` for as long as the
simulator runs — the kernel drops the lock when the process ends, even by a crash, so a stale lock
never keeps a restart out — and the app checks the claims before it starts (`problems`), naming
the config key that moves them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from bevforge.cli import port_problem
from bevforge.config import SimulatorSettings


class InUse(RuntimeError):
    """A port or link another program holds; the message names it and the key that changes it."""


class LinkClaim:
    """An exclusive claim on a pty link path, held while the file descriptor is open."""

    def __init__(self, link: str | Path, key: str) -> None:
        self.link = Path(link)
        self.key = key
        self._fd: int | None = None

    @property
    def lock_path(self) -> Path:
        return self.link.with_name(self.link.name + ".lock")

    def take(self) -> None:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise InUse(f"{self.key} {self.link} is in use by another running simulated brewhouse "
                            f"(another copy of BevForge OS?) — set another {self.key}, or stop that copy") from None
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def problems(settings: SimulatorSettings, config_path: str) -> list[str]:
    """What keeps the simulated brewhouse from starting, one line each (empty: nothing)."""
    found: list[str] = []
    if settings.modbus_port:
        problem = port_problem(settings.host, settings.modbus_port,
                               f"set simulator.modbus_port in {config_path}")
        if problem:
            found.append(f"simulated brewhouse: Modbus TCP {problem}")
    for key, link in (("simulator.probe_link", settings.probe_link), ("simulator.rtu_link", settings.rtu_link)):
        if not link:
            continue
        claim = LinkClaim(link, key)
        try:
            claim.take()
        except InUse as exc:
            found.append(f"{exc} (in {config_path})")
        except OSError as exc:
            found.append(f"{key} {link}: {exc.strerror} — set another {key} in {config_path}")
        finally:
            claim.release()
    return found
