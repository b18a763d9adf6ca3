"""Users, roles, sessions and API tokens: who may see and do what.

- Passwords are hashed with argon2 (never stored or logged in clear).
- Sessions are server-side; the browser holds an opaque HttpOnly cookie whose SHA-256 is stored.
- API tokens are random; only their SHA-256 is stored; they are shown once, at creation.
- `auth.mode: none` is for development on loopback only: every caller is an anonymous admin.
- Logging out or revoking a token calls the revocation listeners, which close that credential's
  live sockets.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import select

from bevforge.audit import AuditLog
from bevforge.config import AuthSettings, PlantConfig
from bevforge.domain import Actor, utcnow
from bevforge.errors import (
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
    BevForgeError,
    Conflict,
    Invalid,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from bevforge.messages import iso
from bevforge.permissions import ROLE_RANK, ROLES
from bevforge.store.tables import SessionRow, TokenRow, UserRow
from bevforge.store.writer import Database

log = logging.getLogger(__name__)

SESSION_COOKIE = "bevforge_session"
TOKEN_CACHE_S = 5.0
_hasher = PasswordHasher()


# Users, tokens and sign-in refuse with typed errors (`bevforge.errors`); the old name catches them all.
AuthError = BevForgeError


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


def check_role(role: str) -> str:
    if role not in ROLE_RANK:
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


@dataclass
class _CachedToken:
    row: TokenRow
    checked: float


class AuthService:
    def __init__(self, config: PlantConfig, db: Database, audit: AuditLog, host: str = "127.0.0.1") -> None:
        self.settings = config.auth
        self.node_ids = {n.id for n in config.nodes}
        self.db = db
        self.audit = audit
        self.mode = resolve_mode(config.auth, host)
        self._sessions: dict[str, _Session] = {}
        self._tokens: dict[str, _CachedToken] = {}
        self._users: dict[str, UserRow] = {}
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._locked_until: dict[tuple[str, str], tuple[float, float]] = {}
        self._revocation_listeners: dict[str, set[Callable[[str], None]]] = {}

    @property
    def required(self) -> bool:
        return self.mode == "required"

    def load(self) -> None:
        with self.db.session() as session:
            self._users = {u.username: u for u in session.exec(select(UserRow)).all()}
            rows = session.exec(select(SessionRow).where(SessionRow.ended_at == None)).all()  # noqa: E711
        now = time.time()
        for row in rows:
            self._sessions[row.id_hash] = _Session(row.username, row.station, row.created_at.timestamp(),
                                                   row.last_seen_at.timestamp())
        self._expire_sessions(now)

    # -- users (the CLI and the admin API) -------------------------------------------------

    def has_users(self) -> bool:
        with self.db.session() as session:
            return session.exec(select(UserRow).limit(1)).first() is not None

    def add_user(self, username: str, password: str, role: str, nodes: Iterable[str] | None = None) -> UserRow:
        check_username(username)
        check_password(password)
        check_role(role)
        node_list = self._check_nodes(nodes)
        now = utcnow()
        with self.db.session() as session:
            if session.get(UserRow, username) is not None:
                raise Conflict(f"user {username} exists", code=USER_EXISTS, field="username")
            row = UserRow(username=username, password_hash=_hasher.hash(password), role=role, nodes=node_list,
                          created_at=now, updated_at=now)
            session.add(row)
            session.commit()
            session.refresh(row)
        self._users[username] = row
        return row

    def update_user(self, username: str, *, password: str | None = None, role: str | None = None,
                    nodes: Iterable[str] | bool | None = False, disabled: bool | None = None) -> UserRow:
        with self.db.session() as session:
            row = session.get(UserRow, username)
            if row is None:
                raise NotFound(f"no user {username}", code=UNKNOWN_USER, field="username")
            if password is not None:
                row.password_hash = _hasher.hash(check_password(password))
            if role is not None:
                row.role = check_role(role)
            if nodes is not False:
                row.nodes = self._check_nodes(nodes)  # type: ignore[arg-type]
            if disabled is not None:
                row.disabled = disabled
            row.updated_at = utcnow()
            session.add(row)
            session.commit()
            session.refresh(row)
        self._users[username] = row
        if role is not None or disabled or nodes is not False or password is not None:
            self.end_user_sessions(username, keep=None)
        return row

    def list_users(self) -> list[dict[str, Any]]:
        with self.db.session() as session:
            return [{"username": u.username, "role": u.role, "nodes": u.nodes, "disabled": u.disabled,
                     "createdAt": iso(u.created_at)} for u in session.exec(select(UserRow)).all()]

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
        with self.db.session() as session:
            session.add(row)
            session.commit()
        return token_id, token

    def revoke_token(self, token_id: str) -> bool:
        with self.db.session() as session:
            row = session.get(TokenRow, token_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            session.add(row)
            session.commit()
            token_hash = row.token_hash
        self._tokens.pop(token_hash, None)
        self._revoked(f"token:{token_id}")
        return True

    def list_tokens(self) -> list[dict[str, Any]]:
        with self.db.session() as session:
            return [{"id": t.id, "name": t.name, "role": t.role, "nodes": t.nodes, "createdBy": t.created_by,
                     "createdAt": iso(t.created_at), "revokedAt": iso(t.revoked_at)}
                    for t in session.exec(select(TokenRow)).all()]

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
        with self.db.session() as session:
            user = session.get(UserRow, username) if isinstance(username, str) else None
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
        self._sessions[id_hash] = _Session(user.username, station, now.timestamp(), now.timestamp())
        with self.db.session() as session:
            session.add(SessionRow(id_hash=id_hash, username=user.username, station=station, created_at=now,
                                   last_seen_at=now))
            session.commit()
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

    def _end_session_row(self, id_hash: str) -> None:
        def end() -> None:
            with self.db.session() as s:
                row = s.get(SessionRow, id_hash)
                if row is not None and row.ended_at is None:
                    row.ended_at = utcnow()
                    s.add(row)
                    s.commit()

        self.db.write_later(end)

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
        token_hash = hash_secret(token)
        now = time.monotonic()
        cached = self._tokens.get(token_hash)
        if cached is None or now - cached.checked > TOKEN_CACHE_S:
            with self.db.session() as session:
                row = session.exec(select(TokenRow).where(TokenRow.token_hash == token_hash)).first()
            if row is None:
                self._tokens.pop(token_hash, None)
                return None
            cached = _CachedToken(row, now)
            self._tokens[token_hash] = cached
        row = cached.row
        if row.revoked_at is not None:
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
                    return self._actor(user, station, None)
        return None

    def authenticate(self, *, bearer: str | None, cookie: str | None, station: str) -> Actor | None:
        """The actor behind a request or socket, or None (anonymous). In mode none: anonymous admin."""
        actor = self.actor_from_token(bearer, station) or self.actor_from_session(cookie, station) \
            or self.station_actor(station)
        if actor is None and not self.required:
            return Actor(user="anonymous", station=station, role="admin")
        return actor

    # -- revocation: close what a credential opened -------------------------------------------------

    def on_revoke(self, credential: str, callback: Callable[[str], None]) -> Callable[[], None]:
        listeners = self._revocation_listeners.setdefault(credential, set())
        listeners.add(callback)
        return lambda: listeners.discard(callback)

    def _revoked(self, credential: str) -> None:
        for callback in list(self._revocation_listeners.pop(credential, ())):
            try:
                callback(credential)
            except Exception:
                log.exception("revocation listener failed")
