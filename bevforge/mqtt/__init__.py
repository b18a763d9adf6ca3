"""MQTT, the plant's public face (docs/mqtt.md): retained state, alarms and command statuses out; commands in.

The parts: `topics` (the topic tree), `outbox` (what waits for the broker, bounded), `inbox`
(commands in, through the command service), `link` (credentials, TLS, will, backoff) and `bridge`
(the runtime's task that joins them). Built by the runtime only when config.yaml has `mqtt:`.
"""

from bevforge.mqtt.bridge import MqttBridge

__all__ = ["MqttBridge"]
