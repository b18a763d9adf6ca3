"""The tests stand on their own brewhouse (tests/fixtures/plant.yaml), not on the shipped config.yaml.

config.yaml is the technician's sample: they may rename a vessel or re-address a device without
breaking a test. Three checks keep it that way:
- the test support builds every plant from the fixture;
- no test module names the shipped file (read by source, so a new test cannot slip it back in),
  except tests/integration/test_shipped_sample.py, which checks the sample itself;
- a copy of the project whose config.yaml is not even YAML still passes a slice of the suite
  that covers every way a test starts the app (in-process server, `main.py` subprocess, the
  NiceGUI User fixture, the standalone simulator).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bevforge.config import load_config
from tests.support.server import PLANT_FIXTURE, ROOT, brewhouse_config, config_document

TESTS = ROOT / "tests"
SHIPPED_SAMPLE_TEST = TESTS / "integration" / "test_shipped_sample.py"
SHIPPED = "config.yaml"  # named here only to look for it (this module and the sample's own test are exempt)


def test_the_support_builds_the_fixture_brewhouse() -> None:
    assert PLANT_FIXTURE.parent == TESTS / "fixtures" and PLANT_FIXTURE.name != SHIPPED
    assert config_document() == yaml.safe_load(PLANT_FIXTURE.read_text(encoding="utf-8"))
    fixture = load_config(PLANT_FIXTURE)
    built = brewhouse_config()
    assert [n.id for n in built.nodes] == [n.id for n in fixture.nodes]
    assert [e.name for e in built.endpoints] == [e.name for e in fixture.endpoints]


def _shipped_references(path: Path) -> list[str]:
    """Places in one test module that would read the shipped config.yaml.

    Flagged: the literal "config.yaml" unless it names a file under a temporary folder
    (`tmp_path / "config.yaml"`); `bevforge.cli.DEFAULT_CONFIG`; `python -m drivers.sim` without
    `--config` (its default is the shipped file). A `python main.py` subprocess without `--config`
    reads BEVFORGE_CONFIG, which tests/conftest.py points at the fixture for the whole run.
    """
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found: list[str] = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                node.value == SHIPPED or node.value.endswith("/" + SHIPPED)):
            parent = parents.get(node)
            under_a_folder = (isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Div)
                              and parent.right is node)
            left = ast.unparse(parent.left) if under_a_folder else ""
            if not under_a_folder or "ROOT" in left or "__file__" in left or "parent" in left or "cwd" in left:
                found.append(f"{where}: {ast.unparse(parent) if parent else node.value!r}")
        elif isinstance(node, ast.ImportFrom) and node.module == "bevforge.cli" and any(
                a.name == "DEFAULT_CONFIG" for a in node.names):
            found.append(f"{where}: imports bevforge.cli.DEFAULT_CONFIG")
        elif isinstance(node, ast.Call):
            strings = [a.value for a in ast.walk(node) if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if "drivers.sim" in strings and "--config" not in strings:
                found.append(f"{where}: python -m drivers.sim without --config")
    return found


def test_no_test_module_reads_the_shipped_sample() -> None:
    modules = sorted(p for p in TESTS.rglob("*.py") if p not in (SHIPPED_SAMPLE_TEST, Path(__file__).resolve()))
    assert len(modules) > 30  # the whole tree was walked
    found = [hit for path in modules for hit in _shipped_references(path)]
    assert found == [], "use tests/fixtures/plant.yaml (PLANT_FIXTURE), not config.yaml:\n" + "\n".join(found)
    assert _shipped_references(SHIPPED_SAMPLE_TEST)  # the checker does see the one module allowed to


# every way a test starts the plant: in-process server and REST, `main.py` subprocesses (CLI,
# --check-config, the app), the NiceGUI User fixture, and the standalone simulator process
SLICE = [
    "tests/unit/test_config.py",
    "tests/integration/test_rest_api.py::test_tiles_carry_current_values",
    "tests/integration/test_auth.py::test_cli_manages_users_and_tokens",
    "tests/integration/test_auth.py::test_auth_mode_none_refused_off_loopback",
    "tests/ui/test_panel.py::test_tiles_show_every_kind_in_words_with_units",
    "tests/integration/test_sim_processes.py::test_watchdog_de_energises_heater_when_the_app_is_killed",
]


@pytest.mark.slow
def test_the_suite_passes_when_the_shipped_sample_is_replaced(tmp_path: Path) -> None:
    copy = tmp_path / "project"
    copy.mkdir()
    for item in ("bevforge", "drivers", "ui", "tests", "main.py", "pyproject.toml"):
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, copy / item, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
        else:
            shutil.copy2(source, copy / item)
    (copy / SHIPPED).write_text("site: [the technician is half way through an edit\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_CURRENT_TEST", "BEVFORGE_CONFIG") and not k.startswith("NICEGUI_")}
    env["PYTHONPATH"] = str(copy)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:playwright", "-p", "no:cacheprovider", "-q",
                           "-x", *SLICE], cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "deselected" not in done.stdout
