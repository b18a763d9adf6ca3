"""`/openapi.json`, `/docs` and `/redoc`, behind sign-in when sign-in is required.

FastAPI serves these itself to anyone; the description of every route, role and body is a map of
the plant's controls, so with `auth.mode: required` it is for signed-in users (any role) and API
tokens only. Without credentials `/openapi.json` answers 401 in the one error format and the two
HTML pages send the browser to sign in first.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import RedirectResponse, Response

from bevforge.api.deps import runtime_of
from bevforge.api.errors import JSONResponse
from bevforge.api.security import enforce, requires
from bevforge.errors import UNAUTHORIZED, Unauthorized

OPENAPI_URL = "/openapi.json"
router = APIRouter(dependencies=[Depends(enforce)], include_in_schema=False)


def _signed_in(request: Request) -> bool:
    return not runtime_of(request).auth.required or getattr(request.state, "actor", None) is not None


@router.get(OPENAPI_URL, openapi_extra=requires("public"))
async def openapi(request: Request) -> Any:
    if not _signed_in(request):
        raise Unauthorized("the API description needs sign-in: send the session cookie or "
                           "'Authorization: Bearer <token>'", code=UNAUTHORIZED)
    return JSONResponse(request.app.openapi())


def _page(request: Request, render: Any) -> Response:
    if not _signed_in(request):
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    return render(openapi_url=OPENAPI_URL, title=f"{request.app.title} — API")  # type: ignore[no-any-return]


@router.get("/docs", openapi_extra=requires("public"))
async def swagger(request: Request) -> Response:
    return _page(request, get_swagger_ui_html)


@router.get("/redoc", openapi_extra=requires("public"))
async def redoc(request: Request) -> Response:
    return _page(request, get_redoc_html)
