"""BeerXML 1.0 → `Recipe`, read with the maintained `pybeerxml` library (not a parser of our own).

`pybeerxml` is lenient: every element is optional and a number it cannot read stays a string. The
elements a brew day needs are checked here, each error naming the element as a path from the root
(`RECIPES/RECIPE[1]/MASH/MASH_STEPS/MASH_STEP[2]/STEP_TEMP`, 1-based like XPath). BeerXML is metric by
definition: temperatures °C, times minutes (fermentation ages days), amounts kg, volumes litres.

Only the first <RECIPE> of a file is imported. Decoction mash steps are refused (a RIMS brewhouse
cannot pull a decoction); sparge and mash-tun drains do not exist in BeerXML 1.0.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import ParseError

from pydantic import ValidationError

from bevforge.recipes.model import FermentationStep, HopAddition, MashStep, Recipe, RecipeError, UnsupportedRecipe

ROOT = "RECIPES"
WRAPPED = {"recipes": "RECIPE", "hops": "HOPS/HOP", "fermentables": "FERMENTABLES/FERMENTABLE",
           "yeasts": "YEASTS/YEAST", "miscs": "MISCS/MISC", "waters": "WATERS/WATER", "steps": "MASH_STEPS/MASH_STEP"}
MASHED = ("grain", "adjunct")  # fermentable types mashed in (sugars and extracts go to the kettle)
STAGES = (("Primary", "PRIMARY"), ("Secondary", "SECONDARY"), ("Tertiary", "TERTIARY"))


def element_path(loc: tuple[Any, ...]) -> str:
    """A pydantic location in pybeerxml's models as a BeerXML element path."""
    parts = [ROOT]
    for item in loc:
        if isinstance(item, int):
            parts[-1] += f"[{item + 1}]"
        else:
            name = str(item)
            parts.append(WRAPPED.get(name, name.rstrip("_").upper()))
    return "/".join(parts)


def _number(value: Any, at: str, *, required: bool = True, minimum: float | None = None) -> float | None:
    if value is None or value == "":
        if required:
            raise RecipeError(f"{at.rsplit('/', 1)[-1]} is missing", field=at)
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecipeError(f"{at.rsplit('/', 1)[-1]} must be a number, not {value!r}", field=at)
    if minimum is not None and value < minimum:
        raise RecipeError(f"{at.rsplit('/', 1)[-1]} must be at least {minimum:g}, not {value:g}", field=at)
    return float(value)


