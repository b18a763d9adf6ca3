"""Helpers for the screen tests: the runtime main.py built, and waiting on what a screen shows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from nicegui import ui as ng
from nicegui.testing import User

from bevforge.runtime import Runtime
from drivers.sim.inprocess import SimulatedBrewhouse
from ui import state

SETTLE_RETRIES = 60  # × 0.1 s: how long a screen may take to show a pushed change


def runtime() -> Runtime:
    return state.current()


def sim() -> SimulatedBrewhouse:
    return runtime().attachments["simulator"]


async def online() -> None:
    """Wait until every simulated device answered once (the plant's values are GOOD)."""
    await until(lambda: all(runtime().plant.device_online.values()))


async def until(predicate: Callable[[], Any], timeout: float = 6.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError("condition not reached within timeout")
        await asyncio.sleep(0.02)


def text_of(user: User, marker: str) -> str:
    """The text of the one element with this marker."""
    elements = list(user.find(marker=marker).elements)
    assert len(elements) == 1, f"{len(elements)} elements marked {marker}"
    element = elements[0]
    return element.text if isinstance(element, ng.label) else str(element.props.get("label", ""))


async def shows(user: User, marker: str, *texts: str, absent: tuple[str, ...] = ()) -> str:
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
        return await until(check)
    except AssertionError:
        found = text_of(user, marker) if user._sees(None, None, marker, None) else "<not visible>"
        raise AssertionError(f"{marker}: expected {texts} (not {absent}), screen shows {found!r}") from None
