"""A `Recipe` → a program for one configured unit (the same steps as config.yaml's templates).

Brewhouse (`kind: brewhouse`):
  1. heat the strike water to the strike temperature (below);
  2. prompt "Add X kg grain and stir" (mash in; overdue after 15 min);
  3. per mash step: hold at its temperature for its time (the first step is reached by mashing in;
     each later one is heated to first, after a prompt for its water if it is an infusion with a volume);
  4. the run-off transfer; 5. the boil with one timed prompt per hop addition ("Add 20 g Cascade",
     at its minutes before the end); 6. chill.
Fermenter (`kind: fermenter`): per fermentation step a hold (start = end) or a ramp (start → end over
its time); between two steps at different temperatures with no ramp of their own (BeerXML stages) a
one-day ramp (`STAGE_RAMP_DAYS`).

Which controllers and endpoints the steps use comes from the unit's configuration: the unit's own
templates in config.yaml (`programs.templates` with `unit:` this unit) show them — the mash controller
is the one their heat/hold steps drive, the kettle's the one their boil drives (with its `boil_c`),
the run-off is their transfer step (pump, valves), the chill their chill step (endpoint, below_c). A
fermenter's controller is its unit's first controller. A unit without what a step needs is a clear
error naming the unit (field `unit`), never a program that cannot run.

Strike water temperature (the standard infusion formula, metric form):

    Tw = (0.41 / r) · (T2 − T1) + T2

T2 the first mash step's temperature, T1 the grain temperature (the recipe's, else 20 °C), r the
water-to-grain ratio in L/kg: the first step's infusion volume over the grain mass (else
`DEFAULT_RATIO_L_PER_KG`). 0.41 is the imperial formula's 0.2 (r in qt/lb) converted to L/kg
(0.2 × 2.086); e.g. 1.5 qt/lb (3.13 L/kg), grain at 21.1 °C, 67.8 °C target → 73.9 °C (165 °F).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bevforge.config import ProgramStep, ProgramTemplate, check_program_template
from bevforge.errors import UNKNOWN_UNIT, Invalid, NotFound
from bevforge.recipes.model import Recipe

if TYPE_CHECKING:
    from bevforge.config import PlantConfig, ProgramUnit

STRIKE_CONSTANT = 0.41  # (specific heat of grain / of water) in L/kg terms
DEFAULT_RATIO_L_PER_KG = 3.0
DEFAULT_GRAIN_TEMP_C = 20.0
STAGE_RAMP_DAYS = 1.0
MASH_IN_OVERDUE_MIN = 15.0
HOLD_GRACE_S = 120.0
FERMENT_BAND_C = 1.0


def strike_temperature(target_c: float, grain_c: float, ratio_l_per_kg: float) -> float:
    """The strike water temperature that lands a mash of water-to-grain `ratio_l_per_kg` at `target_c`."""
    if ratio_l_per_kg <= 0:
        raise ValueError("the water-to-grain ratio must be positive")
    return STRIKE_CONSTANT / ratio_l_per_kg * (target_c - grain_c) + target_c


@dataclass(frozen=True)
class Equipment:
    """What a recipe's brewhouse program drives on this unit (taken from the unit's templates)."""

    mash: str | None = None
    kettle: str | None = None
    boil_c: float | None = None
    runoff: ProgramStep | None = None
    chill: ProgramStep | None = None


def equipment(config: PlantConfig, unit: ProgramUnit) -> Equipment:
    found: dict[str, Any] = {}
    for template in config.programs.templates:
        if template.unit != unit.id:
            continue
        for step in template.steps:
            if step.type in ("heat", "hold") and step.controller:
                found.setdefault("mash", step.controller)
            elif step.type == "boil" and step.controller:
                found.setdefault("kettle", step.controller)
                found.setdefault("boil_c", step.boil_c)
            elif step.type == "transfer":
                found.setdefault("runoff", step)
            elif step.type == "chill":
                found.setdefault("chill", step)
    return Equipment(**found)


def _unit(config: PlantConfig, unit_id: str) -> ProgramUnit:
    for unit in config.programs.units:
        if unit.id == unit_id:
            return unit
    raise NotFound(f"no program unit {unit_id!r}", code=UNKNOWN_UNIT, field="unit")


def _lacks(unit: ProgramUnit, what: str) -> Invalid:
    return Invalid(f"unit {unit.id!r} has no {what} in its templates (config.yaml programs.templates with "
                   f"unit: {unit.id}); a recipe's program needs one", code=UNKNOWN_UNIT, field="unit")


def _c(value: float) -> float:
    return round(value, 1)


def program(recipe: Recipe, config: PlantConfig, unit_id: str, template_id: str = "recipe") -> ProgramTemplate:
    """The recipe's program for the unit: the brew day on a brewhouse, the profile on a fermenter."""
    unit = _unit(config, unit_id)
    steps = _fermenter(recipe, unit) if unit.kind == "fermenter" else _brewhouse(recipe, config, unit)
    return ProgramTemplate(id=template_id, name=recipe.name[:80], unit=unit.id, steps=steps)


