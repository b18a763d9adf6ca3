"""BeerJSON 1.0 → `Recipe`.

No maintained BeerJSON library exists for Python, so the subset a brew day uses is described by the
pydantic models below (everything else in the document is ignored) and checked there; an error
names the value as a JSON pointer (`/beerjson/recipes/0/mash/mash_steps/1/step_temperature`).
Quantities are BeerJSON's `{unit, value}` pairs, converted here: °C/°F, sec/min/hr/day/week,
mg/g/kg/lb/oz, ml/l/floz/qt/gal/bbl/igal.

Only the first recipe is imported. Mash step types `infusion` and `temperature` become heat and hold
steps; `sparge` and `drain mash tun` are left to the run-off; `decoction` and the souring steps are
refused. Hop additions with `timing.use: add_to_boil` are the boil's additions (`timing.time` before
the end); dry hops (`add_to_fermentation`) and mash hops are not boil prompts.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bevforge.recipes.model import (
    MASS_KG,
    TEMPERATURE,
    TIME_MIN,
    VOLUME_L,
    FermentationStep,
    HopAddition,
    MashStep,
    Recipe,
    RecipeError,
    UnsupportedRecipe,
    convert,
)


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Quantity(_Part):
    unit: str = Field(min_length=1)
    value: float


class MashStepIn(_Part):
    name: str | None = None
    type: str
    step_temperature: Quantity
    step_time: Quantity
    amount: Quantity | None = None


class MashIn(_Part):
    grain_temperature: Quantity | None = None
    mash_steps: list[MashStepIn] = Field(min_length=1)


class Timing(_Part):
    use: str | None = None
    time: Quantity | None = None


class FermentableIn(_Part):
    name: str | None = None
    type: str | None = None
    amount: Quantity
    timing: Timing | None = None


class HopIn(_Part):
    name: str | None = None
    amount: Quantity
    timing: Timing


class Ingredients(_Part):
    fermentable_additions: list[FermentableIn] = Field(default_factory=list)
    hop_additions: list[HopIn] = Field(default_factory=list)


class BoilIn(_Part):
    boil_time: Quantity


class FermentationStepIn(_Part):
    name: str | None = None
    start_temperature: Quantity
    end_temperature: Quantity | None = None
    step_time: Quantity


class FermentationIn(_Part):
    fermentation_steps: list[FermentationStepIn] = Field(default_factory=list)


class StyleIn(_Part):
    name: str | None = None


class RecipeIn(_Part):
    name: str = Field(min_length=1)
    style: StyleIn | None = None
    batch_size: Quantity | None = None
    ingredients: Ingredients = Field(default_factory=Ingredients)
    mash: MashIn | None = None
    boil: BoilIn | None = None
    fermentation: FermentationIn | None = None


class BeerJsonIn(_Part):
    version: float = Field(strict=True)
    recipes: list[RecipeIn] = Field(min_length=1)


class Document(_Part):
    beerjson: BeerJsonIn


MASH_KINDS = ("infusion", "temperature")
LEFT_TO_RUN_OFF = ("sparge", "drain mash tun")
MASHED = ("grain", "adjunct")


def pointer(loc: tuple[Any, ...]) -> str:
    return "/" + "/".join(str(part) for part in loc)


def parse(text: str) -> Recipe:
    """The first recipe of a BeerJSON 1.0 document; a RecipeError naming the value otherwise."""
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise RecipeError(f"not JSON: {exc}", field="/") from None
    if isinstance(raw, dict) and isinstance(raw.get("beerjson"), dict):
        version = raw["beerjson"].get("version")
        if isinstance(version, int | float) and not isinstance(version, bool) and version != 1:
            raise UnsupportedRecipe(f"BeerJSON version {version:g} is not supported (only 1.0)",
                                    field="/beerjson/version")
    try:
        doc = Document.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = pointer(tuple(first["loc"]))
        raise RecipeError(f"{at.rsplit('/', 1)[-1] or 'the document'}: {first['msg']}", field=at) from None
    return _recipe(doc.beerjson.recipes[0], "/beerjson/recipes/0")


def _minutes(q: Quantity, at: str) -> float:
    value = convert(q.value, q.unit, TIME_MIN, at)
    if value < 0:
        raise RecipeError("a time cannot be negative", field=f"{at}/value")
    return value


def _recipe(r: RecipeIn, at: str) -> Recipe:
    grain = 0.0
    for i, f in enumerate(r.ingredients.fermentable_additions):
        here = f"{at}/ingredients/fermentable_additions/{i}"
        kind = (f.type or "grain").lower()
        use = f.timing.use if f.timing is not None else None
        if kind in MASHED and use in (None, "add_to_mash"):
            grain += convert(f.amount.value, f.amount.unit, MASS_KG, f"{here}/amount")

    steps: list[MashStep] = []
    grain_temp = None
    if r.mash is not None:
        if r.mash.grain_temperature is not None:
            q = r.mash.grain_temperature
            grain_temp = convert(q.value, q.unit, TEMPERATURE, f"{at}/mash/grain_temperature")
        for i, s in enumerate(r.mash.mash_steps):
            here = f"{at}/mash/mash_steps/{i}"
            kind = s.type.lower()
            if kind in LEFT_TO_RUN_OFF:
                continue
            if kind not in MASH_KINDS:
                raise UnsupportedRecipe(f"mash step type {s.type!r} is not supported (infusion, temperature, "
                                        "sparge, drain mash tun)", field=f"{here}/type")
            temp = convert(s.step_temperature.value, s.step_temperature.unit, TEMPERATURE,
                           f"{here}/step_temperature")
            infuse = convert(s.amount.value, s.amount.unit, VOLUME_L, f"{here}/amount") if s.amount else None
            minutes = _minutes(s.step_time, f"{here}/step_time")
            steps.append(MashStep(s.name or f"Mash step {i + 1}", kind, temp, minutes, infuse or None))

    boil = _minutes(r.boil.boil_time, f"{at}/boil/boil_time") if r.boil is not None else None
    hops: list[HopAddition] = []
    for i, h in enumerate(r.ingredients.hop_additions):
        here = f"{at}/ingredients/hop_additions/{i}"
        if h.timing.use != "add_to_boil":
            continue
        if boil is None:
            raise RecipeError("a boil addition needs the recipe's boil", field=f"{at}/boil")
        if h.timing.time is None:
            raise RecipeError("time is missing", field=f"{here}/timing/time")
        minutes = _minutes(h.timing.time, f"{here}/timing/time")
        if minutes > boil:
            raise RecipeError(f"{minutes:g} min is longer than the {boil:g} min boil", field=f"{here}/timing/time")
        grams = convert(h.amount.value, h.amount.unit, MASS_KG, f"{here}/amount") * 1000.0
        hops.append(HopAddition(h.name or f"hop {i + 1}", round(grams, 1), minutes))

    fermentation: list[FermentationStep] = []
    for i, f in enumerate(r.fermentation.fermentation_steps if r.fermentation is not None else []):
        here = f"{at}/fermentation/fermentation_steps/{i}"
        start = convert(f.start_temperature.value, f.start_temperature.unit, TEMPERATURE,
                        f"{here}/start_temperature")
        end = None if f.end_temperature is None else convert(f.end_temperature.value, f.end_temperature.unit,
                                                             TEMPERATURE, f"{here}/end_temperature")
        days = _minutes(f.step_time, f"{here}/step_time") / 1440.0
        if days <= 0:
            raise RecipeError("a fermentation step needs a time", field=f"{here}/step_time/value")
        fermentation.append(FermentationStep(f.name or f"Fermentation step {i + 1}", round(start, 2),
                                             None if end is None else round(end, 2), days))

    batch = convert(r.batch_size.value, r.batch_size.unit, VOLUME_L, f"{at}/batch_size") if r.batch_size else None
    return Recipe(name=r.name, style=r.style.name if r.style else None, batch_l=batch, grain_kg=round(grain, 3),
                  grain_temp_c=grain_temp, mash_steps=steps, boil_minutes=boil, hops=hops, fermentation=fermentation)


Format = Literal["beerxml", "beerjson"]

__all__ = ["Format", "parse", "pointer"]
