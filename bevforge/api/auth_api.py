"""Sign-in, sign-out, users, tokens, the audit journal and the first-run page.

The sign-in page is plain HTML posting to /api/os/auth/login so the session cookie can be set
HttpOnly by the server (a script never sees it). The first-run page creates the first admin and is
answered only to the machine itself while no user exists.
"""

from __future__ import annotations

import asyncio
import html
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from bevforge import audit as audit_mod
from bevforge import permissions
from bevforge.api.csrf import CSRF_FIELD, csrf_token, csrf_token_ok
from bevforge.api.deps import actor_for_request, runtime_of, station_of
from bevforge.api.errors import CSV_ANSWER, JSONResponse, SentBack, TimeQuery
from bevforge.api.rest import body_schema, json_body
from bevforge.api.security import enforce, requires
from bevforge.auth import SESSION_COOKIE, is_loopback
from bevforge.errors import (
    ALREADY_SET_UP,
    CSRF_REJECTED,
    FORBIDDEN,
    INVALID_REQUEST,
    UNKNOWN_TOKEN,
    BevForgeError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Unavailable,
)

router = APIRouter(default_response_class=JSONResponse, dependencies=[Depends(enforce)], tags=["auth"])


class LoginIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class UserIn(BaseModel):
    username: str = Field(max_length=64, pattern=r"^[A-Za-z0-9._-]*[A-Za-z0-9][A-Za-z0-9._-]*$")
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["viewer", "operator", "technician", "admin"]
    nodes: list[str] | None = None


class UserPatch(BaseModel):
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    role: Literal["viewer", "operator", "technician", "admin"] | None = None
    nodes: list[str] | None = None
    disabled: bool | None = None


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: Literal["viewer", "operator", "technician", "admin"]
    nodes: list[str] | None = None


STALE_FORM = "the page was out of date: please try again"


async def _form_or_json(request: Request, back: str | None = None) -> tuple[dict[str, Any], bool]:
    """The body of a route the plain-HTML pages post to (a form) or a script calls (JSON).

    A form that rides on a session cookie must carry that session's CSRF token as `csrf` (the
    pages put it in a hidden field); the Origin check has already run in `csrf.OriginGuard`.
    Without it the form is refused: with `back`, by sending the browser back to that page (a page
    drawn before the cookie changed, e.g. signed in again in another tab), else 403.
    """
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raw = (await request.body()).decode(errors="replace")
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and not csrf_token_ok(cookie, form.get(CSRF_FIELD)):
            message = "this form is missing its CSRF token: reload the page and try again"
            if back is not None:
                raise SentBack(message, location=back, code=CSRF_REJECTED, field=CSRF_FIELD)
            raise Forbidden(message, code=CSRF_REJECTED, field=CSRF_FIELD)
        return form, True
    body = await json_body(request)
    if not isinstance(body, dict):
        raise Invalid("body must be a JSON object", code=INVALID_REQUEST, field="body")
    return body, False


def _validated(model: type[BaseModel], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body, strict=True)  # no 0 for false, no "1" for a list: as documented
    except Exception as exc:
        errors = getattr(exc, "errors", lambda: [])()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid"}
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise Invalid(f"{field}: {first['msg']}", code=INVALID_REQUEST, field=field) from None


def _set_cookie(response: Response, value: str, request: Request) -> None:
    rt = runtime_of(request)
    response.set_cookie(SESSION_COOKIE, value, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https",
                        max_age=int(rt.config.auth.session_max_hours * 3600))


# -- sign in / out ----------------------------------------------------------------------------------

@router.post("/api/os/auth/login", summary="Sign in: sets the HttpOnly session cookie",
             openapi_extra=body_schema(LoginIn) | requires("public"))
