"""The neutral recipe both importers produce, the unit conversions they share, and the recipe errors.

Pure: no I/O. A recipe here holds only what a brew day's programs need (the mash steps, the grain to
mash in, the boil and its hop additions, the fermentation steps) in one set of units: °C, minutes,
days, kg, g and litres. Everything else in the file (water chemistry, yeast, equipment) is not used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bevforge.errors import INVALID_RECIPE, UNSUPPORTED_RECIPE, Invalid


class RecipeError(Invalid):
    """A recipe file that cannot be read; `field` names the element at fault (a BeerXML element path such
    as `RECIPES/RECIPE[1]/MASH/MASH_STEPS/MASH_STEP[2]/STEP_TEMP`, or a JSON pointer such as
    `/beerjson/recipes/0/mash/mash_steps/1/step_temperature`). Nothing of such a file is kept."""

    code = INVALID_RECIPE


class UnsupportedRecipe(RecipeError):
    """A well-formed recipe the importer does not take (another version, a decoction step)."""

    code = UNSUPPORTED_RECIPE


@dataclass(frozen=True)
class MashStep:
    name: str
    kind: str  # "infusion" or "temperature" (a decoction is refused at import)
    temperature_c: float
    minutes: float
    infuse_l: float | None = None  # the water this step adds (the first step's: the strike water)


@dataclass(frozen=True)
class HopAddition:
    name: str
    amount_g: float
    minutes_before_end: float  # of the boil; the boil's length for a first-wort addition, 0 at flame-out


@dataclass(frozen=True)
class FermentationStep:
    name: str
    start_c: float
    end_c: float | None  # None or equal to start_c: a hold; otherwise a ramp over `days`
    days: float


@dataclass(frozen=True)
class Recipe:
    name: str
    style: str | None = None
    batch_l: float | None = None
    grain_kg: float = 0.0  # what is mashed in (grain and adjuncts, not sugars or extracts)
    grain_temp_c: float | None = None
    mash_steps: list[MashStep] = field(default_factory=list)
    boil_minutes: float | None = None
    hops: list[HopAddition] = field(default_factory=list)
    fermentation: list[FermentationStep] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Plain JSON, as stored with a draft and shown for review."""
        return asdict(self)


# -- units (BeerJSON carries {unit, value}; BeerXML is metric by definition) -------------------------

TEMPERATURE = {"C": lambda v: v, "F": lambda v: (v - 32.0) * 5.0 / 9.0}
TIME_MIN = {"sec": 1 / 60, "min": 1.0, "hr": 60.0, "day": 1440.0, "week": 10080.0}
MASS_KG = {"mg": 1e-6, "g": 1e-3, "kg": 1.0, "lb": 0.45359237, "oz": 0.028349523125}
VOLUME_L = {"ml": 1e-3, "l": 1.0, "floz": 0.0295735295625, "qt": 0.946352946, "gal": 3.785411784,
            "bbl": 117.347765304, "igal": 4.54609}


def convert(value: float, unit: str, table: dict[str, Any], where: str) -> float:
    """`value` in `unit` as the table's base unit; an unknown unit is a RecipeError at `where`/unit."""
    factor = table.get(unit)
    if factor is None:
        raise RecipeError(f"unit {unit!r} is not one of {', '.join(table)}", field=f"{where}/unit")
    return float(factor(value)) if callable(factor) else float(value) * factor


__all__ = ["FermentationStep", "HopAddition", "MashStep", "Recipe", "RecipeError", "UnsupportedRecipe", "convert"]
