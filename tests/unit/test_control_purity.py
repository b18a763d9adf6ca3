"""bevforge/control is pure maths: no I/O, no asyncio, no clock — only the standard library's arithmetic."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CONTROL = Path(__file__).resolve().parents[2] / "bevforge" / "control"
ALLOWED = {"__future__", "math", "dataclasses", "enum", "collections", "collections.abc", "typing"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", sorted(CONTROL.glob("*.py")), ids=lambda p: p.name)
def test_a_control_module_imports_only_arithmetic_and_its_own_package(module: Path) -> None:
    outside = {name for name in _imports(module)
               if name not in ALLOWED and not (name == "bevforge.control" or name.startswith("bevforge.control."))}
    assert not outside, f"{module.name} imports {sorted(outside)}: the control maths must stay pure (time is passed in)"


def test_the_package_has_its_modules() -> None:
    names = {p.stem for p in CONTROL.glob("*.py")}
    assert {"pid", "hysteresis", "time_proportioning", "heat_cool", "autotune", "power_budget"} <= names
