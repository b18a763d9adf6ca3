"""SQL has one home: the store (issue 12: "no SQL outside the store and query modules").

Every SQL statement, session and row-state trick (make_transient) lives under bevforge/store/, in
modules named for whose rows they hold (auth_rows, audit_rows, alarm_rows, command_rows,
retention_rows, journal_queries, queries). A service outside the store calls those functions and
keeps its rules; it never imports sqlmodel or sqlalchemy (a type-only import under TYPE_CHECKING is
allowed) and never opens a session (`.session(`). This test reads the source (ast), so a new module
that slips SQL back into a service fails here before review.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("bevforge", "ui", "drivers")
STORE = ROOT / "bevforge" / "store"
SQL_PACKAGES = ("sqlalchemy", "sqlmodel")
# (file, imported module) pairs that are not SQL, with the reason
ALLOWED = {
    ("bevforge/runtime.py", "sqlalchemy"),  # /health reports sqlalchemy.__version__; no statement is built
}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of `tree` except those only seen by a type checker (`if TYPE_CHECKING:` bodies)."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.append(node.test)
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def sql_outside_the_store(source: str, name: str) -> list[str]:
    """What in `source` (the file `name`, relative to the repository) is SQL that belongs in the store."""
    found = []
    for node in _runtime_nodes(ast.parse(source, name)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        for module in modules:
            top = module.split(".")[0]
            if top in SQL_PACKAGES and (name, top) not in ALLOWED:
                found.append(f"{name}:{node.lineno} imports {module}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "session":
            found.append(f"{name}:{node.lineno} opens a session (.session())")
    return sorted(found, key=lambda hit: int(hit.split(":")[1].split()[0]))


def _scanned_files() -> list[Path]:
    files = [p for top in SCANNED for p in sorted((ROOT / top).rglob("*.py"))]
    return [p for p in files if STORE not in p.parents]


def test_no_sql_outside_the_store() -> None:
    files = _scanned_files()
    assert len(files) > 50  # the scan reads the real tree, not an empty directory
    found = [hit for path in files
             for hit in sql_outside_the_store(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())]
    assert found == [], "SQL outside bevforge/store/ (move it to a store module named for its rows):\n" + \
        "\n".join(found)


def test_the_scan_finds_sql_and_passes_type_only_imports() -> None:
    """The checker itself: it flags each kind of SQL a service might grow, and nothing type-only."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "from sqlmodel import Session, select\n"
        "import sqlalchemy.orm\n"
        "if TYPE_CHECKING:\n"
        "    from sqlalchemy.engine import Connection\n"
        "def f(db):\n"
        "    from sqlalchemy.orm import make_transient\n"
        "    with db.session() as s:\n"
        "        return s\n"
    )
    found = sql_outside_the_store(source, "bevforge/example.py")
    assert found == [
        "bevforge/example.py:2 imports sqlmodel",
        "bevforge/example.py:3 imports sqlalchemy.orm",
        "bevforge/example.py:7 imports sqlalchemy.orm",
        "bevforge/example.py:8 opens a session (.session())",
    ]


def test_the_store_modules_hold_the_services_rows() -> None:
    """The homes the services call exist and are layered in the store-parts import-linter contract."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (store_parts,) = [c for c in contracts if c["id"] == "store-parts"]
    layered = {part.strip() for layer in store_parts["layers"] for part in layer.split("|")}
    for name in ("auth_rows", "audit_rows", "alarm_rows", "command_rows", "retention_rows", "journal_queries"):
        assert (STORE / f"{name}.py").is_file(), name
        assert name in layered, name
