"""bench/control.py's pure parts: the full-power reference time and the derived config."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.control import bench_config, full_power_s
from drivers.sim.model import STEEL_HEAT_CAPACITY, WATER_HEAT_CAPACITY, Brewhouse


def test_full_power_time_is_the_energy_over_the_element_plus_the_probe_lag() -> None:
    mlt = Brewhouse.default().vessels["mlt"]
    energy = (60 * WATER_HEAT_CAPACITY + mlt.wall_kg * STEEL_HEAT_CAPACITY) * (72 - 15)
    lossless = energy / mlt.element_w + mlt.probe.dead_time_s + mlt.probe.time_constant_s
    t = full_power_s(60, 15, 72)
    assert lossless < t < lossless * 1.05  # losses to ambient slow it a little, never speed it up


def test_the_bench_config_moves_the_simulator_off_the_shared_ports(tmp_path: Path) -> None:
    doc = yaml.safe_load(bench_config(tmp_path, 40).read_text(encoding="utf-8"))
    sim = doc["simulator"]
    assert sim["speedup"] == 40 and sim["modbus_port"] != 5020
    assert sim["probe_link"] == str(tmp_path / "sim-probe")
    assert all(d["settings"].get("port") != 5020 for d in doc["devices"])
    assert all(e["poll_interval_s"] <= 0.1 for e in doc["endpoints"] if "device" in e)


def test_the_jitter_config_feeds_the_fan_out_probe_over_the_ingest_api(tmp_path: Path) -> None:
    from bench.fanout import PROBE

    doc = yaml.safe_load(bench_config(tmp_path, 1.0, poll_s=0.5, fanout=True).read_text(encoding="utf-8"))
    probe = next(e for e in doc["endpoints"] if e["id"] == PROBE)
    assert probe["source"] == "external" and "device" not in probe
    assert doc["ingest"]["rate_per_s"] >= 1e6
    plain = yaml.safe_load(bench_config(tmp_path, 1.0).read_text(encoding="utf-8"))
    assert "device" in next(e for e in plain["endpoints"] if e["id"] == PROBE)
