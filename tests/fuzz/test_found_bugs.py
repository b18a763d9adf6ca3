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
