"""bevforge/messages.py: every frame's exact fields, checked against the examples in docs/protocol.md.

The docs are the requirement: each ```json example there is parsed, and the builder of that frame
type must produce exactly its fields (`seq` is added by the bus, `snapshot` by `messages.snapshot`).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bevforge import messages
from bevforge.alarms.points import Alarm
from bevforge.alarms.states import PointState
from bevforge.commands.record import Command
from bevforge.config import Endpoint
from bevforge.domain import CommandStatus, EndpointState, Quality, Severity
from bevforge.errors import INVALID_VALUE, Invalid

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
AT = datetime(2025, 12, 27, 6, 0, 1, 250_000, tzinfo=UTC)


def documented_frames() -> dict[str, dict[str, Any]]:
    """Every frame example of docs/protocol.md, by frame type (the first example of each type);
    JSON examples without a `type` are request bodies (e.g. an ingest batch), not frames."""
    frames: dict[str, dict[str, Any]] = {}
    for block in re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S):
        frame = json.loads(block)
        if "type" in frame:
            frames.setdefault(frame["type"], frame)
    return frames


DOCUMENTED = documented_frames()


def endpoint() -> Endpoint:
    return Endpoint.model_validate({"id": 59, "name": "hlt_temperature", "node": "HLT", "device": "io",
                                    "kind": "temperature", "unit": "°C", "data_type": "float"})


def command(status: CommandStatus = CommandStatus.SUCCEEDED) -> Command:
    return Command(id="uuid-123", endpoint_id=23, requested_value=True, status=status, user="anonymous",
                   station="127.0.0.1", origin="ws", created_at=AT, updated_at=AT, completed_at=AT,
                   actual_value=True)


def alarm() -> Alarm:
    return Alarm(id=42, rule_id="hlt_hi", kind="HI", severity=Severity.CRITICAL, message="HLT over 99 °C",
                 endpoint_id=10, node="HLT", value=99.4, raised_at=AT, point=PointState(active=True, acked=False))


def test_the_docs_show_every_live_frame() -> None:
    assert {"connected", "subscribed", "telemetry", "command_status", "alarm", "ping", "error"} <= set(DOCUMENTED)


def test_telemetry_has_exactly_the_documented_fields() -> None:
    state = EndpointState(59, value=180.5, quality=Quality.GOOD, server_time=AT, error=None)
    frame = messages.telemetry(endpoint(), state)
    assert set(frame) == set(DOCUMENTED["telemetry"]) - {"seq"}
    assert frame == {"type": "telemetry", "endpointId": 59, "value": 180.5, "timestamp": "2025-12-27T06:00:01.250Z",
                     "quality": "good", "unit": "°C"}


def test_telemetry_says_why_a_value_is_not_good() -> None:
    state = EndpointState(59, value=180.5, quality=Quality.BAD, server_time=AT, error="device offline")
    frame = messages.telemetry(endpoint(), state)
    assert set(frame) == set(DOCUMENTED["telemetry"]) - {"seq"} | {"error"}
    assert frame["error"] == "device offline"


def test_command_status_has_exactly_the_documented_fields() -> None:
    frame = messages.command_status(command())
    assert set(frame) == set(DOCUMENTED["command_status"]) - {"seq"}
    assert frame["completedAt"] == "2025-12-27T06:00:01.250Z" and frame["status"] == "succeeded"


def test_alarm_frame_holds_the_documented_fields_and_the_occurrence_view() -> None:
    frame = messages.alarm(alarm(), "raised")
    assert set(DOCUMENTED["alarm"]) - {"seq"} <= set(frame)
    assert set(frame) == {"type", "event"} | set(messages.alarm_view(alarm()))
    assert frame["event"] == "raised" and frame["state"] == "unacknowledged"
    assert frame["timestamp"] == frame["raisedAt"] == "2025-12-27T06:00:01.250Z"


def test_replies_have_exactly_the_documented_fields() -> None:
    assert set(messages.connected("client-1", True, 20)) == set(DOCUMENTED["connected"])
    assert set(messages.ping()) == set(DOCUMENTED["ping"])
    assert set(messages.pong()) == {"type", "timestamp"} and messages.pong()["type"] == "pong"
    subscribed = messages.subscription(messages.SUBSCRIBED, "telemetry", 3, endpointIds=[59, 60, 61])
    assert subscribed == DOCUMENTED["subscribed"]
    assert messages.authenticated_as("brewer", "operator") == {"type": "authenticated", "user": "brewer",
                                                               "role": "operator"}
    assert set(messages.resync("gone", 7)) == {"type", "reason", "seq"}


def test_error_frame_is_the_documented_one_and_carries_extra_fields() -> None:
    documented = DOCUMENTED["error"]
    exc = Invalid(documented["message"], code=documented["code"], field=documented["field"],
                  commandId=documented["commandId"])
    assert messages.error_of(exc) == documented
    assert messages.error_of(Invalid("bad", code=INVALID_VALUE)) == {"type": "error", "code": INVALID_VALUE,
                                                                     "message": "bad"}


def test_a_snapshot_is_the_live_frame_plus_its_position() -> None:
    live = messages.command_status(command())
    snap = messages.snapshot(messages.command_status(command()), 99)
    assert snap == live | {"seq": 99, "snapshot": True}


def test_the_screen_reads_a_telemetry_frame_back_as_the_state_it_reports() -> None:
    state = EndpointState(59, value=61.5, quality=Quality.UNCERTAIN, server_time=AT, error="stale")
    back = messages.state_of(messages.telemetry(endpoint(), state))
    assert (back.endpoint_id, back.value, back.quality, back.server_time, back.error) == (
        59, 61.5, Quality.UNCERTAIN, AT.replace(microsecond=250_000), "stale")


def test_rest_views_share_the_frames_timestamps() -> None:
    view = messages.command_view(command())
    assert view["completedAt"] == messages.command_status(command())["completedAt"]
    state = EndpointState(59, value=180.5, quality=Quality.BAD, server_time=AT, error="offline")
    endpoint_view = messages.endpoint_view(endpoint(), state)
    assert endpoint_view["timestamp"] == messages.telemetry(endpoint(), state)["timestamp"]
    assert endpoint_view["value"] is None and endpoint_view["lastValue"] == 180.5  # a BAD value is not shown


@pytest.mark.parametrize(("ts", "text"), [
    (AT, "2025-12-27T06:00:01.250Z"),
    (AT.replace(tzinfo=None), "2025-12-27T06:00:01.250Z"),  # naive: taken as UTC
    (AT.astimezone(timezone(timedelta(hours=2))), "2025-12-27T06:00:01.250Z"),
    (None, None),
])
def test_iso_is_utc_with_milliseconds_and_a_z(ts: datetime | None, text: str | None) -> None:
    assert messages.iso(ts) == text
    assert messages.from_iso(text) == (None if ts is None else AT)


def test_iso_epoch_agrees_with_iso() -> None:
    assert messages.iso_epoch(AT.timestamp()) == messages.iso(AT) == "2025-12-27T06:00:01.250Z"
    assert messages.iso_epoch(None) is None


def test_iso_answers_each_time_afresh_when_the_time_changes() -> None:
    """iso() keeps its last answer for the same time object (a batch shares one): never for another time."""
    later = AT + timedelta(seconds=1)
    far = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))  # no UTC form: None, and not kept wrongly
    answers = [messages.iso(t) for t in (AT, AT, later, AT, far, far, later)]
    assert answers == ["2025-12-27T06:00:01.250Z"] * 2 + ["2025-12-27T06:00:02.250Z", "2025-12-27T06:00:01.250Z",
                                                          None, None, "2025-12-27T06:00:02.250Z"]


def test_controller_frame_has_exactly_the_documented_fields() -> None:
    from bevforge.domain import ControllerStatus

    tuning = {"kp": 12.0, "ki": 0.05, "kd": 0.0, "derivative_filter_s": 5.0, "out_min": 0.0, "out_max": 100.0,
              "ramp_c_per_min": 1.0, "boil_threshold_c": None, "boil_output_pct": 100.0}
    status = ControllerStatus(id="mlt_rims", name="Mash temperature (RIMS)", node="MLT", kind="pid", mode="auto",
                              state="regulating", reason="set auto by olga", pv=64.8, setpoint=65.0,
                              setpoint_id=140, output=42.5, outputs={40: True}, manual_output=0.0, tuning=tuning,
                              unit="°C", time=AT)
    frame = messages.controller(status)
    documented = DOCUMENTED["controller"]
    assert set(frame) == set(documented) - {"seq"}
    assert frame["tuning"] == documented["tuning"] and frame["outputs"] == {"40": True}
    assert frame["timestamp"] == "2025-12-27T06:00:01.250Z"


def test_program_frame_has_exactly_the_documented_fields() -> None:
    from bevforge.domain import ProgramPrompt, ProgramStatus

    status = ProgramStatus(unit="brewhouse", name="Brewhouse", kind="brewhouse", state="running",
                           template_id="single_infusion", template_name="Single infusion mash and 60 min boil",
                           steps=[("Strike water", "heat"), ("Mash in", "prompt"), ("Mash rest", "hold")],
                           step_index=1, step_status="waiting for the operator", remaining_s=None,
                           step_started_at=AT, prompts=[ProgramPrompt(1, "confirm", "Add the grain and stir", AT,
                                                                      False)],
                           message=None, started_at=AT, started_by="olga", ended_at=None,
                           controllers=["mlt_rims", "bk_element"], time=AT)
    frame = messages.program(status)
    documented = DOCUMENTED["program"]
    assert set(frame) == set(documented) - {"seq"}
    assert set(frame["step"]) == set(documented["step"]) and set(frame["prompts"][0]) == set(
        documented["prompts"][0])
    assert frame["steps"] == documented["steps"] and frame["step"]["index"] == 1
    idle = messages.program(ProgramStatus(
        unit="fv1", name="FV1", kind="fermenter", state="idle", template_id=None, template_name=None, steps=[],
        step_index=None, step_status=None, remaining_s=None, step_started_at=None, prompts=[], message=None,
        started_at=None, started_by=None, ended_at=None, controllers=["fv1_temperature"], time=AT))
    assert idle["step"] is None and idle["steps"] == [] and idle["timestamp"] == "2025-12-27T06:00:01.250Z"
