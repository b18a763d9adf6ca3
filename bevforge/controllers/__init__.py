"""The control loops of issue 14: each configured controller holds its vessel at its setpoint.

- `loop` — one controller's decisions (mode, state, maths from `bevforge.control`, safety guards), no I/O;
- `service` — `ControllerService`: one task per controller on the process clock, outputs sent as
  commands through the command service, alarms, the power budget, persistence, bus frames.

Core only: nothing here imports the API, the screens or the drivers.
"""

from bevforge.controllers.loop import ControllerMode, ControllerState, Loop
from bevforge.controllers.service import ORIGIN, ControllerService, controller_actor

__all__ = ["ORIGIN", "ControllerMode", "ControllerService", "ControllerState", "Loop", "controller_actor"]
