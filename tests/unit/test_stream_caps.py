"""Stream slots: who counts together, and a slot given back exactly once."""

from __future__ import annotations

import pytest

from bevforge.api.stream_limits import StreamCaps, holder_of
from bevforge.domain import Actor
from bevforge.errors import TooManyRequests, Unavailable


def test_a_signed_in_user_counts_everywhere_and_anonymous_clients_per_station() -> None:
    assert holder_of(Actor(user="brewer", station="10.0.0.5", credential="session:x")) == "user:brewer"
    assert holder_of(Actor(user="brewer", station="10.0.0.9", credential="session:y")) == "user:brewer"
    assert holder_of(Actor(user="anonymous", station="10.0.0.5")) == "station:10.0.0.5"
    assert holder_of(Actor(user="anonymous", station="10.0.0.6")) == "station:10.0.0.6"


def test_caps_per_holder_then_in_total_and_a_release_counts_once() -> None:
    caps = StreamCaps()
    first = caps.acquire("user:a", per_holder=2, total=3)
    caps.acquire("user:a", per_holder=2, total=3)
    with pytest.raises(TooManyRequests) as mine:
        caps.acquire("user:a", per_holder=2, total=3)
    assert mine.value.code == "too_many_streams" and mine.value.extra["limit"] == 2
    caps.acquire("user:b", per_holder=2, total=3)
    with pytest.raises(Unavailable) as full:
        caps.acquire("user:c", per_holder=2, total=3)
    assert full.value.code == "too_many_streams" and "server full" in full.value.message
    first()
    first()  # a second release of the same slot changes nothing
    assert caps.total == 2 and caps.by_holder == {"user:a": 1, "user:b": 1}
    caps.acquire("user:c", per_holder=2, total=3)
