"""The REST translator (bevforge/api/errors.py): each typed error class → one status and one body.

A tiny app with the real handlers raises each class; the answer must be the documented status and
`{error, message, field, ...extra}`, nothing else. Body models declared on a route answer with the
codes the hand-parsed bodies used (missing_field, unknown_field, invalid_json, ...).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from bevforge import errors
from bevforge.api.errors import headers_of, install_error_handlers, status_of
from bevforge.api.rest import CommandIn

CASES: list[tuple[errors.BevForgeError, int]] = [
    (errors.Invalid("value 500 is outside 0…99", code=errors.OUT_OF_RANGE, field="value"), 422),
    (errors.Malformed("request body is not valid JSON", field="body"), 400),
    (errors.Unauthorized("sign in"), 401),
    (errors.Forbidden("this needs the operator role; you are viewer"), 403),
    (errors.NotFound("no endpoint with id 9", code=errors.UNKNOWN_ENDPOINT, field="endpoint_id"), 404),
    (errors.Conflict("already acknowledged"), 409),
    (errors.TooLarge("at most 5000 readings per batch", field="readings"), 413),
    (errors.TooManyRequests("too many failed sign-ins", code=errors.TOO_MANY_ATTEMPTS), 429),
    (errors.Unavailable("the store cannot be written", code=errors.STORE_UNAVAILABLE), 503),
    (errors.BevForgeError("no class of its own"), 500),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    count: int = 0


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise/{index}")
    async def raise_one(index: int) -> None:
        raise CASES[index][0]

    @app.post("/strict")
    async def strict(body: Strict) -> dict[str, Any]:
        return body.model_dump()

    @app.post("/command")
    async def command(body: CommandIn) -> dict[str, Any]:
        return {"endpointId": body.endpointId, "value": body.value, "commandId": body.commandId}

    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(make_app(), raise_server_exceptions=False)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[type(c[0]).__name__ for c in CASES])
def test_each_error_class_has_one_status_and_the_one_body(client: TestClient, index: int) -> None:
    exc, status = CASES[index]
    response = client.get(f"/raise/{index}")
    assert response.status_code == status == status_of(exc)
    expected = {"error": exc.code, "message": exc.message} | ({"field": exc.field} if exc.field else {})
    assert response.json() == expected


def test_a_missing_sign_in_carries_the_bearer_challenge(client: TestClient) -> None:
    index = next(i for i, (exc, _) in enumerate(CASES) if isinstance(exc, errors.Unauthorized))
    assert client.get(f"/raise/{index}").headers["www-authenticate"] == "Bearer"
    other = errors.Unauthorized("wrong password", code=errors.BAD_CREDENTIALS)
    assert status_of(other) == 401 and headers_of(other) is None  # a refused sign-in is no challenge


def test_extra_fields_are_part_of_the_body() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/full")
    async def full() -> None:
        raise errors.TooManyRequests("over the cap", code=errors.TOO_MANY_SUBSCRIPTIONS, retry_after_s=2.5,
                                     limit=50)

    response = TestClient(app).get("/full")
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    assert response.json() == {"error": "too_many_subscriptions", "message": "over the cap", "limit": 50}


@pytest.mark.parametrize(("body", "status", "code", "field"), [
    (b"{not json", 400, errors.INVALID_JSON, "body"),
    (b"", 422, errors.INVALID_REQUEST, "body"),
    (b"[1]", 422, errors.INVALID_REQUEST, "body"),
    (b'{"count": 1}', 422, errors.MISSING_FIELD, "name"),
    (b'{"name": "a", "zz": 1, "aa": 2}', 422, errors.UNKNOWN_FIELD, "aa"),  # first unknown, alphabetically
    (b'{"name": "a", "count": "many"}', 422, errors.INVALID_REQUEST, "count"),
])
def test_a_declared_body_model_answers_with_the_hand_parsed_codes(client: TestClient, body: bytes, status: int,
                                                                  code: str, field: str) -> None:
    response = client.post("/strict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    answer = response.json()
    assert (answer["error"], answer["field"]) == (code, field)
    assert "errors" not in answer  # as the hand-parsed bodies: one error, named


def test_the_command_body_leaves_value_checks_to_the_command_pipeline(client: TestClient) -> None:
    response = client.post("/command", json={"endpointId": True, "value": "hot", "commandId": ""})
    assert response.status_code == 200  # the shape is right: the pipeline decides (invalid_endpoint_id etc.)
    assert response.json() == {"endpointId": True, "value": "hot", "commandId": ""}
    missing = client.post("/command", json={"value": 1}).json()
    assert (missing["error"], missing["field"], missing["message"]) == ("missing_field", "endpointId",
                                                                        "endpointId is required")
