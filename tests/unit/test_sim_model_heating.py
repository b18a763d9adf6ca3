"""The simulated vessels' heat: elements (controller-fired and SSR-fired), steel, losses, boiling."""

from __future__ import annotations

import pytest

from drivers.sim.model import (
    LATENT_HEAT_J_PER_KG,
    STEEL_HEAT_CAPACITY,
    WATER_HEAT_CAPACITY,
    Brewhouse,
    Probe,
    Vessel,
)


def _capacity(litres: float, wall_kg: float) -> float:
    return litres * WATER_HEAT_CAPACITY + wall_kg * STEEL_HEAT_CAPACITY


def test_hlt_heats_about_1_3_degrees_a_minute_through_its_controller() -> None:
    model = Brewhouse.default()
    hlt = model.vessels["hlt"]
    model.write("hlt.heater", True)
    assert model.read("hlt.heater_firing") is True and model.read("hlt.element_firing") is True
    before = hlt.liquid_c
    model.step(60)
    rise = hlt.liquid_c - before
    assert rise == pytest.approx(1.28, abs=0.03)  # 5.5 kW into 60 L and a 12 kg wall, from a 20 °C room
    assert 1.2 < rise < 1.35


def test_mash_tun_rims_element_is_full_power_on_its_ssr_coil() -> None:
    model = Brewhouse.default()
    mlt = model.vessels["mlt"]
    model.add_liquid("mlt", 40, 20.0)  # at ambient: no losses to muddy the sum
    model.write("mlt.element", True)
    assert model.read("mlt.element") is True and model.read("mlt.element_firing") is True
    assert model.read("mlt.heater_firing") is False  # no controller of its own
    model.step(60)
    assert mlt.liquid_c - 20.0 == pytest.approx(11000 * 60 / _capacity(40, mlt.wall_kg), rel=0.02)  # 11 kW RIMS
    model.write("mlt.element", False)
    held = mlt.liquid_c
    model.step(60)
    assert held - 0.05 < mlt.liquid_c < held  # off means off: only the small loss to the room


def test_kettle_element_fires_from_its_ssr_without_the_controller() -> None:
    model = Brewhouse.default()
    bk = model.vessels["bk"]
    model.add_liquid("bk", 50, 20.0)
    assert bk.heater_enabled is False
    model.write("bk.element", True)
    model.step(60)
    assert bk.liquid_c - 20.0 == pytest.approx(5500 * 60 / _capacity(50, bk.wall_kg), rel=0.02)


def test_hlt_has_no_ssr_coil_to_write() -> None:
    model = Brewhouse.default()
    with pytest.raises(KeyError):
        model.write("hlt.element", True)
    with pytest.raises(KeyError):
        model.read("hlt.element")
    assert "hlt.element" not in model.points() and "mlt.element" in model.points()


def test_an_element_under_too_little_liquid_heats_nothing() -> None:
    model = Brewhouse.default()
    mlt = model.vessels["mlt"]
    model.add_liquid("mlt", 1.0, 20.0)
    model.write("mlt.element", True)
    model.step(120)
    assert mlt.liquid_c == pytest.approx(20.0, abs=1e-6)


def test_the_steel_wall_takes_its_share_of_the_heat() -> None:
    def rise(wall_kg: float) -> float:
        vessel = Vessel("v", volume_l=40, liquid_c=20.0, element_w=5000, has_ssr=True, element_on=True,
                        wall_kg=wall_kg, loss_w_per_k=0.0)
        vessel.step(1.0, ambient_c=20.0)
        return vessel.liquid_c - 20.0

    bare, heavy = rise(0.0), rise(40.0)
    assert bare == pytest.approx(5000 / (40 * WATER_HEAT_CAPACITY))
    assert bare / heavy == pytest.approx(_capacity(40, 40) / _capacity(40, 0))


def test_a_hot_vessel_loses_heat_to_the_room_in_proportion_to_the_difference() -> None:
    vessel = Vessel("v", volume_l=60, liquid_c=80.0, wall_kg=12, loss_w_per_k=4.0)
    vessel.step(1.0, ambient_c=20.0)
    assert 80.0 - vessel.liquid_c == pytest.approx(4.0 * 60 / _capacity(60, 12))
    for _ in range(20_000):  # 2·10⁶ s: some thirty time constants of a 60 L kettle
        vessel.step(100.0, ambient_c=20.0)
    assert 20.0 <= vessel.liquid_c < 20.5  # it settles at the room, never below it


def test_a_kettle_at_full_power_boils_at_100_and_boils_water_off() -> None:
    model = Brewhouse.default()
    bk = model.vessels["bk"]
    model.add_liquid("bk", 50, 99.0)
    model.write("bk.element", True)
    model.step(3600)
    assert bk.liquid_c == 100.0
    expected_l = (5500 - bk.loss_w_per_k * 80) * 3600 / LATENT_HEAT_J_PER_KG  # ≈ 7.4 L an hour
    assert bk.boiled_off_l == pytest.approx(expected_l, rel=0.05)
    assert bk.volume_l == pytest.approx(50 - bk.boiled_off_l)


def test_an_empty_vessel_wall_may_be_above_boiling() -> None:
    model = Brewhouse.default()
    model.vessels["bk"].temperature_c = 104.0  # no liquid in it: nothing boils, it only cools slowly
    model.step(10)
    assert 103.5 < model.read("bk.temperature") <= 104.0


def test_controller_fires_on_its_own_lagged_probe_and_the_liquid_overshoots() -> None:
    """A DT controller in on/off mode stops only when its probe reaches SV: the liquid is hotter by then."""
    model = Brewhouse.default()
    hlt = model.vessels["hlt"]
    model.write("hlt.setpoint", 40.0)
    model.write("hlt.heater", True)
    hottest = 0.0
    for _ in range(3600):
        model.step(1.0)
        hottest = max(hottest, hlt.liquid_c)
    assert hottest > 40.3  # 1.3 °C/min × ≈ 30 s of lag
    lagless = Brewhouse.default()
    lagless.vessels["hlt"].probe = Probe()
    lagless.vessels["hlt"].probe.settle(15.0)
    lagless.write("hlt.setpoint", 40.0)
    lagless.write("hlt.heater", True)
    hottest_lagless = 0.0
    for _ in range(3600):
        lagless.step(1.0)
        hottest_lagless = max(hottest_lagless, lagless.vessels["hlt"].liquid_c)
    assert hottest_lagless < 40.1


def test_pumps_move_liquid_and_mix_it_with_the_destination_and_its_wall() -> None:
    model = Brewhouse.default()
    mlt = model.vessels["mlt"]
    model.vessels["hlt"].temperature_c = 75.0
    model.valves["v1"] = True
    model.write("pump1.running", True)
    model.step(60)  # 12 L/min
    assert model.vessels["hlt"].volume_l == pytest.approx(48.0)
    assert mlt.volume_l == pytest.approx(12.0)
    # the tun's 15 kg of steel at 20 °C takes some of the heat
    expected = (75.0 * 12 * WATER_HEAT_CAPACITY + 20.0 * mlt.wall_kg * STEEL_HEAT_CAPACITY) / _capacity(12, mlt.wall_kg)
    assert mlt.liquid_c == pytest.approx(expected, abs=0.3)
    assert mlt.liquid_c < 75.0
