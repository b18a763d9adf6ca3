"""Recipes (issue 15): BeerXML 1.0 and BeerJSON 1.0 imported into a neutral `Recipe`, and the program a
recipe makes for a unit (`generate`). Pure apart from parsing the text it is given; the drafts and
starting them are `service.py`'s.
"""

from __future__ import annotations

from typing import Literal

from bevforge.errors import UNSUPPORTED_RECIPE, Invalid
from bevforge.recipes import beerjson, beerxml
from bevforge.recipes.model import Recipe, RecipeError, UnsupportedRecipe

Format = Literal["beerxml", "beerjson"]
FORMATS: tuple[str, ...] = ("beerxml", "beerjson")


def read(fmt: str, text: str) -> Recipe:
    """The recipe in `text` (BeerXML 1.0 or BeerJSON 1.0); a RecipeError naming the element otherwise."""
    if fmt == "beerxml":
        return beerxml.parse(text)
    if fmt == "beerjson":
        return beerjson.parse(text)
    raise Invalid(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}", code=UNSUPPORTED_RECIPE, field="format")


def guess_format(name: str | None, text: str) -> str:
    """The format of an uploaded file: by its name's ending, else by its first character."""
    lowered = (name or "").lower()
    if lowered.endswith((".xml", ".beerxml")):
        return "beerxml"
    if lowered.endswith(".json"):
        return "beerjson"
    return "beerjson" if text.lstrip().startswith("{") else "beerxml"


__all__ = ["FORMATS", "Format", "Recipe", "RecipeError", "UnsupportedRecipe", "guess_format", "read"]