async def login(request: Request) -> Response:
    rt = runtime_of(request)
    body, is_form = await _form_or_json(request, back=f"/login?error={quote(STALE_FORM)}")
    creds: LoginIn = _validated(LoginIn, body)
    try:
        cookie, actor = await asyncio.to_thread(rt.auth.login, creds.username, creds.password, station_of(request))
    except Unavailable as exc:  # the store cannot record the session now: JSON clients get the 503
        if not is_form:
            raise
        return RedirectResponse(f"/login?error={quote(exc.message)}&next={quote(str(body.get('next', '/')))}",
                                status_code=303)
    except BevForgeError as exc:
        if is_form:
            nxt = quote(str(body.get("next", "/")))
            return RedirectResponse(f"/login?error={quote(exc.message)}&next={nxt}", status_code=303)
        raise
    if is_form:
        target = str(body.get("next") or "/")
        response: Response = RedirectResponse(target if target.startswith("/") and not target.startswith("//")
                                              else "/", status_code=303)
    else:
        response = JSONResponse({"user": actor.user, "role": actor.role,
                                 "nodes": permissions.node_limit(actor)})
    _set_cookie(response, cookie, request)
    return response


@router.post("/api/os/auth/logout", summary="Sign out: ends the session and closes its sockets",
             openapi_extra=requires("public"))
async def logout(request: Request) -> Response:
    rt = runtime_of(request)
    is_form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    if is_form:
        await _form_or_json(request, back="/")  # checks the form's CSRF token (a stale page: drawn again)
    rt.auth.logout(request.cookies.get(SESSION_COOKIE), getattr(request.state, "actor", None))
    response: Response = JSONResponse({"signedOut": True})
    if is_form:
        response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/api/os/auth/me", summary="Who am I", openapi_extra=requires("viewer"))
