"""Point a config document at a simulator on other ports (tests use free ports and temp paths)."""

from __future__ import annotations

from typing import Any


def use_simulator_ports(doc: dict[str, Any], modbus_port: int, probe_link: str,
                        rtu_link: str | None = None) -> dict[str, Any]:
    """Rewrite `doc` in place: the simulator section and every device that talks to it."""
    sim = doc.setdefault("simulator", {})
    host = sim.get("host", "127.0.0.1")
    old_port, old_probe = sim.get("modbus_port", 5020), sim.get("probe_link", "/tmp/bevforge-sim-probe")
    old_rtu = sim.get("rtu_link")
    sim.update({"modbus_port": modbus_port, "probe_link": probe_link})
    if rtu_link is not None:
        sim["rtu_link"] = rtu_link
    for device in doc.get("devices", []):
        settings = device.get("settings", {})
        if device.get("driver") == "modbus" and settings.get("host") == host and settings.get("port") == old_port:
            settings["port"] = modbus_port
        if device.get("driver") == "modbus" and old_rtu and settings.get("serial_port") == old_rtu:
            settings["serial_port"] = rtu_link
        if device.get("driver") == "serial" and settings.get("port") == old_probe:
            settings["port"] = probe_link
    return doc
