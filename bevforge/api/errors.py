"""The one error format of every HTTP answer: {"error": code, "message": text, "field": path}."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse as _StarletteJSONResponse
from pydantic import WithJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException

from bevforge import errors as core

log = logging.getLogger(__name__)


class JSONResponse(_StarletteJSONResponse):
    """JSON rendered by orjson: the one response class of the API (fast, handles datetimes).

    A JSONResponse subclass so that OpenAPI documents each route's answer from its return type
    (a plain Response made every answer `{"type": "string"}`, which no client could trust).
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.headers = headers
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra


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


# A time in a query (since/until): pydantic takes ISO-8601 and UNIX epoch seconds; say both in OpenAPI.
TimeQuery = Annotated[datetime | None, WithJsonSchema({
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


_STATUS_OF: tuple[tuple[type[core.BevForgeError], int], ...] = (
    (core.Invalid, 422), (core.Malformed, 400), (core.Unauthorized, 401), (core.Forbidden, 403),
    (core.NotFound, 404), (core.Conflict, 409), (core.TooLarge, 413), (core.TooManyRequests, 429),
    (core.Unavailable, 503))


def install_error_handlers(app: FastAPI) -> None:
    document_errors(app)
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.field, **exc.extra), status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(core.BevForgeError)
    async def _core_error(_request: Request, exc: core.BevForgeError) -> JSONResponse:
        # The core's typed errors: the class says the status (minimal until the full translator lands).
        status = next((s for cls, s in _STATUS_OF if isinstance(exc, cls)), 500)
        retry = getattr(exc, "retry_after_s", None)
        headers = {"Retry-After": str(max(1, round(retry)))} if retry is not None else None
        return JSONResponse(error_body(exc.code, exc.message, exc.field, **exc.extra), status_code=status,
                            headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": field_path(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        return JSONResponse(
            error_body("invalid_request", f"{first['field']}: {first['message']}", first["field"], errors=errors),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden",
                413: "too_large"}.get(exc.status_code, "http_error")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(_request) or headers.get("Allow", "")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never a traceback to a user: log it here, answer in the one format.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal error; see the server log"), status_code=500)
