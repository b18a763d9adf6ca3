"""A stop of the MQTT link is never lost in a publish (bevforge/tasks.py `cancel_if_asked`).

aiomqtt waits for a QoS 1 acknowledgement with `asyncio.wait_for`; on Python 3.11 a `cancel()` that
arrives together with the acknowledgement is dropped and the publish returns normally. The sending
tasks (the bridge's `_send`, the discovery task) then went back to waiting for work and never ended,
so `runtime.stop()` hung (seen in tests/integration/test_home_assistant.py). `SwallowingClient`
reproduces exactly that outcome without a broker.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from bevforge.bus import EventBus
from bevforge.mqtt.bridge import MqttBridge
from bevforge.mqtt.discovery import Discovery
from bevforge.mqtt.outbox import Outbox, Outgoing
from tests.support.server import brewhouse_config


class SwallowingClient:
    """A publish that returns normally when it is cancelled, as 3.11's wait_for does when the ack is in."""

    def __init__(self) -> None:
        self.publishing = asyncio.Event()
        self.swallowed = False

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        self.publishing.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if self.swallowed:  # the race happens once: a later cancel goes through
                raise
            self.swallowed = True
            return  # the cancel is gone: the caller sees a successful publish


async def stopped(task: asyncio.Task[None], client: SwallowingClient) -> None:
    await client.publishing.wait()
    task.cancel()
    try:
        done, _ = await asyncio.wait({task}, timeout=5)
        assert task in done, "the task went back to waiting for work after its stop"
        assert task.cancelled()
    finally:
        task.cancel()  # a second cancel (not lost this time) so a failing test still ends


async def test_the_bridges_sender_ends_when_stopped_during_a_publish() -> None:
    config = brewhouse_config()
    outbox = Outbox("bevforge/test", lambda: config, 10)
    outbox.add_snapshot(Outgoing("bevforge/test/x", b"{}", True))
    bridge: Any = SimpleNamespace(outbox=outbox, settings=SimpleNamespace(qos=1), published=0)
    client = SwallowingClient()
    await stopped(asyncio.get_running_loop().create_task(MqttBridge._send(bridge, client)), client)


async def test_the_discovery_task_ends_when_stopped_during_a_publish() -> None:
    def adjust(doc: dict[str, Any]) -> None:
        doc["mqtt"] = {"host": "127.0.0.1", "site": "test", "homeassistant": {}}

    config = brewhouse_config(adjust)
    assert config.mqtt is not None and config.mqtt.homeassistant is not None
    discovery = Discovery(config.mqtt, config.mqtt.homeassistant, lambda: config, lambda _user: None,  # type: ignore[arg-type,return-value]
                          EventBus())
    discovery.connection_started()
    client = SwallowingClient()
    await stopped(asyncio.get_running_loop().create_task(discovery.serve(client)), client)  # type: ignore[arg-type]
