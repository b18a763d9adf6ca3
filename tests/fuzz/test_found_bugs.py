"""The bugs the fuzzers found, pinned as plain tests so they stay fixed whatever the random seed."""

from __future__ import annotations

from tests.support.server import LiveServer

TOO_BIG = 2**64  # beyond SQLite's INTEGER: the alarm routes used to answer 500 (OverflowError)


async def test_alarm_ids_beyond_the_database_range_are_a_422(server: LiveServer) -> None:
    for method, path in (("GET", f"/api/os/alarms/{TOO_BIG}"), ("POST", f"/api/os/alarms/{TOO_BIG}/ack"),
                         ("POST", f"/api/os/alarms/{TOO_BIG}/reset"),
                         ("GET", f"/api/os/alarms/history?alarmId={TOO_BIG}")):
        answer = await server.http.request(method, path)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["error"] == "invalid_request"


async def test_method_not_allowed_lists_every_method_of_the_path(server: LiveServer) -> None:
    answer = await server.http.request("PUT", "/api/os/users")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"  # Starlette listed only the first route's (GET)


async def test_admin_bodies_are_strict_as_documented(server: LiveServer) -> None:
    created = await server.http.post("/api/os/users", json={"username": "brewer", "password": "mash-tun-42",
                                                            "role": "operator"})
    assert created.status_code == 201, created.text
    patched = await server.http.patch("/api/os/users/brewer", json={"disabled": 0})
    assert patched.status_code == 422 and patched.json()["field"] == "disabled"
    refused = await server.http.post("/api/os/users", json={"username": "...", "password": "mash-tun-42",
                                                            "role": "operator"})
    assert refused.status_code == 422 and refused.json()["field"] == "username"


async def test_openapi_documents_the_real_answers(server: LiveServer) -> None:
    spec = (await server.http.get("/openapi.json")).json()
    tiles = spec["paths"]["/api/os/tiles"]["get"]["responses"]
    assert tiles["200"]["content"]["application/json"]["schema"]["type"] == "array"  # was {"type": "string"}
    assert tiles["4XX"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "422" not in tiles and "HTTPValidationError" not in spec["components"]["schemas"]
    history = spec["paths"]["/api/os/alarms/history"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/csv"} <= set(history)
    ingest = spec["paths"]["/api/os/telemetry/ingest"]["post"]["requestBody"]["content"]["application/json"]
    assert "$ref" not in str(ingest)  # the batch schema stands on its own


# Found by the typed-edge grid of issue 13.6 (dates at year 1 and 9999, ints past SQLite's INTEGER):
# these answered 500 (OverflowError converting to UTC; naive bounds refused by the journals' column type).
CALENDAR_ENDS = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01", "9999-12-31")


async def test_time_bounds_at_the_ends_of_the_calendar_are_clamped_not_a_500(server: LiveServer) -> None:
    for path in ("/api/os/telemetry", "/api/os/alarms/history", "/api/os/audit"):
        for key in ("since", "until"):
            for stamp in CALENDAR_ENDS:
                for fmt in ("json", "csv"):
                    answer = await server.http.get(path, params={key: stamp, "format": fmt})
                    assert answer.status_code == 200, (path, key, stamp, fmt, answer.text)


async def test_a_zoneless_time_bound_is_utc_in_every_journal(server: LiveServer) -> None:
    for path in ("/api/os/alarms/history", "/api/os/audit"):
        answer = await server.http.get(path, params={"since": "2026-01-01T00:00:00"})
        assert answer.status_code == 200, (path, answer.text)


async def test_endpoint_ids_past_the_store_are_a_422(server: LiveServer) -> None:
    for path in ("/api/os/commands", "/api/os/telemetry"):
        answer = await server.http.get(path, params={"endpointId": str(10**20)})
        assert answer.status_code == 422 and answer.json()["field"] == "endpointId", (path, answer.text)


async def test_a_ticks_since_beyond_a_json_integer_is_a_422(server: LiveServer) -> None:
    """Schemathesis: `/api/os/health?ticksSince=626931461404279832576` answered 500 (the echo of a number
    beyond 64 bits could not be written as JSON)."""
    answer = await server.http.get("/api/os/health", params={"ticksSince": 626931461404279832576})
    assert answer.status_code == 422 and answer.json()["field"] == "ticksSince", answer.text
    assert (await server.http.get("/api/os/health", params={"ticksSince": 2**53 - 1})).status_code == 200
