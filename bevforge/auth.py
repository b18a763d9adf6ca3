"""Users, roles, sessions and API tokens: who may see and do what.

- Passwords are hashed with argon2 (never stored or logged in clear).
- Sessions are server-side; the browser holds an opaque HttpOnly cookie whose SHA-256 is stored.
- API tokens are random; only their SHA-256 is stored; they are shown once, at creation.
- `auth.mode: none` is for development on loopback only: every caller is an anonymous admin.
- Logging out or revoking a token calls the revocation listeners, which close that credential's
  live sockets.
- Revocation is shared through the database: every write to a user or token also appends an
  `auth_changes` row in the same transaction, and a running server polls that table every
  REVOCATION_POLL_S (in a worker thread). So `python main.py user passwd/disable` and `token revoke`,
  which run in another process, end that user's sessions, cookies, `/ws` sockets and SSE streams on
  the running server within a second; the session rows they end stay ended across a restart.
- Every write goes through the store's single writer thread (the SQL is `bevforge.store.auth_rows`);
  requests never query the database on the event loop: users, open sessions and active tokens are
  held in memory and kept current by that poll (a token this process has not seen triggers one
  poll at once, for a token just created by the CLI).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bevforge.audit import AuditLog
from bevforge.config import AuthSettings, PlantConfig
from bevforge.domain import Actor, utcnow
from bevforge.errors import (
    ALREADY_SET_UP,
    BAD_CREDENTIALS,
    INVALID_NAME,
    INVALID_PASSWORD,
    INVALID_ROLE,
    INVALID_USERNAME,
    TOO_MANY_ATTEMPTS,
    UNKNOWN_NODE,
    UNKNOWN_USER,
    USER_EXISTS,
    WEAK_PASSWORD,
    Conflict,
    Invalid,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from bevforge.messages import iso
from bevforge.permissions import ROLE_RANK as ROLE_RANK  # re-exported for callers that import it from here
from bevforge.permissions import ROLES, is_role
from bevforge.store import auth_rows
from bevforge.store.tables import AuthChangeRow, SessionRow, TokenRow, UserRow
from bevforge.store.writer import Database
from bevforge.tasks import stop_task

log = logging.getLogger(__name__)

SESSION_COOKIE = "bevforge_session"
CSRF_FIELD = "csrf"  # the form field (and X-CSRF-Token header) that carries csrf_token()
REVOCATION_POLL_S = 0.25  # how often a running server reads auth_changes (the CLI's revocations)
_hasher = PasswordHasher()


class AuthModeRefused(Exception):
    """auth.mode none on an address other people can reach."""


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_mode(settings: AuthSettings, host: str) -> str:
    """none on loopback, required elsewhere; none on a reachable address is refused."""
    mode = settings.mode or ("none" if is_loopback(host) else "required")
    if mode == "none" and not is_loopback(host):
        raise AuthModeRefused(
            f"auth.mode is 'none' but the server would listen on {host}: anyone on the network could "
            "command the plant. Set auth.mode: required in config.yaml (and create users with "
            "'python main.py user add NAME --role admin'), or listen on 127.0.0.1."
        )
    return mode


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def csrf_token(cookie: str) -> str:
    """The per-session CSRF token (api/csrf.py): derived from the session cookie, which another site never
    learns. Derived rather than stored, so it needs no table, survives a restart with its session, and
    any page drawn for a request that carries the cookie can be given it."""
    return hashlib.sha256(b"bevforge-csrf:" + cookie.encode()).hexdigest()


def csrf_token_ok(cookie: str | None, presented: str | None) -> bool:
    if not cookie or not presented:
        return False
    return hmac.compare_digest(csrf_token(cookie), presented)


def check_role(role: str) -> str:
    if not is_role(role):
        raise Invalid(f"role must be one of {', '.join(ROLES)}", code=INVALID_ROLE, field="role")
    return role


def check_username(name: str) -> str:
    if not isinstance(name, str) or not (1 <= len(name) <= 64) or not name.replace("_", "").replace("-", "") \
            .replace(".", "").isalnum():
        raise Invalid("username: 1–64 letters, digits, '.', '_' or '-'", code=INVALID_USERNAME, field="username")
    return name


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < 8:
        raise Invalid("password must be at least 8 characters", code=WEAK_PASSWORD, field="password")
    if len(password) > 1024:
        raise Invalid("password too long", code=INVALID_PASSWORD, field="password")
    return password


@dataclass
class _Session:
    username: str
    station: str
    created: float
    last_seen: float


def _epoch(when: datetime) -> float:
    """SQLite hands datetimes back without a zone; they were stored as UTC."""
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()


class AuthService:
    def __init__(self, config: PlantConfig, db: Database, audit: AuditLog, host: str = "127.0.0.1") -> None:
        self.settings = config.auth
        self.node_ids = {n.id for n in config.nodes}
        self.db = db
        self.audit = audit
        self.mode = resolve_mode(config.auth, host)
        self._sessions: dict[str, _Session] = {}
        self._tokens: dict[str, TokenRow] = {}  # token hash → active token row (kept current by the poll)
        self._users: dict[str, UserRow] = {}
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._locked_until: dict[tuple[str, str], tuple[float, float]] = {}
        self._revocation_listeners: dict[str, set[Callable[[str], None]]] = {}
        self._last_change = 0
        self.setup_code: str | None = None  # while no user exists: the first-run page's one-time code
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Task[None] | None = None

    @property
    def required(self) -> bool:
        return self.mode == "required"

    def load(self) -> None:
        users, rows, tokens, self._last_change = auth_rows.load(self.db)
        self._users = {u.username: u for u in users}
        self.setup_code = None if users else new_setup_code()
        self._tokens = {t.token_hash: t for t in tokens}
        now = time.time()
        for row in rows:
            self._sessions[row.id_hash] = _Session(row.username, row.station, _epoch(row.created_at),
                                                   _epoch(row.last_seen_at))
        self._expire_sessions(now)

    # -- the shared revocation state: poll auth_changes ----------------------------------------------

    def start(self) -> None:
        """Start polling auth_changes (call after load(), on the event loop)."""
        self._loop = asyncio.get_running_loop()
        self._poll_task = self._loop.create_task(self._poll(), name="auth-changes-poll")

    async def stop(self) -> None:
        task, self._poll_task = self._poll_task, None
        await stop_task(task)

    async def _poll(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # a locked or failing store must not end revocation for good: try again
                log.exception("reading auth_changes failed")
            await asyncio.sleep(REVOCATION_POLL_S)

    async def refresh(self) -> None:
        """Apply every auth change made since the last look (by this process or another). Concurrent
        callers share one read."""
        task = self._refreshing
        if task is None or task.done():
            task = self._refreshing = asyncio.get_running_loop().create_task(self._refresh_once())
        await asyncio.shield(task)

    async def _refresh_once(self) -> None:
        changes, users, tokens = await self.db.read(self._read_changes, self._last_change)
        if not changes:
            return
        for name, user in users.items():
            if user is None:
                self._users.pop(name, None)
            else:
                self._users[name] = user
        for token_id, token in tokens.items():
            for token_hash, known in list(self._tokens.items()):
                if known.id == token_id:
                    self._tokens.pop(token_hash, None)
            if token is not None and token.revoked_at is None:
                self._tokens[token.token_hash] = token
            else:
                self._revoked(f"token:{token_id}")
        for change in changes:
            if change.kind == "user" and change.ends_sessions:
                self._end_local_sessions(change.key, before=_epoch(change.time))
        self._last_change = max(c.id or 0 for c in changes)

    def _read_changes(self, after: int) -> tuple[list[AuthChangeRow], dict[str, UserRow | None],
                                                 dict[str, TokenRow | None]]:
        return auth_rows.changes_after(self.db, after)

    async def refresh_if_unknown(self, secret: str | None) -> None:
        """A token this process has never seen may have been created by the CLI a moment ago: look now."""
        if secret and self._poll_task is not None:
            secret_hash = hash_secret(secret)
            if secret_hash not in self._tokens and secret_hash not in self._sessions:
                await self.refresh()

    # -- users (the CLI and the admin API) -------------------------------------------------

    def has_users(self) -> bool:
        return auth_rows.has_users(self.db)

    def add_user(self, username: str, password: str, role: str, nodes: Iterable[str] | None = None) -> UserRow:
        check_username(username)
        check_password(password)
        check_role(role)
        node_list = self._check_nodes(nodes)
        now = utcnow()
        row = UserRow(username=username, password_hash=_hasher.hash(password), role=role, nodes=node_list,
                      created_at=now, updated_at=now)

        if self.db.write_blocking(auth_rows.insert_user, self.db, row, now) is None:
            raise Conflict(f"user {username} exists", code=USER_EXISTS, field="username")
        self._users[username] = row
        return row

    def setup_code_matches(self, given: str) -> bool:
        """The first-run page's code, as printed on the server's console (case, spaces and dashes aside)."""
        code = self.setup_code
        return code is not None and hmac.compare_digest(_plain_code(given).encode(), _plain_code(code).encode())

    def add_first_admin(self, username: str, password: str) -> UserRow:
        """The first-run admin: created only if no user exists, checked again inside the writing
        transaction, so concurrent first-run requests make exactly one admin (the rest: 409)."""
        check_username(username)
        check_password(password)
        now = utcnow()
        row = UserRow(username=username, password_hash=_hasher.hash(password), role="admin", nodes=None,
                      created_at=now, updated_at=now)

        if self.db.write_blocking(auth_rows.insert_first_user, self.db, row, now) is None:
            raise Conflict("users exist: sign in at /login", code=ALREADY_SET_UP)
        self._users[username] = row
        self.setup_code = None  # used: a second first run is impossible anyway
        return row

    def update_user(self, username: str, *, password: str | None = None, role: str | None = None,
                    nodes: Iterable[str] | bool | None = False, disabled: bool | None = None) -> UserRow:
        """Change a user (through the store's writer). A new password, role or node list, or disabling,
        ends every session of that user: here at once, in other processes through auth_changes, and
        after a restart because the session rows are ended in the same transaction."""
        new_hash = _hasher.hash(check_password(password)) if password is not None else None
        if role is not None:
            check_role(role)
        node_list = self._check_nodes(nodes) if nodes is not False else None  # type: ignore[arg-type]
        ends = role is not None or bool(disabled) or nodes is not False or password is not None
        now = utcnow()

        def change(row: UserRow) -> None:
            if new_hash is not None:
                row.password_hash = new_hash
            if role is not None:
                row.role = role
            if nodes is not False:
                row.nodes = node_list
            if disabled is not None:
                row.disabled = disabled

        row = self.db.write_blocking(auth_rows.update_user, self.db, username, change, ends, now)
        if row is None:
            raise NotFound(f"no user {username}", code=UNKNOWN_USER, field="username")
        self._users[username] = row
        if ends:
            self._end_local_sessions(username, before=now.timestamp())
        return row

    def list_users(self) -> list[dict[str, Any]]:
        return [{"username": u.username, "role": u.role, "nodes": u.nodes, "disabled": u.disabled,
                 "createdAt": iso(u.created_at)} for u in auth_rows.users(self.db)]

    def _check_nodes(self, nodes: Iterable[str] | None) -> list[str] | None:
        if nodes is None:
            return None
        node_list = [n for n in nodes if n]
        unknown = [n for n in node_list if n not in self.node_ids]
        if unknown:
            raise Invalid(f"unknown node(s): {', '.join(unknown)}", code=UNKNOWN_NODE, field="nodes")
        return node_list

    # -- tokens ------------------------------------------------------------------------------

    def create_token(self, name: str, role: str, nodes: Iterable[str] | None, created_by: str) -> tuple[str, str]:
        """Return (token id, token). The token is not stored and cannot be shown again."""
        check_role(role)
        if not name or len(name) > 64:
            raise Invalid("name: 1–64 characters", code=INVALID_NAME, field="name")
        token_id = secrets.token_hex(6)
        token = f"bf_{token_id}_{secrets.token_urlsafe(32)}"
        row = TokenRow(id=token_id, name=name, token_hash=hash_secret(token), role=role,
                       nodes=self._check_nodes(nodes), created_by=created_by, created_at=utcnow())

        self.db.write_blocking(auth_rows.insert_token, self.db, row)
        self._tokens[row.token_hash] = row
        return token_id, token

    def revoke_token(self, token_id: str) -> bool:
        token_hash = self.db.write_blocking(auth_rows.revoke_token, self.db, token_id)
        if token_hash is None:
            return False
        self._tokens.pop(token_hash, None)
        self._revoked(f"token:{token_id}")
        return True

    def list_tokens(self) -> list[dict[str, Any]]:
        return [{"id": t.id, "name": t.name, "role": t.role, "nodes": t.nodes, "createdBy": t.created_by,
                 "createdAt": iso(t.created_at), "revokedAt": iso(t.revoked_at)}
                for t in auth_rows.tokens(self.db)]

    # -- authentication --------------------------------------------------------------------------

    def _actor(self, user: UserRow, station: str, credential: str | None) -> Actor:
        nodes = frozenset(user.nodes) if user.nodes is not None else None
        return Actor(user=user.username, station=station, role=user.role, nodes=nodes, credential=credential)

    def login_throttled(self, username: str, station: str) -> float:
        """Seconds until another attempt is allowed for this user or address (0: allowed)."""
        now = time.monotonic()
        wait = 0.0
        for key in (("user", username), ("addr", station)):
            until, _ = self._locked_until.get(key, (0.0, 0.0))
            wait = max(wait, until - now)
        return wait

    def _failed(self, username: str, station: str) -> None:
        now = time.monotonic()
        for key in (("user", username), ("addr", station)):
            window = self._failures.setdefault(key, deque())
            window.append(now)
            while window and now - window[0] > self.settings.login_window_s:
                window.popleft()
            if len(window) >= self.settings.login_max_failures:
                _, last = self._locked_until.get(key, (0.0, 0.0))
                lockout = min(last * 2, 3600.0) if last else self.settings.login_lockout_s
                self._locked_until[key] = (now + lockout, lockout)
                window.clear()

    def login(self, username: str, password: str, station: str) -> tuple[str, Actor]:
        """Check a password (slow: argon2; call from a worker thread). Return (cookie value, actor)."""
        wait = self.login_throttled(username, station)
        if wait > 0:
            self.audit.record(Actor(user=username, station=station, role="-"), "auth.login", result="throttled")
            raise TooManyRequests(f"too many failed sign-ins: try again in {wait:.0f} s", code=TOO_MANY_ATTEMPTS)
        user = auth_rows.user(self.db, username) if isinstance(username, str) else None
        ok = False
        if user is not None and not user.disabled:
            try:
                ok = _hasher.verify(user.password_hash, password)
            except (VerificationError, InvalidHashError):
                ok = False
        else:
            _hasher.hash("timing-equaliser")  # same cost whether or not the user exists
        if not ok or user is None:
            self._failed(username, station)
            self.audit.record(Actor(user=str(username)[:64], station=station, role="-"), "auth.login", result="failed")
            raise Unauthorized("unknown user or wrong password", code=BAD_CREDENTIALS)
        self._users[user.username] = user
        cookie = secrets.token_urlsafe(32)
        id_hash = hash_secret(cookie)
        now = utcnow()
        row = SessionRow(id_hash=id_hash, username=user.username, station=station, created_at=now, last_seen_at=now)

        # stored first: a refused write (store fault) leaves no session behind
        self.db.write_blocking(auth_rows.insert_session, self.db, row)
        self._sessions[id_hash] = _Session(user.username, station, now.timestamp(), now.timestamp())
        actor = self._actor(user, station, f"session:{id_hash}")
        self.audit.record(actor, "auth.login")
        return cookie, actor

    def logout(self, cookie: str | None, actor: Actor | None = None) -> None:
        if not cookie:
            return
        id_hash = hash_secret(cookie)
        session = self._sessions.pop(id_hash, None)
        if session is None:
            return
        self._end_session_row(id_hash)
        self.audit.record(actor or Actor(user=session.username, station=session.station, role="-"), "auth.logout")
        self._revoked(f"session:{id_hash}")

    def end_user_sessions(self, username: str, keep: str | None) -> None:
        for id_hash, session in list(self._sessions.items()):
            if session.username == username and id_hash != keep:
                self._sessions.pop(id_hash, None)
                self._end_session_row(id_hash)
                self._revoked(f"session:{id_hash}")

    def _end_local_sessions(self, username: str, before: float) -> None:
        """Forget this user's sessions opened before `before` (their rows are already ended) and close
        what they opened; a kiosk station signed in as this user has its sockets closed too."""
        for id_hash, session in list(self._sessions.items()):
            if session.username == username and session.created <= before:
                self._sessions.pop(id_hash, None)
                self._revoked(f"session:{id_hash}")
        for kiosk in self.settings.stations:
            if kiosk.user == username:
                self._revoked(f"station:{kiosk.address}")

    def _end_session_row(self, id_hash: str) -> None:
        self.db.write_later(auth_rows.end_session, self.db, id_hash)

    def _expire_sessions(self, now: float) -> None:
        idle = self.settings.session_idle_minutes * 60
        longest = self.settings.session_max_hours * 3600
        for id_hash, session in list(self._sessions.items()):
            if now - session.last_seen > idle or now - session.created > longest:
                self._sessions.pop(id_hash, None)
                self._end_session_row(id_hash)
                self._revoked(f"session:{id_hash}")

    def expire_idle_sessions(self) -> None:
        """End sessions past their idle or maximum time now, not only when next used.

        A screen left open keeps no session alive by itself; the screens call this periodically so an
        idle session's open pages are sent back to sign-in (through the revocation listeners).
        """
        self._expire_sessions(time.time())

    def actor_from_session(self, cookie: str | None, station: str) -> Actor | None:
        if not cookie:
            return None
        id_hash = hash_secret(cookie)
        session = self._sessions.get(id_hash)
        if session is None:
            return None
        now = time.time()
        self._expire_sessions(now)
        if id_hash not in self._sessions:
            return None
        user = self._users.get(session.username)
        if user is None or user.disabled:
            return None
        session.last_seen = now
        return self._actor(user, station, f"session:{id_hash}")

    def actor_from_token(self, token: str | None, station: str) -> Actor | None:
        if not token:
            return None
        row = self._tokens.get(hash_secret(token))  # memory only: no query on the event loop
        if row is None or row.revoked_at is not None:
            return None
        nodes = frozenset(row.nodes) if row.nodes is not None else None
        return Actor(user=f"token:{row.name}", station=station, role=row.role, nodes=nodes,
                     credential=f"token:{row.id}")

    def station_actor(self, station: str) -> Actor | None:
        """A configured kiosk station signs in as its fixed user, from its own address only."""
        for kiosk in self.settings.stations:
            if kiosk.address == station:
                user = self._users.get(kiosk.user)
                if user is not None and not user.disabled:
                    return self._actor(user, station, f"station:{station}")
        return None

    def authenticate(self, *, bearer: str | None, cookie: str | None, station: str) -> Actor | None:
        """The actor behind a request or socket, or None (anonymous). In mode none: anonymous admin."""
        actor = self.actor_from_token(bearer, station) or self.actor_from_session(cookie, station) \
            or self.station_actor(station)
        if actor is None and not self.required:
            return Actor(user="anonymous", station=station, role="admin")
        return actor

    async def authenticate_async(self, *, bearer: str | None, cookie: str | None, station: str) -> Actor | None:
        """`authenticate`, after one look at auth_changes if the bearer token is new to this process."""
        await self.refresh_if_unknown(bearer)
        return self.authenticate(bearer=bearer, cookie=cookie, station=station)

    # -- revocation: close what a credential opened -------------------------------------------------

    def on_revoke(self, credential: str, callback: Callable[[str], None]) -> Callable[[], None]:
        listeners = self._revocation_listeners.setdefault(credential, set())
        listeners.add(callback)
        return lambda: listeners.discard(callback)

    def _revoked(self, credential: str) -> None:
        """Call the credential's listeners on the event loop (a worker thread's write hands them over)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                loop.call_soon_threadsafe(self._fire, credential)
                return
        self._fire(credential)

    def _fire(self, credential: str) -> None:
        for callback in list(self._revocation_listeners.pop(credential, ())):
            try:
                callback(credential)
            except Exception:
                log.exception("revocation listener failed")


SETUP_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I/L to misread off a console


def new_setup_code() -> str:
    """A one-time first-run code, e.g. `K7QM-4XPD-9BWE` (60 bits: not guessable through the page)."""
    raw = "".join(secrets.choice(SETUP_CODE_ALPHABET) for _ in range(12))
    return "-".join(raw[i:i + 4] for i in range(0, 12, 4))


def _plain_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").upper()
