"""Fermenters (glycol jacket, heating pad, fermentation heat, cellar), cold additions and safe states."""

from __future__ import annotations

import pytest

from drivers.sim.model import STEEL_HEAT_CAPACITY, WATER_HEAT_CAPACITY, Brewhouse, Fermenter


def _fermenter(**kw: object) -> Fermenter:
    defaults: dict[str, object] = {"liquid_c": 18.0, "volume_l": 50.0, "wall_kg": 20.0, "fermentation_w": 40.0,
                                   "loss_w_per_k": 2.0, "jacket_w_per_k": 25.0, "heating_pad_w": 100.0}
    return Fermenter("fv", **{**defaults, **kw})  # type: ignore[arg-type]


CAPACITY = 50 * WATER_HEAT_CAPACITY + 20 * STEEL_HEAT_CAPACITY


def test_closed_glycol_fermenter_warms_by_fermentation_heat_and_the_cellar() -> None:
    fv = _fermenter()
    fv.step(3600, glycol_c=-2.0, cellar_c=20.0)
    assert fv.liquid_c - 18.0 == pytest.approx((40 + 2 * 2) * 3600 / CAPACITY)


def test_open_glycol_valve_cools_harder_the_colder_the_glycol() -> None:
    cold, mild = _fermenter(glycol_open=True), _fermenter(glycol_open=True)
    assert cold.glycol_w(-2.0) == pytest.approx(-25 * 20) and mild.glycol_w(8.0) == pytest.approx(-25 * 10)
    cold.step(60, glycol_c=-2.0, cellar_c=18.0)
    mild.step(60, glycol_c=8.0, cellar_c=18.0)
    assert cold.liquid_c - 18.0 == pytest.approx((40 - 500) * 60 / CAPACITY)
    assert mild.liquid_c - 18.0 == pytest.approx((40 - 250) * 60 / CAPACITY)
    assert _fermenter(glycol_open=False).glycol_w(-2.0) == 0.0


def test_glycol_at_the_beer_temperature_cools_nothing() -> None:
    fv = _fermenter(glycol_open=True, fermentation_w=0.0)
    fv.step(600, glycol_c=18.0, cellar_c=18.0)
    assert fv.liquid_c == pytest.approx(18.0)


def test_heating_pad_adds_its_power_while_on() -> None:
    on, off = _fermenter(heating_pad_on=True), _fermenter(heating_pad_on=False)
    on.step(600, cellar_c=18.0)
    off.step(600, cellar_c=18.0)
    assert on.liquid_c - off.liquid_c == pytest.approx(100 * 600 / CAPACITY)


def test_fermenter_points_drive_the_model() -> None:
    model = Brewhouse.default()
    fv1 = model.fermenters["fv1"]
    model.write("fv1.heating_pad", True)
    model.write("fv1.glycol", True)
    assert model.read("fv1.heating_pad") is True and fv1.heating_pad_on and fv1.glycol_open
    model.glycol_c = 4.0
    assert model.read("glycol.temperature") == 4.0
    before = fv1.liquid_c
    model.step(600)
    cellar = model.ambient_c
    expected = (40 + 100 + 2 * (cellar - before) + 25 * (4.0 - before)) * 600 / fv1.heat_capacity_j_per_k
    assert fv1.liquid_c - before == pytest.approx(expected, rel=0.05)


def test_fermenter_probe_trails_the_beer() -> None:
    model = Brewhouse.default()
    model.write("fv1.glycol", True)
    model.step(1800)
    assert model.read("fv1.temperature") > model.read("fv1.liquid_temperature") + 0.1  # cooling: the probe lags above


def test_cold_addition_mixes_with_the_liquid_and_the_wall_and_the_probe_sees_it_late() -> None:
    model = Brewhouse.default()
    mlt = model.vessels["mlt"]
    model.add_liquid("mlt", 40, 66.0)
    mlt.temperature_c = 66.0  # the tun has been at mash temperature a while (wall included)
    before_capacity = mlt.heat_capacity_j_per_k
    assert model.add_liquid("mlt", 10, 15.0) == 10
    expected = (66.0 * before_capacity + 15.0 * 10 * WATER_HEAT_CAPACITY) / (before_capacity + 10 * WATER_HEAT_CAPACITY)
    assert mlt.liquid_c == pytest.approx(expected)
    assert mlt.volume_l == pytest.approx(50.0)
    assert model.read("mlt.temperature") == 66.0  # nothing reported yet: the probe's dead time
    model.step(120)
    assert model.read("mlt.temperature") == pytest.approx(expected, abs=0.5)


def test_cold_addition_stops_at_the_brim_and_refuses_nonsense() -> None:
    model = Brewhouse.default()
    model.vessels["mlt"].capacity_l = 30.0
    assert model.add_liquid("mlt", 40, 20.0) == 30.0
    assert model.add_liquid("mlt", 5, 20.0) == 0.0
    assert model.add_liquid("fv1", 5, 10.0) == 5.0  # fermenters take additions too (60 L vessel, 50 L in it)
    with pytest.raises(ValueError):
        model.add_liquid("bk", -1, 20.0)
    with pytest.raises(ValueError):
        model.add_liquid("bk", 1, float("nan"))
    with pytest.raises(KeyError):
        model.add_liquid("hlt2", 1, 20.0)


def test_watchdog_safe_state_reaches_only_the_named_outputs() -> None:
    model = Brewhouse.default()
    for point in ("hlt.heater", "bk.heater", "mlt.element", "bk.element", "fv1.glycol", "fv1.heating_pad",
                  "fv2.heating_pad", "v1.open", "pump1.running"):
        model.write(point, True)
    model.outputs_to_safe_state({"mlt.element", "bk.element", "v1.open"})  # the brewhouse I/O module's watchdog
    assert not model.vessels["mlt"].element_on and not model.vessels["bk"].element_on and not model.valves["v1"]
    assert model.vessels["bk"].heater_enabled  # the BK controller is another device: its RUN stays
    model.outputs_to_safe_state({"fv1"})  # a whole thing: its glycol valve and its pad
    assert not model.fermenters["fv1"].glycol_open and not model.fermenters["fv1"].heating_pad_on
    assert model.fermenters["fv2"].heating_pad_on
    model.outputs_to_safe_state()
    assert not any(model.read(p) for p in model.output_points())
    assert {"mlt.element", "bk.element", "fv1.heating_pad", "fv2.heating_pad"} <= set(model.output_points())
    assert "hlt.element" not in model.output_points()


def test_every_point_reads() -> None:
    model = Brewhouse.default()
    for point in model.points():
        assert isinstance(model.read(point), bool | float | int), point
