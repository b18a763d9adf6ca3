"""The `mqtt:` section: optional, checked with file:line like the rest, and no password in the file."""

from __future__ import annotations

import pytest

from bevforge.config import ConfigError, parse_config
from tests.unit.test_config import MINIMAL


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + text, "plant.yaml")
    return [str(p) for p in info.value.problems]


def test_absent_means_no_mqtt() -> None:
    assert parse_config(MINIMAL, "plant.yaml").mqtt is None


def test_a_full_section_and_its_topic_root() -> None:
    config = parse_config(MINIMAL + """\
mqtt:
  host: broker.lan
  port: 8883
  site: brewhouse
  username: bevforge
  password_file: /etc/bevforge/mqtt-password
  tls: {ca_file: /etc/bevforge/ca.crt}
  users:
    alice: {role: operator, nodes: [HLT]}
""", "plant.yaml")
    assert config.mqtt is not None
    assert config.mqtt.root == "bevforge/brewhouse" and config.mqtt.identifier == "bevforge-brewhouse"
    assert config.mqtt.qos == 1 and config.mqtt.tls is not None and config.mqtt.tls.insecure is False
    assert config.mqtt.users["alice"].nodes == ["HLT"]


def test_a_password_in_the_file_is_refused_with_its_line() -> None:
    found = problems("mqtt:\n  host: b\n  site: s\n  username: u\n  password: hunter2\n")
    assert any(p.startswith("plant.yaml:") and "mqtt.password" in p for p in found), found
    assert not any("hunter2" in p for p in found)


@pytest.mark.parametrize(("section", "words"), [
    ("  password_env: A\n  password_file: /f\n  username: u\n", "give one"),
    ("  password_env: A\n", "needs a username"),
    ("  users:\n    alice: {role: brewer}\n", "unknown role 'brewer'"),
    ("  users:\n    alice: {role: operator, nodes: [CELLAR]}\n", "unknown node 'CELLAR'"),
    ("  users:\n    'al/ice': {role: operator}\n", "mqtt.users"),
    ("  tls: {cert_file: /c}\n", "go together"),
    ("  reconnect_min_s: 10\n  reconnect_max_s: 5\n", "at least reconnect_min_s"),
])
def test_mistakes_are_named(section: str, words: str) -> None:
    found = problems("mqtt:\n  host: b\n  site: s\n" + section)
    assert any(words in p for p in found), found


def test_a_site_with_a_slash_is_refused() -> None:
    assert any("mqtt.site" in p for p in problems("mqtt:\n  host: b\n  site: a/b\n"))


def test_each_central_instance_takes_its_client_id_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two instances of bevforge-central@.service run one config file; the broker allows one connection per id."""
    from bevforge.config import CLIENT_ID_ENV, MqttSettings

    settings = MqttSettings(host="broker", site="central", client_id="central")
    monkeypatch.delenv(CLIENT_ID_ENV, raising=False)
    assert settings.identifier == "central"
    monkeypatch.setenv(CLIENT_ID_ENV, "central-5017")
    assert settings.identifier == "central-5017"


def test_a_site_forwards_only_to_centres_it_knows() -> None:
    """Only a centre's acknowledgement moves a forwarding site on: its user must be one the site maps."""
    from bevforge.config import MqttSettings

    with pytest.raises(ValueError, match=r"forward\.centres: 'central' is not in mqtt\.users"):
        MqttSettings(host="broker", site="cellar", forward={})
    settings = MqttSettings(host="broker", site="cellar", users={"central": {"role": "operator"},
                                                                 "scada": {"role": "operator"}}, forward={})
    assert settings.forward is not None and settings.forward.centres == ["central"]  # scada may command, not ack


def test_a_site_forwards_its_history_and_both_journals_unless_told_otherwise() -> None:
    from bevforge.config import MqttSettings

    users = {"central": {"role": "operator"}}
    settings = MqttSettings(host="broker", site="cellar", users=users, forward={})
    assert settings.forward is not None and settings.forward.streams == ["telemetry", "alarm_journal", "audit"]
    only = MqttSettings(host="broker", site="cellar", users=users, forward={"streams": ["telemetry"]})
    assert only.forward is not None and only.forward.streams == ["telemetry"]
    for streams, why in ((["telemetry", "telemetry"], "each stream once"), (["commands"], "literal_error"),
                         ([], "at least 1")):
        with pytest.raises(ValueError, match=why):
            MqttSettings(host="broker", site="cellar", users=users, forward={"streams": streams})