def _brewhouse(recipe: Recipe, config: PlantConfig, unit: ProgramUnit) -> list[ProgramStep]:
    eq = equipment(config, unit)
    if eq.mash is None:
        raise _lacks(unit, "heat or hold step (the mash controller)")
    if eq.kettle is None:
        raise _lacks(unit, "boil step (the kettle controller)")
    if eq.runoff is None:
        raise _lacks(unit, "transfer step (the run-off pump and valves)")
    if eq.chill is None:
        raise _lacks(unit, "chill step (the chill temperature)")
    if not recipe.mash_steps:
        raise Invalid("the recipe has no mash steps: a brewhouse program starts with the mash", field="recipe")
    if recipe.grain_kg <= 0:
        raise Invalid("the recipe has no grain to mash", field="recipe")
    if recipe.boil_minutes is None or recipe.boil_minutes <= 0:
        raise Invalid("the recipe has no boil time", field="recipe")
    first = recipe.mash_steps[0]
    ratio = first.infuse_l / recipe.grain_kg if first.infuse_l else DEFAULT_RATIO_L_PER_KG
    grain_c = recipe.grain_temp_c if recipe.grain_temp_c is not None else DEFAULT_GRAIN_TEMP_C
    strike = strike_temperature(first.temperature_c, grain_c, ratio)
    water = f" ({first.infuse_l:.1f} L)" if first.infuse_l else ""
    steps = [
        ProgramStep(type="heat", name=f"Strike water{water}", controller=eq.mash, target_c=_c(strike)),
        ProgramStep(type="prompt", name="Mash in", message=f"Add {recipe.grain_kg:.2f} kg grain and stir",
                    overdue_min=MASH_IN_OVERDUE_MIN),
    ]
    for n, step in enumerate(recipe.mash_steps):
        if n > 0 and step.kind == "infusion" and step.infuse_l:
            steps.append(ProgramStep(type="prompt", name=f"Infusion for {step.name}"[:80],
                                     message=f"Add {step.infuse_l:.1f} L of hot water and stir"))
        if n > 0:
            steps.append(ProgramStep(type="heat", name=f"Heat to {step.name}"[:80], controller=eq.mash,
                                     target_c=_c(step.temperature_c)))
        if step.minutes > 0:
            steps.append(ProgramStep(type="hold", name=step.name[:80], controller=eq.mash,
                                     target_c=_c(step.temperature_c), minutes=step.minutes, grace_s=HOLD_GRACE_S))
    runoff = eq.runoff
    steps.append(runoff.model_copy(update={"name": runoff.name or "Run off to the kettle"}))
    additions = [{"at_min": h.minutes_before_end, "message": f"Add {h.amount_g:g} g {h.name}"[:200]}
                 for h in sorted(recipe.hops, key=lambda h: -h.minutes_before_end)]
    boil: dict[str, Any] = {"type": "boil", "name": "Boil", "controller": eq.kettle, "minutes": recipe.boil_minutes}
    if eq.boil_c is not None:
        boil["boil_c"] = eq.boil_c
    if additions:
        boil["additions"] = additions
    steps.append(ProgramStep.model_validate(boil))
    steps.append(eq.chill.model_copy(update={"name": eq.chill.name or "Chill"}))
    return steps


def _fermenter(recipe: Recipe, unit: ProgramUnit) -> list[ProgramStep]:
    if not recipe.fermentation:
        raise Invalid("the recipe has no fermentation steps: a fermenter's program is its profile", field="recipe")
    controller = unit.controllers[0]
    steps: list[ProgramStep] = []
    previous: float | None = None
    for f in recipe.fermentation:
        ramp = f.end_c is not None and abs(f.end_c - f.start_c) >= 0.05
        if previous is not None and abs(previous - f.start_c) >= 0.05:
            steps.append(ProgramStep(type="ramp", name=f"Ramp to {f.start_c:g} °C", controller=controller,
                                     to_c=_c(f.start_c), days=STAGE_RAMP_DAYS))
        if ramp:
            assert f.end_c is not None
            steps.append(ProgramStep(type="ramp", name=f.name[:80], controller=controller, from_c=_c(f.start_c),
                                     to_c=_c(f.end_c), days=f.days))
            previous = f.end_c
        else:
            steps.append(ProgramStep(type="hold", name=f.name[:80], controller=controller, target_c=_c(f.start_c),
                                     days=f.days, band_c=FERMENT_BAND_C))
            previous = f.start_c
    return steps




def to_json(template: ProgramTemplate) -> dict[str, Any]:
    """A program as stored with its draft and sent for review: only the keys each step was given."""
    return {"name": template.name, "unit": template.unit,
            "steps": [step.model_dump(mode="json", exclude_unset=True) for step in template.steps]}


def from_json(data: Any, config: PlantConfig, unit_id: str, template_id: str = "recipe") -> ProgramTemplate:
    """A reviewed (edited) program, checked by the same rules as a config.yaml template: the step model
    (which keys each type takes, ranges) and the start-up checks (controllers of this unit, setpoint
    ranges, endpoints). The error names the field (`steps.2.target_c`)."""
    if not isinstance(data, dict):
        raise Invalid("the program must be an object with name and steps", field="program")
    body = {"id": template_id, "name": data.get("name"), "unit": unit_id, "steps": data.get("steps")}
    try:
        template = ProgramTemplate.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"] if not str(p).startswith("function-")]
        field = ".".join(loc) or "program"
        raise Invalid(f"{field}: {first['msg']}", field=field) from None
    problems = check_program_template(config, template)
    if problems:
        path, message = problems[0]
        field = ".".join(str(p) for p in path) or "program"
        raise Invalid(f"{field}: {message}", field=field)
    return template


__all__ = ["DEFAULT_RATIO_L_PER_KG", "STRIKE_CONSTANT", "Equipment", "equipment", "from_json", "program",
           "strike_temperature", "to_json"]
