"""The parts behind /metrics that need no server: the tallies the hot paths keep, a command's outcome label,
who may scrape (bevforge/permissions.py), and the `metrics:` config section with file:line errors."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_network

import pytest

from bevforge import permissions
from bevforge.commands.record import Command
from bevforge.commands.runner import OUTCOMES, outcome_of
from bevforge.config import ConfigError, parse_config
from bevforge.domain import Actor, CommandStatus, utcnow
from bevforge.errors import Forbidden
from bevforge.tallies import Timings
from tests.unit.test_config import MINIMAL


def test_timings_count_each_duration_in_the_first_bucket_that_holds_it() -> None:
    timings = Timings((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 7.0):  # a bound is inclusive, as Prometheus' `le`
        timings.observe(seconds)
    assert timings.cumulative() == [(0.1, 2), (1.0, 4), (float("inf"), 5)]
    assert timings.count == 5 and timings.total == pytest.approx(8.65)


def command(status: CommandStatus, error: str | None = None) -> Command:
    now = utcnow()
    return Command(id="c", endpoint_id=1, requested_value=1, status=status, user="u", station="s", origin="rest",
                   created_at=now - timedelta(seconds=1), updated_at=now, error=error)


@pytest.mark.parametrize(("status", "error", "outcome"), [
    (CommandStatus.SUCCEEDED, None, "succeeded"),
    (CommandStatus.BLOCKED, "blocked: BK level", "blocked"),
    (CommandStatus.FAILED, "blocked before sending: device hlt is offline", "blocked"),
    (CommandStatus.FAILED, "timeout: device did not answer the write within 0.5 s", "timeout"),
    (CommandStatus.FAILED, "timeout: no readback of hlt_setpoint within 1 s", "timeout"),
    (CommandStatus.FAILED, "mismatch: readback 75, expected 70 after 1 s", "mismatch"),
    (CommandStatus.FAILED, "device error: exception 04", "device_error"),
    (CommandStatus.FAILED, "expired: waited 12.0 s before it could be sent", "expired"),
    (CommandStatus.FAILED, "superseded by x", "superseded"),
    (CommandStatus.FAILED, "interrupted by shutdown", "interrupted"),
    (CommandStatus.FAILED, "no driver for device x", "failed"),
])
def test_a_command_outcome_is_read_from_its_status_and_the_runner_s_own_words(
        status: CommandStatus, error: str | None, outcome: str) -> None:
    assert outcome_of(command(status, error)) == outcome
    assert outcome in OUTCOMES


LOCAL = [ip_network("127.0.0.0/8"), ip_network("::1/128")]


@pytest.mark.parametrize(("station", "allowed"), [
    ("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True),  # a dual-stack socket's IPv4 peer
    ("192.168.1.20", False), ("unknown", False), ("", False),
])
def test_the_allow_list_matches_the_peer_address(station: str, allowed: bool) -> None:
    assert permissions.scrape_address_allowed(station, LOCAL) is allowed
    assert permissions.scrape_address_allowed("10.1.2.3", [ip_network("10.0.0.0/8")])


def test_a_scraping_credential_needs_the_role_and_every_node() -> None:
    assert permissions.require_metrics_reader(Actor(user="p", role="viewer", nodes=None), "viewer")
    with pytest.raises(Forbidden):
        permissions.require_metrics_reader(Actor(user="p", role="viewer", nodes=None), "technician")
    with pytest.raises(Forbidden, match="node"):
        permissions.require_metrics_reader(Actor(user="p", role="admin", nodes=frozenset({"HLT"})), "viewer")


def test_the_metrics_section_defaults_to_on_and_local_only() -> None:
    settings = parse_config(MINIMAL, "plant.yaml").metrics
    assert settings.enabled and settings.role == "viewer"
    assert [str(n) for n in settings.allow_from] == ["127.0.0.0/8", "::1/128"]


@pytest.mark.parametrize(("section", "field"), [
    ("metrics:\n  role: brewer\n", "metrics.role"),
    ("metrics:\n  allow_from: [192.168.1.300/24]\n", "metrics.allow_from"),
    ("metrics:\n  scrape: yes\n", "metrics.scrape"),
])
def test_a_broken_metrics_section_names_file_line_and_field(section: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + section, "plant.yaml")
    found = [str(p) for p in info.value.problems]
    assert any(p.startswith("plant.yaml:") and field in p for p in found), found
