"""/metrics counts the screens (bevforge_ui_clients) with the count ui/ hands the app: a browser tab with a
live connection to its page."""

from __future__ import annotations

from nicegui.testing import User

import ui
from tests.ui.support import online, until


async def test_an_open_screen_is_counted_as_a_live_ui_client(user: User) -> None:
    before = ui.live_screens()
    await user.open("/")
    await online()
    await until(lambda: ui.live_screens() == before + 1)
