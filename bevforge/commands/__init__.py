"""Commands: validate → interlocks → queued (or blocked) → sent → acked → succeeded | failed.

The parts, one job each: `record` (the `Command`, its stored row and lookups), `runner` (the
per-output workers that talk to the drivers) and `service` (the front door and interlock trips,
composed of the other two). Callers import from here.
"""

from __future__ import annotations

from bevforge.commands.record import Command, CommandLog, audit_value, shown_value
from bevforge.commands.runner import CommandRunner
from bevforge.commands.service import MAX_COMMAND_ID, CommandService

__all__ = [
    "MAX_COMMAND_ID",
    "Command",
    "CommandLog",
    "CommandRunner",
    "CommandService",
    "audit_value",
    "shown_value",
]
