"""Hypothesis-generated config.yaml documents: a valid PlantConfig or a ConfigError naming file, line and
field — never another exception (a technician must never see a traceback)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bevforge.config import ConfigError, PlantConfig, parse_config
from tests.support.server import config_document

FILENAME = "fuzzed.yaml"
BASE = config_document()

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
           | st.sampled_from(["HLT", "hlt_controller", "°C", "bool", "heater", "good", "-1", "1e400", "", "~"]))
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
    st.text(max_size=8) | st.sampled_from(["id", "node", "device", "kind", "range", "min", "max"]), kids, max_size=3),
    max_leaves=8)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            out += paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            out += paths(child, (*prefix, i))
    return out


ALL_PATHS = [p for p in paths(BASE) if p]


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    """The real brewhouse with 1–4 random edits: values replaced, keys deleted or added."""
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent: Any = doc
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[path[-1]] = draw(values)
            elif action == "delete":
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or retyped this branch
    return doc


def check(text: str) -> None:
    try:
        config = parse_config(text, FILENAME)
    except ConfigError as err:
        assert err.problems, "a ConfigError lists at least one problem"
        for problem in err.problems:
            assert problem.file == FILENAME
            assert isinstance(problem.field, str) and problem.message
            if not problem.message.startswith("YAML syntax"):
                assert isinstance(problem.line, int) and problem.line >= 1, problem
        assert "Traceback" not in str(err)
    else:
        assert isinstance(config, PlantConfig)


@pytest.mark.slow  # 150 generated brewhouses, each parsed and checked: ~40-60 s
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents())
def test_mutated_brewhouse_configs_are_valid_or_clearly_refused(doc: dict[str, Any]) -> None:
    try:
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError, RecursionError):
        return  # not representable as YAML: nothing a technician could write
    check(text)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
@example("name: \x1f")  # a control character once escaped the loader as yaml.reader.ReaderError
def test_arbitrary_text_is_refused_with_a_clear_error(text: str) -> None:
    check(text)


yaml_fragments = st.sampled_from([
    "nodes:", "devices:", "endpoints:", "  - ", "- {id: 1, name: x}", "version: 1", "version: 2", ": :", "&a [*a]",
    "!!python/object:os.system ls", "key: [unclosed", "\t", "  ", "\n", "site: {name: }", "retention: {raw_days: -1}",
    "alarms: [{id: a, kind: HI}]", "'", "\"", "? complex", "<<: *x", "endpoints: {1: 2}", "{", "}", "--- ", "...",
])


@settings(max_examples=150, deadline=None)
@given(st.lists(yaml_fragments | st.text(max_size=10), min_size=1, max_size=12))
def test_yaml_shaped_garbage_is_refused_with_a_clear_error(parts: list[str]) -> None:
    check("\n".join(parts))