async def me(request: Request) -> dict[str, Any]:
    actor = actor_for_request(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    signed_in = cookie and actor.credential and actor.credential.startswith("session:")
    return {"user": actor.user, "role": actor.role, "station": actor.station,
            "nodes": permissions.node_limit(actor),
            "authMode": runtime_of(request).auth.mode,
            "csrfToken": csrf_token(cookie) if signed_in and cookie else None}


# -- users and tokens (admin) -------------------------------------------------------------------------

@router.get("/api/os/users", summary="Users", openapi_extra=requires("admin"))
async def list_users(request: Request) -> list[dict[str, Any]]:
    rt = runtime_of(request)
    return await rt.db.read(rt.auth.list_users)


@router.post("/api/os/users", summary="Create a user", status_code=201,
             openapi_extra=body_schema(UserIn) | requires("admin"))
async def create_user(request: Request) -> dict[str, Any]:
    rt = runtime_of(request)
    body: UserIn = _validated(UserIn, (await _form_or_json(request))[0])
    row = await asyncio.to_thread(rt.auth.add_user, body.username, body.password, body.role, body.nodes)
    rt.audit.record(actor_for_request(request), "user.create", target=row.username, new={"role": row.role,
                                                                                          "nodes": row.nodes})
    return {"username": row.username, "role": row.role, "nodes": row.nodes}


@router.patch("/api/os/users/{username}", summary="Change a user's role, nodes, password or disable it",
              openapi_extra=body_schema(UserPatch) | requires("admin"))
async def update_user(request: Request, username: str) -> dict[str, Any]:
    rt = runtime_of(request)
    raw = (await _form_or_json(request))[0]
    body: UserPatch = _validated(UserPatch, raw)
    before = next((u for u in await rt.db.read(rt.auth.list_users) if u["username"] == username), None)
    row = await asyncio.to_thread(rt.auth.update_user, username, password=body.password, role=body.role,
                                  nodes=body.nodes if "nodes" in raw else False, disabled=body.disabled)
    after = {"role": row.role, "nodes": row.nodes, "disabled": row.disabled}
    rt.audit.record(actor_for_request(request), "user.update", target=username,
                    old={k: before[k] for k in after} if before else None,
                    new=after | ({"password": "changed"} if body.password else {}))
    return {"username": row.username} | after


@router.get("/api/os/tokens", summary="API tokens (never their secret)", openapi_extra=requires("admin"))
async def list_tokens(request: Request) -> list[dict[str, Any]]:
    rt = runtime_of(request)
    return await rt.db.read(rt.auth.list_tokens)


@router.post("/api/os/tokens", summary="Create an API token; the token is shown only in this answer",
             status_code=201, openapi_extra=body_schema(TokenIn) | requires("admin"))
async def create_token(request: Request) -> dict[str, Any]:
    rt = runtime_of(request)
    body: TokenIn = _validated(TokenIn, (await _form_or_json(request))[0])
    actor = actor_for_request(request)
    token_id, token = await asyncio.to_thread(rt.auth.create_token, body.name, body.role, body.nodes, actor.user)
    rt.audit.record(actor, "token.create", target=token_id, new={"name": body.name, "role": body.role,
                                                                 "nodes": body.nodes})
    return {"id": token_id, "token": token, "name": body.name, "role": body.role, "nodes": body.nodes}


@router.delete("/api/os/tokens/{token_id}", summary="Revoke a token; its open sockets are closed",
               openapi_extra=requires("admin"))
async def revoke_token(request: Request, token_id: str) -> dict[str, Any]:
    rt = runtime_of(request)
    if not await asyncio.to_thread(rt.auth.revoke_token, token_id):
        raise NotFound(f"no active token {token_id}", code=UNKNOWN_TOKEN, field="token_id")
    rt.audit.record(actor_for_request(request), "token.revoke", target=token_id)
    return {"id": token_id, "revoked": True}


# -- audit journal ----------------------------------------------------------------------------------------

@router.get("/api/os/audit", summary="The audit journal (technician); format=csv to export",
            openapi_extra=requires("technician"), responses=CSV_ANSWER)
async def audit(request: Request, since: TimeQuery = None, until: TimeQuery = None,
                user: str | None = None, action: str | None = None,
                limit: Annotated[int, Query(ge=1, le=100000)] = 1000,
                format: Literal["json", "csv"] = "json",
                site: Annotated[str | None, Query(description="a central panel: the audit journal this forwarding "
                                                  "site sent (its mqtt.site), not this panel's own")] = None) -> Any:
    rt = runtime_of(request)
    actor = actor_for_request(request)
    if site is not None:
        permissions.require_forwarded_site(rt.config, site)
        permissions.require_site_audit(actor)
        entries = await rt.audit.site_query(site, since=since, until=until, user=user, action=action, limit=limit)
    else:
        entries = await rt.audit.query(since=since, until=until, user=user, action=action, limit=limit)
        # JSON and CSV alike: a node-limited technician reads only the entries about their nodes
        entries = permissions.visible_audit(actor, rt.config, entries, rt.alarms.points)
    if format == "csv":
        name = f"audit-{site}.csv" if site is not None else "audit.csv"
        return Response(audit_mod.to_csv(entries, site=site is not None), media_type="text/csv",
                        headers={"content-disposition": f'attachment; filename="{name}"'})
    return entries


# -- pages: sign-in and first run ----------------------------------------------------------------------------

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} — BevForge OS</title>
<style>body{{font-family:system-ui,sans-serif;background:#d9d9d9;color:#222;display:flex;justify-content:center;
padding-top:10vh}}form{{background:#eee;padding:2rem;border:1px solid #999;min-width:20rem}}
label{{display:block;margin:.8rem 0 .2rem}}input,select{{font-size:1.2rem;width:100%;min-height:48px;
box-sizing:border-box}}button{{margin-top:1.2rem;font-size:1.2rem;min-height:48px;width:100%}}
.error{{color:#a00;font-weight:bold}}</style></head><body><form method="post" action="{action}">
<h1>{title}</h1>{error}{fields}<button type="submit">{button}</button></form></body></html>"""


def _csrf_field(request: Request) -> str:
    """The hidden CSRF field of a page's form, when the browser already holds a session cookie."""
    cookie = request.cookies.get(SESSION_COOKIE)
    return f'<input type="hidden" name="{CSRF_FIELD}" value="{csrf_token(cookie)}">' if cookie else ""


@router.get("/login", summary="Sign-in page", response_class=HTMLResponse, openapi_extra=requires("public"),
            include_in_schema=False)
async def login_page(request: Request, error: str | None = None, next: str = "/") -> HTMLResponse:
    rt = runtime_of(request)
    if not await rt.db.read(rt.auth.has_users) and is_loopback(station_of(request)):
        return RedirectResponse("/setup", status_code=303)  # type: ignore[return-value]
    fields = (_csrf_field(request) + f'<input type="hidden" name="next" value="{html.escape(next)}">'
              '<label for="u">User</label><input id="u" name="username" autocomplete="username" autofocus>'
              '<label for="p">Password</label><input id="p" name="password" type="password" '
              'autocomplete="current-password">')
    err = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return HTMLResponse(_PAGE.format(title="Sign in", action="/api/os/auth/login", error=err, fields=fields,
                                     button="SIGN IN"))


@router.get("/setup", summary="First run: create the first admin (this machine only)",
            response_class=HTMLResponse, openapi_extra=requires("public"), include_in_schema=False)
async def setup_page(request: Request, error: str | None = None) -> HTMLResponse:
    await _check_first_run(request)
    fields = (_csrf_field(request) + '<p>No user exists yet. Create the first administrator with the setup '
              'code the server printed on its console when it started (<code>journalctl -u bevforge</code> for '
              'the service).</p>'
              '<label for="c">Setup code</label><input id="c" name="code" autocomplete="off" autofocus>'
              '<label for="u">User</label><input id="u" name="username">'
              '<label for="p">Password (8+ characters)</label><input id="p" name="password" type="password">')
    err = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return HTMLResponse(_PAGE.format(title="First run", action="/setup", error=err, fields=fields,
                                     button="CREATE ADMIN"))


@router.post("/setup", summary="First run: create the first admin", openapi_extra=requires("public"),
             include_in_schema=False)
async def setup(request: Request) -> Response:
    """Create the first admin. Concurrent first-run posts are serialised (one at a time per server) and
    the "no user yet" check is made again inside the writing transaction, so exactly one admin results."""
    await _check_first_run(request)
    rt = runtime_of(request)
    body, _ = await _form_or_json(request, back=f"/setup?error={quote(STALE_FORM)}")
    lock = getattr(request.app.state, "first_run_lock", None)
    if lock is None:
        lock = request.app.state.first_run_lock = asyncio.Lock()
    async with lock:
        await _check_first_run(request)
        if not rt.auth.setup_code_matches(str(body.get("code", ""))):
            rt.audit.record(actor_for_request(request), "user.setup.refused", target=str(body.get("username", ""))[:64],
                            detail="wrong first-run setup code")
            return RedirectResponse(f"/setup?error={quote(WRONG_SETUP_CODE)}", status_code=303)
        try:
            row = await asyncio.to_thread(rt.auth.add_first_admin, str(body.get("username", "")),
                                          str(body.get("password", "")))
        except BevForgeError as exc:
            if exc.code == ALREADY_SET_UP:
                raise
            return RedirectResponse(f"/setup?error={quote(exc.message)}", status_code=303)
    rt.audit.record(actor_for_request(request), "user.create", target=row.username, new={"role": "admin"},
                    detail="first run")
    return RedirectResponse("/login", status_code=303)


WRONG_SETUP_CODE = ("that is not the setup code: use the one the server printed on its console when it started "
                    "(it changes at every start until the first admin exists)")


async def _check_first_run(request: Request) -> None:
    rt = runtime_of(request)
    if not is_loopback(station_of(request)):
        raise Forbidden("the first-run page answers only on the machine itself", code=FORBIDDEN)
    if await rt.db.read(rt.auth.has_users):
        raise Conflict("users exist: sign in at /login", code=ALREADY_SET_UP)

