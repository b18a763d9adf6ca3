"""The one node rule, table-tested: what an alarm belongs to, and who sees a thing of one node,
several nodes (a device's alarm) or none (a system alarm) — the same answer for the bus filter."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bevforge import permissions
from bevforge.domain import Actor
from bevforge.errors import Forbidden, Invalid, NotFound
from tests.support.server import brewhouse_config

CONFIG = brewhouse_config()
UNLIMITED = Actor(user="ada", role="operator")
HLT_ONLY = Actor(user="hanna", role="operator", nodes=frozenset({"HLT"}))
MLT_ONLY = Actor(user="max", role="operator", nodes=frozenset({"MLT"}))


@pytest.mark.parametrize(("rule_id", "node", "endpoint_id", "owners"), [
    ("hlt_temperature_hihi", "HLT", 10, "HLT"),  # a definition on an endpoint: its node
    ("comms:hlt_controller", None, None, frozenset({"HLT"})),  # a device alarm: its endpoints' nodes
    ("comms:brewhouse_io", None, None, frozenset({"HLT", "MLT", "BK"})),
    ("stale:20", None, None, "MLT"),  # a system alarm about one endpoint, as the journal names it
    ("trip:31", None, None, "BK"),
    ("blocked:some-command", None, 12, "HLT"),  # an occurrence that knows its endpoint
    ("system:disk_space", None, None, frozenset()),  # belongs to no node
    ("brewhouse_io_comms", None, None, frozenset({"HLT", "MLT", "BK"})),  # a comms definition: its device's
])
def test_what_an_alarm_belongs_to(rule_id: str, node: str | None, endpoint_id: int | None, owners: object) -> None:
    assert permissions.alarm_nodes(CONFIG, rule_id, node, endpoint_id) == owners


@pytest.mark.parametrize(("owners", "unlimited", "hlt", "mlt"), [
    ("HLT", True, True, False),
    (frozenset({"HLT"}), True, True, False),
    (frozenset({"HLT", "MLT", "BK"}), True, True, True),
    (frozenset(), True, False, False),
    (None, True, False, False),
])
def test_who_sees_a_thing_and_the_bus_filter_agrees(owners: permissions.Owners, unlimited: bool, hlt: bool,
                                                    mlt: bool) -> None:
    for actor, sees in ((UNLIMITED, unlimited), (HLT_ONLY, hlt), (MLT_ONLY, mlt)):
        assert permissions.may_see_nodes(actor, owners) is sees
        assert permissions.node_filter(actor)(owners) is sees
    assert permissions.node_filter(None)(owners) is False  # not signed in: nothing
    assert permissions.may_see_nodes(None, owners) is False


def test_device_alarm_of_the_hlt_controller_is_the_hlt_operators() -> None:
    alarm = SimpleNamespace(rule_id="comms:hlt_controller", node=None, endpoint_id=None)
    assert permissions.may_see_alarm(HLT_ONLY, CONFIG, alarm)
    assert not permissions.may_see_alarm(MLT_ONLY, CONFIG, alarm)
    with pytest.raises(NotFound) as hidden:
        permissions.require_alarm(MLT_ONLY, CONFIG, alarm, 7)
    assert hidden.value.code == "unknown_alarm" and hidden.value.field == "alarm_id"


def test_roles_and_ingest() -> None:
    assert permissions.has_role(HLT_ONLY, "operator") and not permissions.has_role(HLT_ONLY, "technician")
    assert not permissions.has_role(None, "viewer")
    with pytest.raises(Forbidden):
        permissions.require_role(HLT_ONLY, "technician")
    technician = Actor(user="tom", role="technician", nodes=frozenset({"HLT"}))
    assert permissions.require_ingest(technician, CONFIG.endpoint(14), 14, "readings[0].endpointId").id == 14
    for endpoint, endpoint_id in ((CONFIG.endpoint(33), 33), (None, 999)):  # another node's looks like none at all
        with pytest.raises(Invalid) as refused:
            permissions.require_ingest(technician, endpoint, endpoint_id, "readings[1].endpointId")
        assert refused.value.code == "unknown_endpoint" and refused.value.field == "readings[1].endpointId"


def test_audit_entries_belong_to_their_commands_and_alarms() -> None:
    entries = [{"action": "command.request", "target": "hlt_setpoint"},
               {"action": "command.result", "target": "bk_heater"},
               {"action": "alarm.acked", "target": "comms:hlt_controller"},
               {"action": "auth.login", "target": None},
               {"action": "user.create", "target": "sigrid"},
               {"action": "alarm.silence", "target": "127.0.0.1"}]
    assert [e["target"] for e in permissions.visible_audit(HLT_ONLY, CONFIG, entries)] \
        == ["hlt_setpoint", "comms:hlt_controller"]
    assert permissions.visible_audit(UNLIMITED, CONFIG, entries) == entries


def test_a_site_s_forwarded_journals_at_a_central_panel() -> None:
    """The site's alarm journal is read node by node (this panel's nodes); its audit journal is the whole site's,
    for a technician without a node limit; a site that does not forward here is not found, naming the field."""
    entries = [{"ruleId": "hlt_high", "node": "HLT"}, {"ruleId": "mlt_low", "node": "MLT"},
               {"ruleId": "system:disk_space", "node": None}]
    assert permissions.visible_site_journal(HLT_ONLY, entries) == entries[:1]
    assert permissions.visible_site_journal(UNLIMITED, entries) == entries
    permissions.require_site_audit(Actor(user="tess", role="technician"))
    with pytest.raises(Forbidden) as limited:
        permissions.require_site_audit(Actor(user="tom", role="technician", nodes=frozenset({"HLT"})))
    assert limited.value.field == "site"
    with pytest.raises(Forbidden):
        permissions.require_site_audit(UNLIMITED)  # an operator
    central = brewhouse_config(lambda doc: doc["devices"].append(
        {"id": "site_cellar", "driver": "site", "history": "forwarded", "settings": {"site": "cellar"}}))
    permissions.require_forwarded_site(central, "cellar")
    with pytest.raises(NotFound) as unknown:
        permissions.require_forwarded_site(central, "taproom")
    assert unknown.value.field == "site" and unknown.value.code == "unknown_site"


def test_each_alarm_action_needs_the_role_its_rest_route_needs() -> None:
    role = permissions.alarm_action_role
    assert [role(a) for a in ("ack", "reset", "unshelve")] == ["operator"] * 3
    assert (role("shelve", timed=True), role("shelve")) == ("operator", "technician")  # one-shot: technician
    assert (role("out-of-service"), role("in-service")) == ("technician", "technician")
