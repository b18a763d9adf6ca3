"""The `layout:` section of config.yaml: where the process mimic draws each vessel, valve, pump,
heater and glycol supply, and which pipes join them.

A technician draws the brewhouse once, on a canvas of `width` × `height` units (the screen scales
it to fit). Symbols name the endpoints they show; pipes name the symbols they join and the valves
and pump that make them carry flow, so the mimic can draw a transfer as flowing only when its path
is open and its pump runs. Like every section it is checked when the file is read: an unknown
endpoint, symbol or controller, a duplicate id, a field that means nothing for a symbol's kind, or
a point off the canvas is an error at its file:line (`check_layout`, called by
`config.check_references`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bevforge.domain import DataType

if TYPE_CHECKING:
    from bevforge.config import Endpoint

SymbolKind = Literal["vessel", "valve", "pump", "heater", "glycol"]
SYMBOL_ID = r"^[A-Za-z0-9_\-]+$"

# Which endpoint fields each kind of symbol uses; any other is refused (a typo never silently draws nothing).
ENDPOINT_FIELDS: dict[str, tuple[str, ...]] = {
    "vessel": ("temperature", "setpoint", "volume", "level"),
    "valve": ("endpoint",),
    "pump": ("endpoint",),
    "heater": ("endpoint", "output"),
    "glycol": ("endpoint", "temperature", "output"),
}
REQUIRED: dict[str, tuple[str, ...]] = {"valve": ("endpoint",), "pump": ("endpoint",), "heater": ("endpoint",)}
# The drawn size of each kind (canvas units) when the symbol does not give its own.
DEFAULT_SIZE: dict[str, tuple[float, float]] = {
    "vessel": (140.0, 220.0), "valve": (44.0, 28.0), "pump": (44.0, 44.0), "heater": (84.0, 40.0),
    "glycol": (150.0, 56.0)}
BOOL_FIELDS = ("endpoint", "level")
NUMERIC_FIELDS = ("temperature", "setpoint", "volume", "output")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LayoutSymbol(_Strict):
    """One thing drawn on the mimic, at (x, y) = its centre on the canvas."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=SYMBOL_ID)]
    kind: SymbolKind
    label: str | None = Field(default=None, description="default: the node's or the endpoint's name")
    x: float = Field(ge=0, description="centre, canvas units from the left")
    y: float = Field(ge=0, description="centre, canvas units from the top")
    width: float | None = Field(default=None, gt=0, description="drawn width (default by kind)")
    height: float | None = Field(default=None, gt=0, description="drawn height (default by kind)")
    node: str | None = Field(default=None, description="vessel: its node (label, capacity)")
    endpoint: int | None = Field(default=None, description="valve/pump/heater (glycol: optional): the bool "
                                 "output it shows and commands")
    temperature: int | None = Field(default=None, description="vessel/glycol: the temperature shown")
    setpoint: int | None = Field(default=None, description="vessel: the setpoint shown (and set from its dialog)")
    volume: int | None = Field(default=None, description="vessel: the volume that draws its fill level")
    level: int | None = Field(default=None, description="vessel: a level switch (fill drawn from it without "
                              "a volume)")
    output: int | None = Field(default=None, description="heater/glycol: a numeric output % (a loop's output record)")
    controller: str | None = Field(default=None, description="vessel/heater/glycol: the loop whose faceplate "
                                   "its dialog shows")
    capacity_l: float | None = Field(default=None, gt=0, description="vessel: the volume of a full vessel "
                                     "(default: the node's volume_l, else the volume endpoint's range max)")

    @property
    def size(self) -> tuple[float, float]:
        width, height = DEFAULT_SIZE[self.kind]
        return (self.width or width, self.height or height)

    @property
    def endpoint_ids(self) -> list[int]:
        """Every endpoint this symbol shows, in the order its dialog lists them."""
        ids = [getattr(self, name) for name in ("temperature", "setpoint", "endpoint", "output", "volume", "level")]
        return [eid for eid in ids if eid is not None]


class LayoutPipe(_Strict):
    """A pipe from one symbol to another, through bends; it carries flow while every valve on it is
    open and its pump (if any) runs."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=SYMBOL_ID)]
    source: str = Field(alias="from", description="the symbol it starts at")
    target: str = Field(alias="to", description="the symbol it ends at")
    points: list[tuple[float, float]] = Field(default_factory=list, description="bends between, [x, y] each")
    valves: list[str] = Field(default_factory=list, description="valve symbols that must all be OPEN")
    pump: str | None = Field(default=None, description="the pump symbol that must be RUNNING")


class PlantLayout(_Strict):
    """The process mimic's drawing: a canvas, its symbols and its pipes."""

    width: float = Field(default=1200, gt=0, le=10000, description="canvas width in units")
    height: float = Field(default=560, gt=0, le=10000, description="canvas height in units")
    symbols: list[LayoutSymbol] = Field(min_length=1)
    pipes: list[LayoutPipe] = Field(default_factory=list)

    def symbol(self, symbol_id: str) -> LayoutSymbol:
        return next(s for s in self.symbols if s.id == symbol_id)


