"""The one-pass check of a plain reading (ReadingIntake._plain_good) agrees with the field-by-field one.

A gateway posts thousands of `{endpointId, value}` readings a second, so accept() checks the common
shape in one pass; every other shape, and every doubt, goes to parse(), which names the field at
fault. This table holds the two to the same rules.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bevforge.domain import Actor
from bevforge.errors import BevForgeError
from tests.support.server import brewhouse_config, build_runtime, fed_externally

HLT_VOLUME, FV1_TEMPERATURE, HLT_TEMPERATURE = 14, 50, 10
NOW = datetime(2026, 11, 29, tzinfo=UTC)

ITEMS: list[Any] = [
    {"endpointId": HLT_VOLUME, "value": 51.5},  # the plain case
    {"endpointId": FV1_TEMPERATURE, "value": 18.0},  # another node
    {"endpointId": HLT_VOLUME, "value": 51},  # an int for a float endpoint: parse() converts it
    {"endpointId": HLT_VOLUME, "value": math.inf},
    {"endpointId": HLT_VOLUME, "value": math.nan},
    {"endpointId": HLT_VOLUME, "value": 1e9},  # out of range
    {"endpointId": HLT_VOLUME, "value": None},
    {"endpointId": HLT_VOLUME, "value": "51.5"},
    {"endpointId": HLT_VOLUME, "value": 51.5, "quality": "uncertain"},
    {"endpointId": HLT_VOLUME, "value": 51.5, "timestamp": "2026-11-29T00:00:00Z"},
    {"endpointId": HLT_VOLUME, "value": 51.5, "extra": 1},
    {"endpointId": True, "value": 51.5},  # a bool is not an id
    {"endpointId": HLT_TEMPERATURE, "value": 60.0},  # device-owned: not ingestable
    {"endpointId": 999_999, "value": 1.0},
    {"value": 1.0},
    {"endpointId": HLT_VOLUME, "valu": 51.5},  # two keys, one of them not `value`
    {"value": 51.5, "quality": "good"},  # two keys, no endpointId
    [HLT_VOLUME, 51.5],
]


@pytest.mark.parametrize("actor", [Actor.system(), Actor(user="hlt", role="technician", nodes=frozenset({"HLT"}))])
def test_the_fast_path_takes_only_what_parse_accepts_and_builds_the_same_reading(tmp_path: Path, actor: Actor) -> None:
    runtime = build_runtime(brewhouse_config(fed_externally(HLT_VOLUME, FV1_TEMPERATURE)), tmp_path / "x.db")
    intake = runtime.intake
    taken = 0
    for item in ITEMS:
        fast = intake._plain_good(item, actor)
        try:
            slow = intake.parse(item, "readings[0]", NOW, actor)
        except BevForgeError:
            slow = None
        if fast is not None:
            taken += 1
            assert slow == fast, item  # the same Reading, field for field
    assert taken == (2 if actor.nodes is None else 1)  # only the plain cases took the fast path
