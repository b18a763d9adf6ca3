"""Helpers for the screen tests: the runtime main.py built, and waiting on what a screen shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui as ng
from nicegui.testing import User

from bevforge.auth import SESSION_COOKIE
from bevforge.errors import BevForgeError
from bevforge.runtime import Runtime
from drivers.sim.inprocess import SimulatedBrewhouse
from tests.support.server import wait_for
from ui import state

SETTLE_RETRIES = 60  # × 0.1 s: how long a screen may take to show a pushed change


def runtime() -> Runtime:
    return state.current()


def sim() -> SimulatedBrewhouse:
    return runtime().attachments["simulator"]


async def online() -> None:
    """Wait until every simulated device answered once (the plant's values are GOOD)."""
    await until(lambda: all(runtime().plant.device_online.values()))


async def until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    """`wait_for` with the screen tests' defaults.

    20 s is a hang guard for a loaded machine, not a timing check; polling every 20 ms is plenty
    for what a screen shows.
    """
    return await wait_for(predicate, timeout, interval=0.02)


def text_of(user: User, marker: str) -> str:
    """The text of the one element with this marker."""
    elements = list(user.find(marker=marker).elements)
    assert len(elements) == 1, f"{len(elements)} elements marked {marker}"
    element = elements[0]
    return element.text if isinstance(element, ng.label) else str(element.props.get("label", ""))


async def shows(user: User, marker: str, *texts: str, absent: tuple[str, ...] = (), timeout: float = 6.0) -> str:
    """Wait until the element marked `marker` is visible and its text holds `texts` (and none of `absent`)."""
    def check() -> str | None:
        elements = [e for e in user.find(marker=marker).elements if e.visible] if user._sees(None, None, marker, None) \
            else []
        if len(elements) != 1:
            return None
        text = text_of(user, marker)
        ok = all(t in text for t in texts) and not any(t in text for t in absent)
        return text if ok else None

    try:
        return await until(check, timeout)
    except AssertionError:
        found = text_of(user, marker) if user._sees(None, None, marker, None) else "<not visible>"
        raise AssertionError(f"{marker}: expected {texts} (not {absent}), screen shows {found!r}") from None


PASSWORD = "brew-day-2026"


def add_user(name: str, role: str, nodes: list[str] | None = None) -> None:
    try:
        runtime().auth.add_user(name, PASSWORD, role, nodes)
    except BevForgeError as exc:
        if exc.code != "user_exists":
            raise


def sign_in(user: User, name: str, role: str, nodes: list[str] | None = None) -> str:
    """Create the user if needed and sign in as the sign-in page would; this `user` sends the cookie."""
    add_user(name, role, nodes)
    cookie, _actor = runtime().auth.login(name, PASSWORD, "127.0.0.1")
    user.http_client.headers["cookie"] = f"{SESSION_COOKIE}={cookie}"
    return cookie


async def open_signed_in(user: User, name: str, role: str, path: str, nodes: list[str] | None = None) -> Runtime:
    """Sign in, open `path` and wait until the plant's values are live: the start of most screen tests."""
    sign_in(user, name, role, nodes)
    await user.open(path)
    await online()
    return runtime()


def record_navigation(user: User) -> list[str]:
    """Where the server sends this screen (the sign-in page is not a NiceGUI page, so do not follow)."""
    targets: list[str] = []
    user.navigate.to = lambda target, new_tab=False: targets.append(str(target))  # type: ignore[method-assign]
    return targets


def rows(user: User, marker: str) -> list[dict[str, Any]]:
    return list(next(iter(user.find(marker=marker).elements)).rows)


def visible_markers(user: User, prefix: str) -> set[str]:
    """Markers starting with `prefix` on visible elements."""
    found = set()
    for element in user.find(kind=ng.element).elements:
        if element.visible:
            found.update(m for m in element._markers if m.startswith(prefix))
    return found
