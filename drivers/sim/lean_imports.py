"""Imports of library packages that would load, at start-up, a part of the library the simulator never uses."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def without_aiohttp() -> Iterator[None]:
    """While pymodbus's server package is imported: aiohttp is not importable.

    `pymodbus.server` imports pymodbus's own HTTP simulator (a web front end this simulator never runs),
    which imports aiohttp if it is installed (it is: NiceGUI's Socket.IO client needs it); aiohttp builds
    its TLS contexts at import, about 0.3 s of CPU on the 2-core reference machine, all of it on a restart's
    way to serving (bench/programs.py). pymodbus imports it under `contextlib.suppress(ImportError)`, so
    without it only that HTTP simulator lacks its web server. aiohttp stays importable for everything else
    (the screens import it once the server answers). Nothing is changed where aiohttp or pymodbus's server
    package is imported already (a test process with NiceGUI loaded); main.py imports this on its main
    thread before it starts any other."""
    if "aiohttp" in sys.modules or "pymodbus.server" in sys.modules:
        yield
        return
    sys.modules["aiohttp"] = None  # type: ignore[assignment]  # the import system's "not importable"
    try:
        yield
    finally:
        del sys.modules["aiohttp"]