def parse(text: str) -> Recipe:
    """The first recipe of a BeerXML 1.0 document; a RecipeError naming the element otherwise."""
    # imported on the first import, not at start-up: pybeerxml and pydantic-xml cost about 0.15 s of CPU, which a
    # restart would otherwise spend before the screens answer (docs/deployment.md)
    from pybeerxml.parser import Parser
    from pydantic_xml.errors import BaseError as XmlError

    try:
        recipes = Parser().parse_from_string(text)
    except ParseError as exc:
        raise RecipeError(f"not well-formed XML: {exc}", field=ROOT) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RecipeError(f"{element_path(tuple(first['loc'])).rsplit('/', 1)[-1]}: {first['msg']}",
                          field=element_path(tuple(first["loc"]))) from None
    except XmlError as exc:
        raise RecipeError(f"not a BeerXML document: {exc}", field=ROOT) from None
    except (ValueError, TypeError) as exc:  # whatever else the library refuses in an untrusted file: a 4xx, not a 500
        raise RecipeError(f"not a readable BeerXML document: {exc}", field=ROOT) from None
    if not recipes:
        raise RecipeError("the file holds no RECIPE", field=f"{ROOT}/RECIPE")
    at = f"{ROOT}/RECIPE[1]"
    r = recipes[0]
    if r.version is None:
        raise RecipeError("VERSION is missing (BeerXML 1.0 requires it)", field=f"{at}/VERSION")
    if r.version != 1:
        raise UnsupportedRecipe(f"BeerXML version {r.version} is not supported (only 1)", field=f"{at}/VERSION")
    if not r.name:
        raise RecipeError("NAME is missing", field=f"{at}/NAME")

    grain = 0.0
    for i, f in enumerate(r.fermentables):
        here = f"{at}/FERMENTABLES/FERMENTABLE[{i + 1}]"
        amount = _number(f.amount, f"{here}/AMOUNT", minimum=0)
        if (f.type or "grain").strip().lower() in MASHED and not f.add_after_boil:
            grain += amount or 0.0

    steps: list[MashStep] = []
    grain_temp = None
    if r.mash is not None:
        grain_temp = _number(r.mash.grain_temp, f"{at}/MASH/GRAIN_TEMP", required=False)
        for i, s in enumerate(r.mash.steps):
            here = f"{at}/MASH/MASH_STEPS/MASH_STEP[{i + 1}]"
            kind = (s.type or "").strip().lower()
            if kind == "decoction":
                raise UnsupportedRecipe("decoction mash steps are not supported", field=f"{here}/TYPE")
            if kind not in ("infusion", "temperature"):
                raise RecipeError(f"TYPE must be Infusion or Temperature, not {s.type!r}", field=f"{here}/TYPE")
            temp = _number(s.step_temp, f"{here}/STEP_TEMP")
            minutes = _number(s.step_time, f"{here}/STEP_TIME", minimum=0)
            infuse = _number(s.infuse_amount, f"{here}/INFUSE_AMOUNT", required=False, minimum=0)
            assert temp is not None and minutes is not None
            steps.append(MashStep(s.name or f"Mash step {i + 1}", kind, temp, minutes, infuse or None))

    boil = _number(r.boil_time, f"{at}/BOIL_TIME", minimum=0)
    assert boil is not None
    hops: list[HopAddition] = []
    for i, h in enumerate(r.hops):
        here = f"{at}/HOPS/HOP[{i + 1}]"
        use = (h.use or "").strip().lower()
        if use not in ("boil", "first wort", "aroma", "dry hop", "mash"):
            raise RecipeError(f"USE must be Boil, Dry Hop, Mash, First Wort or Aroma, not {h.use!r}",
                              field=f"{here}/USE")
        amount = _number(h.amount, f"{here}/AMOUNT", minimum=0)
        assert amount is not None
        if use in ("dry hop", "mash"):
            continue  # not a boil addition (a dry hop is the fermenter's; a mash hop goes in with the grain)
        if use == "first wort":
            at_min = boil
        elif use == "aroma":
            at_min = 0.0
        else:
            time = _number(h.time, f"{here}/TIME", minimum=0)
            assert time is not None
            if time > boil:
                raise RecipeError(f"TIME {time:g} min is longer than the {boil:g} min boil", field=f"{here}/TIME")
            at_min = time
        hops.append(HopAddition(h.name or f"hop {i + 1}", amount * 1000.0, at_min))

    fermentation: list[FermentationStep] = []
    stages = r.fermentation_stages if isinstance(r.fermentation_stages, int) else None
    for n, (name, tag) in enumerate(STAGES):
        if stages is not None and n >= stages:
            break
        age = _number(getattr(r, f"{tag.lower()}_age"), f"{at}/{tag}_AGE", required=False, minimum=0)
        temp = _number(getattr(r, f"{tag.lower()}_temp"), f"{at}/{tag}_TEMP", required=age is not None)
        if age is None or temp is None or age == 0:
            if stages is not None:
                raise RecipeError(f"FERMENTATION_STAGES is {stages} but {tag}_AGE and {tag}_TEMP are not both "
                                  "given", field=f"{at}/{tag}_AGE")
            break
        fermentation.append(FermentationStep(name, temp, None, age))

    style = r.style.name if r.style is not None and r.style.name else None
    batch = _number(r.batch_size, f"{at}/BATCH_SIZE", required=False, minimum=0)
    return Recipe(name=r.name, style=style, batch_l=batch, grain_kg=round(grain, 3), grain_temp_c=grain_temp,
                  mash_steps=steps, boil_minutes=boil, hops=hops, fermentation=fermentation)


__all__ = ["element_path", "parse"]
