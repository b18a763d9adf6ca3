"""The FOPDT vessel model the control tests and the bench rely on: rates, dead time, exactness, additions."""

from __future__ import annotations

import pytest

from bevforge.control.process_model import SimulatedVessel, VesselModel


def test_a_5_5_kw_element_heats_60_litres_about_1_3_degrees_a_minute() -> None:
    model = VesselModel.water(60.0, loss_w_per_c=0.001)
    assert model.rate_c_per_s(20.0, 5500.0) * 60.0 == pytest.approx(1.31, abs=0.01)


def test_the_probe_reads_the_liquid_as_it_was_one_dead_time_ago() -> None:
    vessel = SimulatedVessel(VesselModel.water(60.0, dead_time_s=20.0), initial_c=20.0)
    for _ in range(19):
        vessel.step(1.0, 5500.0)
    assert vessel.temperature_c > 20.3
    assert vessel.probe_c == 20.0  # the probe has not seen anything yet
    for _ in range(21):
        vessel.step(1.0, 5500.0)
    liquid_20_s_ago = SimulatedVessel(VesselModel.water(60.0, dead_time_s=20.0), initial_c=20.0)
    liquid_20_s_ago.step(20.0, 5500.0)
    assert vessel.probe_c == pytest.approx(liquid_20_s_ago.temperature_c)


def test_the_step_length_does_not_change_the_trajectory() -> None:
    coarse = SimulatedVessel(VesselModel.water(60.0), initial_c=15.0)
    fine = SimulatedVessel(VesselModel.water(60.0), initial_c=15.0)
    coarse.step(600.0, 5500.0)
    for _ in range(2400):
        fine.step(0.25, 5500.0)
    assert coarse.temperature_c == pytest.approx(fine.temperature_c, rel=1e-9)


def test_losses_pull_toward_ambient() -> None:
    vessel = SimulatedVessel(VesselModel.water(60.0, loss_w_per_c=10.0, ambient_c=20.0), initial_c=72.0)
    vessel.step(3600.0, 0.0)
    assert 20.0 < vessel.temperature_c < 72.0 - 2.0


def test_a_cold_addition_mixes_and_adds_heat_capacity() -> None:
    vessel = SimulatedVessel(VesselModel.water(30.0), initial_c=66.0)
    vessel.add_liquid(10.0, 10.0)
    assert vessel.temperature_c == pytest.approx((30 * 66.0 + 10 * 10.0) / 40)
    assert vessel.model.heat_capacity_j_per_c == pytest.approx(40 * 4186.0)
