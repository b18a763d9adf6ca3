"""The REST translator: every HTTP error answer is `{"error": code, "message": text, "field": path}`.

The core raises `bevforge.errors` classes; this module alone turns them into a status and a body
(and FastAPI's validation errors, 404/405 and unexpected exceptions into the same shape).
"""

from __future__ import annotations

import logging
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse as _StarletteJSONResponse
from pydantic import AfterValidator, WithJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException

from bevforge import errors

log = logging.getLogger(__name__)


class JSONResponse(_StarletteJSONResponse):
    """JSON rendered by orjson: the one response class of the API (fast, handles datetimes).

    A JSONResponse subclass so that OpenAPI documents each route's answer from its return type
    (a plain Response made every answer `{"type": "string"}`, which no client could trust).
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class SentBack(errors.Forbidden):
    """A refused browser form sent back to its page (303 to `location`, body still the error):
    a page drawn before its session changed is drawn again rather than shown a bare JSON 403."""

    def __init__(self, message: str, *, location: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.location = location


# The REST translator: the class of a typed error decides the status; nothing else does.
STATUS: tuple[tuple[type[errors.BevForgeError], int], ...] = (
    (SentBack, 303), (errors.Invalid, 422), (errors.Malformed, 400), (errors.Unauthorized, 401),
    (errors.Forbidden, 403), (errors.NotFound, 404), (errors.Conflict, 409), (errors.TooLarge, 413),
    (errors.UnsupportedMedia, 415), (errors.TooManyRequests, 429), (errors.Unavailable, 503),
)


def status_of(exc: errors.BevForgeError) -> int:
    """The HTTP status of a typed error: its class (or the nearest base) in STATUS; 500 for none."""
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 500)


def headers_of(exc: errors.BevForgeError) -> dict[str, str] | None:
    """HTTP headers an error implies: the Bearer challenge of a missing sign-in, Retry-After of a cap,
    the page a refused form is sent back to."""
    if isinstance(exc, SentBack):
        return {"location": exc.location}
    if isinstance(exc, errors.Unauthorized) and exc.code == errors.UNAUTHORIZED:
        return {"WWW-Authenticate": "Bearer"}
    if exc.retry_after_s is not None:
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    return None


def error_response(exc: errors.BevForgeError) -> JSONResponse:
    """The one REST answer of a typed error: status from its class, body `{error, message, field, ...extra}`."""
    return JSONResponse(error_body(exc.code, exc.message, exc.field, **exc.extra), status_code=status_of(exc),
                        headers=headers_of(exc))


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return body


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """('query', 'limit') → 'limit'; ('body', 'readings', 3, 'value') → 'readings[3].value'."""
    parts = [p for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


EARLIEST = datetime(1, 1, 2, tzinfo=UTC)  # the query bounds every store and clock can compare and convert
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def utc_bound(ts: datetime | None) -> datetime | None:
    """A query bound as an aware UTC time, clamped to what every reader can handle.

    `since=0001-01-01T00:00:00+14:00` has no UTC form and `9999-12-31` none a day later; both
    answered 500. As bounds they mean "from the beginning" / "to the end", so they are clamped
    (nothing is stored outside that range); a time without a zone is UTC, like every stored time.
    """
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    try:
        ts = ts.astimezone(UTC)
    except OverflowError:
        return EARLIEST if ts.year == 1 else LATEST
    return min(max(ts, EARLIEST), LATEST)


# A time in a query (since/until): pydantic takes ISO-8601 and UNIX epoch seconds; say both in OpenAPI.
TimeQuery = Annotated[datetime | None, AfterValidator(utc_bound), WithJsonSchema({
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}, {"type": "null"}],
    "description": "ISO-8601 (UTC when no zone is given) or UNIX epoch seconds"})]

CSV_ANSWER: dict[int | str, dict[str, Any]] = {  # `responses=` of a route that exports CSV with format=csv
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "JSON, or CSV with format=csv"}}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "machine-readable code, e.g. unknown_endpoint"},
        "message": {"type": "string", "description": "what is wrong, in words an operator can act on"},
        "field": {"type": ["string", "null"], "description": "the request field at fault (dotted path)"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


def document_errors(app: FastAPI) -> None:
    """Make /openapi.json say what the API really answers on failure.

    Every route can answer 4xx in the one error format (401/403 by role, 404 unknown ids, 409 not
    allowed now, 413 too large, 422 invalid): documented once as `4XX`, and FastAPI's default 422
    schema (`detail: [...]`, which this API never sends) is replaced by the real one.
    """

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
            _inline_body_refs(schema)
            for schemas in ("HTTPValidationError", "ValidationError"):
                schema["components"]["schemas"].pop(schemas, None)
            error = {"description": "Error: {error, message, field}",
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    responses.setdefault("4XX", error)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(request: Request) -> str | None:
    """Every method the API documents at this path (Starlette's Allow lists only the first route's).

    Read from the OpenAPI paths, the one table of what each path serves; None for a path outside it.
    """
    table = getattr(request.app.state, "allow_table", None)
    if table is None:
        table = [(re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"),
                  ", ".join(sorted(m.upper() for m in operations)))
                 for path, operations in request.app.openapi().get("paths", {}).items()]
        request.app.state.allow_table = table
    path = request.scope.get("path", "")
    return next((methods for pattern, methods in table if pattern.match(path)), None)


# Codes a body model's own validators may raise (PydanticCustomError type): passed through as they are.
BODY_CODES = frozenset({errors.INVALID_VALUE, errors.INVALID_ENDPOINT_ID, errors.INVALID_COMMAND_ID,
                        errors.INVALID_QUALITY, errors.INVALID_TIMESTAMP, errors.OUT_OF_RANGE, errors.TOO_LARGE})


def body_error(problems: list[dict[str, Any]]) -> errors.BevForgeError:
    """A declared body model's validation errors → the one error the hand-parsed bodies answered.

    Not JSON → 400 invalid_json; no object → invalid_request on `body`; then unknown fields first
    (alphabetically: unknown_field), then missing ones (missing_field), then the first wrong value
    (its validator's own code, else invalid_request naming the field, e.g. `readings[3].value`).
    """
    if any(p["type"] == "json_invalid" for p in problems):
        return errors.Malformed("request body is not valid JSON", code=errors.INVALID_JSON, field="body")
    whole = [p for p in problems if len(p["loc"]) == 1]
    if whole:  # no body at all, or one that is not an object
        empty = whole[0]["type"] == "missing"
        message = "request body must be a JSON object" if empty else "body must be a JSON object"
        return errors.Invalid(message, code=errors.INVALID_REQUEST, field="body")
    extra = sorted((p for p in problems if p["type"] == "extra_forbidden"), key=lambda p: field_path(p["loc"]))
    if extra:
        field = field_path(extra[0]["loc"])
        return errors.Invalid(f"unknown field {str(extra[0]['loc'][-1])!r}", code=errors.UNKNOWN_FIELD, field=field)
    missing = [p for p in problems if p["type"] == "missing"]
    first = missing[0] if missing else problems[0]
    field = field_path(first["loc"])
    if first["type"] == "missing":
        return errors.Invalid(f"{first['loc'][-1]} is required", code=errors.MISSING_FIELD, field=field)
    if first["type"] in BODY_CODES:
        return errors.Invalid(first["msg"], code=first["type"], field=field)
    return errors.Invalid(f"{field}: {first['msg']}", code=errors.INVALID_REQUEST, field=field)


def _inline_body_refs(schema: dict[str, Any]) -> None:
    """Request bodies stand on their own in OpenAPI (as the hand-documented ones did): a body
    model's `$ref` is replaced by its schema, and the component dropped when nothing else uses it."""
    components = schema.get("components", {}).get("schemas", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                return inline(components[ref.removeprefix("#/components/schemas/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    inlined: set[str] = set()
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                if ref.startswith("#/components/schemas/"):
                    inlined.add(ref.removeprefix("#/components/schemas/"))
                    media["schema"] = inline(media["schema"])
    rest = orjson.dumps({k: v for k, v in schema.items() if k != "components"} | {
        "components": {"schemas": {k: v for k, v in components.items() if k not in inlined}}}).decode()
    for name in inlined:
        if f'"#/components/schemas/{name}"' not in rest:
            components.pop(name, None)


def install_error_handlers(app: FastAPI) -> None:
    document_errors(app)

    @app.exception_handler(errors.BevForgeError)
    async def _typed(_request: Request, exc: errors.BevForgeError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        body = [e for e in exc.errors() if e.get("loc") and e["loc"][0] == "body"]
        if body:
            return error_response(body_error(body))
        problems = [{"field": field_path(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        first = problems[0] if problems else {"field": None, "message": "invalid request"}
        return JSONResponse(
            error_body(errors.INVALID_REQUEST, f"{first['field']}: {first['message']}", first["field"],
                       errors=problems),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: errors.INVALID_JSON, 404: errors.NOT_FOUND, 405: errors.METHOD_NOT_ALLOWED,
                401: errors.UNAUTHORIZED, 403: errors.FORBIDDEN, 413: errors.TOO_LARGE,
                }.get(exc.status_code, errors.HTTP_ERROR)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(_request) or headers.get("Allow", "")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never a traceback to a user: log it here, answer in the one format.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(errors.INTERNAL_ERROR, "internal error; see the server log"), status_code=500)
