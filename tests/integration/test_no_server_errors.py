"""No request of any shape gets a 500 or a traceback (hypothesis-generated bodies and parameters)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.server import ThreadedServer, brewhouse_config, build_runtime

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(["endpointId", "value", "commandId", "readings", "timestamp", "quality", "comment",
                               "name", "pens", "spanS", "shared"])
plausible = st.dictionaries(field_names, json_values | st.integers(0, 70), max_size=4)
bodies = plausible | json_values | st.lists(plausible, max_size=3).map(lambda r: {"readings": r})
segments = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/?#"), min_size=0, max_size=12)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    db = Path(tmp_path_factory.mktemp("fuzz")) / "bevforge.db"
    with ThreadedServer(build_runtime(brewhouse_config(), db)) as server, \
            httpx.Client(base_url=server.base_url, timeout=10) as client:
        yield client


def assert_clean(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    if response.headers.get("content-type", "").startswith("application/json") and response.status_code >= 400:
        body = response.json()
        assert "error" in body and "message" in body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/api/os/command", "/api/os/telemetry/ingest", "/api/os/alarms/1/ack",
                             "/api/os/trends/views"]), body=bodies)
def test_post_bodies_never_500(live: httpx.Client, path: str, body: object) -> None:
    assert_clean(live.post(path, content=json.dumps(body),
                           headers={"content-type": "application/json"}))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=64))
def test_raw_bytes_never_500(live: httpx.Client, raw: bytes) -> None:
    for path in ("/api/os/command", "/api/os/telemetry/ingest"):
        assert_clean(live.post(path, content=raw))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(["/api/os/endpoints/{}", "/api/os/commands/{}", "/api/os/alarms/{}/ack",
                              "/api/os/telemetry?endpointId={}", "/api/os/telemetry?since={}",
                              "/api/os/commands?status={}", "/api/os/commands?limit={}",
                              "/api/os/alarms?state={}", "/api/os/telemetry?limit={}&until={}",
                              "/api/os/trends/views/{}", "/api/os/trends/markers?endpointId={}",
                              "/api/os/trends/markers?endpointId=10&since={}"]),
       segment=segments)
def test_paths_and_queries_never_500(live: httpx.Client, route: str, segment: str) -> None:
    url = route.replace("{}", httpx.URL("", params={"x": segment}).query.decode()[2:])
    method = "POST" if url.endswith("/ack") else "DELETE" if "/trends/views/" in url else "GET"
    assert_clean(live.request(method, url))