def check_layout(layout: PlantLayout, endpoints: dict[int, Endpoint], node_ids: set[Any],
                 controller_ids: set[str]) -> list[tuple[tuple[Any, ...], str]]:
    """Cross-checks of the layout against the rest of the config: (field path, message) pairs."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    kinds: dict[str, str] = {}
    for i, symbol in enumerate(layout.symbols):
        at = ("layout", "symbols", i)
        if symbol.id in kinds:
            problems.append(((*at, "id"), f"duplicate id {symbol.id!r}"))
        kinds[symbol.id] = symbol.kind
        if symbol.x > layout.width or symbol.y > layout.height:
            problems.append(((*at, "x" if symbol.x > layout.width else "y"),
                             f"outside the canvas ({layout.width:g} × {layout.height:g})"))
        if symbol.kind != "vessel":
            for name in ("node", "capacity_l"):
                if getattr(symbol, name) is not None:
                    problems.append(((*at, name), f"only a vessel has {name}, not a {symbol.kind}"))
        if symbol.kind in ("valve", "pump") and symbol.controller is not None:
            problems.append(((*at, "controller"), f"a {symbol.kind} has no controller"))
        for name in (*BOOL_FIELDS, *NUMERIC_FIELDS):
            if getattr(symbol, name) is not None and name not in ENDPOINT_FIELDS[symbol.kind]:
                problems.append(((*at, name), f"a {symbol.kind} symbol does not show {name}"))
        for name in REQUIRED.get(symbol.kind, ()):
            if getattr(symbol, name) is None:
                problems.append(((*at, name), f"a {symbol.kind} symbol needs {name}"))
        if symbol.kind == "vessel" and not any(getattr(symbol, n) is not None for n in ENDPOINT_FIELDS["vessel"]):
            problems.append((at, "a vessel symbol shows at least one of temperature, setpoint, volume, level"))
        for name in (*BOOL_FIELDS, *NUMERIC_FIELDS):
            eid = getattr(symbol, name)
            if eid is None:
                continue
            endpoint = endpoints.get(eid)
            if endpoint is None:
                problems.append(((*at, name), f"unknown endpoint id {eid}"))
            elif name in BOOL_FIELDS and endpoint.data_type is not DataType.BOOL:
                problems.append(((*at, name), f"endpoint {eid} is not a bool (on/off, open/closed) point"))
            elif name in NUMERIC_FIELDS and endpoint.data_type is DataType.BOOL:
                problems.append(((*at, name), f"endpoint {eid} is not numeric"))
        if symbol.node is not None and symbol.node not in node_ids:
            problems.append(((*at, "node"), f"unknown node {symbol.node!r}"))
        if symbol.controller is not None and symbol.controller not in controller_ids:
            problems.append(((*at, "controller"), f"unknown controller {symbol.controller!r}"))
    seen_pipes: set[str] = set()
    for i, pipe in enumerate(layout.pipes):
        at = ("layout", "pipes", i)
        if pipe.id in seen_pipes:
            problems.append(((*at, "id"), f"duplicate id {pipe.id!r}"))
        seen_pipes.add(pipe.id)
        for name, ref in (("from", pipe.source), ("to", pipe.target)):
            if ref not in kinds:
                problems.append(((*at, name), f"unknown symbol {ref!r}"))
        if pipe.source == pipe.target:
            problems.append(((*at, "to"), "a pipe joins two different symbols"))
        for j, ref in enumerate(pipe.valves):
            if ref not in kinds:
                problems.append(((*at, "valves", j), f"unknown symbol {ref!r}"))
            elif kinds[ref] != "valve":
                problems.append(((*at, "valves", j), f"symbol {ref!r} is a {kinds[ref]}, not a valve"))
        if pipe.pump is not None:
            if pipe.pump not in kinds:
                problems.append(((*at, "pump"), f"unknown symbol {pipe.pump!r}"))
            elif kinds[pipe.pump] != "pump":
                problems.append(((*at, "pump"), f"symbol {pipe.pump!r} is a {kinds[pipe.pump]}, not a pump"))
        if not pipe.valves and pipe.pump is None:
            problems.append(((*at, "valves"), "name the valves and/or the pump that make this pipe carry flow"))
        for j, (x, y) in enumerate(pipe.points):
            if not (0 <= x <= layout.width and 0 <= y <= layout.height):
                problems.append(((*at, "points", j), f"outside the canvas ({layout.width:g} × {layout.height:g})"))
    return problems


__all__ = ["LayoutPipe", "LayoutSymbol", "PlantLayout", "check_layout"]
