"""What a restart imports before it serves (bench/programs.py times it): neither the screens' NiceGUI nor
aiohttp, which pymodbus's server package would load for an HTTP simulator the brewhouse simulator never runs
(drivers/sim/lean_imports.py); aiohttp stays importable for the screens. In a fresh interpreter: the test
process has NiceGUI loaded already."""

from __future__ import annotations

import subprocess
import sys

from tests.support.server import ROOT

PROBE = """
import sys
import main
import drivers.sim.protocol  # the simulator, as drivers.check and driver_factories load it at start-up
loaded = sorted(name for name in ("aiohttp", "nicegui", "ui") if name in sys.modules)
assert not loaded, loaded
import aiohttp.web
import pymodbus.server
print("ok")
"""


def test_start_up_loads_neither_nicegui_nor_aiohttp_and_leaves_them_importable() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
