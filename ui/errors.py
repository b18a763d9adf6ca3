"""The screens' error translator: a typed error from the core becomes one message (the header's line).

The screens call the core directly (no HTTP in between), so they catch the same `BevForgeError`s
REST and `/ws` translate. Each screen that catches one hands it here instead of wording its own
toast: the operator reads the core's message, the same one an API client gets.
"""

from __future__ import annotations

from bevforge.errors import BevForgeError, Conflict, NotFound
from ui.feedback import say


def notify_error(what: str, exc: BevForgeError) -> None:
    """Tell the operator that `what` (the action, in their words) was refused, and why.

    A refusal caused by the present state (already acknowledged, already gone) is a warning: the
    screen redraws to show that state. A request that is wrong or not allowed is negative.
    """
    kind = "warning" if isinstance(exc, Conflict | NotFound) else "negative"
    say(f"{what} refused: {exc.message}", kind)
