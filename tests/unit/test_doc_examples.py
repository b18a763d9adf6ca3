"""Docs that cannot lie (issue 16.10): every YAML example in docs/ and the README is a config the
panel accepts.

Each ```yaml block is read as the technician would use it: a whole config (it has `nodes`) is
checked as it stands; a block of sections (`alarms:`, `auth:` …) is put into the shipped config.yaml
(list items replace the shipped item with the same `id`, or are added; mappings are merged) and the
result checked; a bare list of items names its section in the comment `<!-- config example:
SECTION -->` just above the fence, and an item may abridge itself with a `...` key ("the rest as in
the shipped config.yaml"). Checked means parsed by `bevforge.config` with the drivers' own settings
and address checks (`drivers.check`), exactly as `--check-config` does.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bevforge.config import ConfigError, parse_config
from drivers import check

ROOT = Path(__file__).resolve().parents[2]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"(?:<!-- config example: (?P<section>[a-z_]+) -->\n)?```yaml\n(?P<body>.*?)```", re.S)


def examples() -> list[tuple[str, str | None, str]]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text[:match.start("body")].count("\n") + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", match["section"], match["body"]))
    return found


def shipped() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))


def merge_items(into: list[dict[str, Any]], items: list[Any]) -> None:
    by_id = {item.get("id"): n for n, item in enumerate(into) if isinstance(item, dict)}
    for item in items:
        abridged = isinstance(item, dict) and "..." in item
        item = {k: v for k, v in item.items() if k != "..."} if isinstance(item, dict) else item
        at = by_id.get(item.get("id")) if isinstance(item, dict) else None
        if at is None:
            assert not abridged, f"an abridged item ({item.get('id')}) has nothing in config.yaml to abridge"
            into.append(item)
        else:
            into[at] = {**into[at], **item} if abridged else item


def merge_mapping(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge_mapping(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list) and value and isinstance(value[0], dict) \
                and "id" in value[0]:
            merge_items(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


EXAMPLES = examples()


def test_the_docs_have_examples_to_check() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize(("where", "section", "body"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_every_yaml_example_is_a_config_the_panel_accepts(where: str, section: str | None, body: str) -> None:
    example = yaml.safe_load(body)
    if isinstance(example, dict) and "nodes" in example:
        document = example
    else:
        document = shipped()
        if isinstance(example, list):
            assert section, f"{where}: a bare list needs <!-- config example: SECTION --> above its fence"
            merge_items(document.setdefault(section, []), example)
        else:
            assert isinstance(example, dict), f"{where}: not a mapping of config sections"
            merge_mapping(document, example)
    try:
        parse_config(yaml.safe_dump(document, allow_unicode=True), where, check)
    except ConfigError as exc:
        pytest.fail(f"{where}: the example is refused:\n" + "\n".join(str(p) for p in exc.problems))
