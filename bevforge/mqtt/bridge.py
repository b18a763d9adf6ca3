"""The plant on MQTT: a task of the runtime that publishes the bus to a broker and takes commands from it.

Why it can never hold up control: the only thing the plant's side does is the bus's own publish,
which appends to this bridge's bus queue. A pump task moves that queue into the outbox (bounded,
coalescing: `outbox.py`) as fast as events come, whether or not a broker is there; the link task
connects, sends from the outbox, and receives commands. A broker that is slow or gone stalls only
the link task. A lost connection is logged, shown in `/api/os/health` (`mqtt`), and retried after
a backoff (`mqtt.reconnect_min_s` doubling to `reconnect_max_s`); once back, every endpoint's state
and every standing alarm is published again, retained, so the broker is right again at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiomqtt
import orjson

from bevforge import messages
from bevforge.bus import ALARM, COMMAND_STATUS, TELEMETRY, Event, SubscriberClosed
from bevforge.mqtt import link, topics
from bevforge.mqtt.discovery import Discovery
from bevforge.mqtt.forward import SiteForwarding
from bevforge.mqtt.inbox import CommandInbox
from bevforge.mqtt.outbox import Outbox, Outgoing
from bevforge.tasks import cancel_if_asked

if TYPE_CHECKING:
    from bevforge.alarms import AlarmService
    from bevforge.bus import EventBus, Subscriber
    from bevforge.commands import CommandService
    from bevforge.config import MqttSettings, PlantConfig
    from bevforge.plant import Plant
    from bevforge.store import Database

log = logging.getLogger(__name__)

PUBLISHED_TYPES = frozenset({TELEMETRY, ALARM, COMMAND_STATUS})
STOP_GOODBYE_S = 2.0  # at a stop, how long the offline message may take before the link is dropped


class MqttBridge:
    """One site's connection to its broker (config `mqtt:`); built only when that section is present."""

    def __init__(self, settings: MqttSettings, config_of: Callable[[], PlantConfig], plant: Plant,
                 alarms: AlarmService, commands: CommandService, bus: EventBus, db: Database) -> None:
        self.settings = settings  # read at start: a change to `mqtt:` needs a restart (reload.RESTART_SECTIONS)
        self.config_of = config_of
        self.plant = plant
        self.alarms = alarms
        self.bus = bus
        self.root = settings.root
        self.inbox = CommandInbox(self.root, config_of, commands, settings.commands_per_s, settings.commands_burst,
                                  alarms)
        self.outbox = Outbox(self.root, config_of, settings.command_queue, self.inbox.request_id)
        self.backoff = link.Backoff(settings.reconnect_min_s, settings.reconnect_max_s)
        ha = settings.homeassistant  # Home Assistant discovery (discovery.py): one more task per connection
        self.discovery = Discovery(settings, ha, config_of, self.inbox.actor, bus) \
            if ha is not None and ha.enabled else None
        self.connected = False
        self.connects = 0
        self.published = 0
        self.last_error: str | None = None
        self.since: float | None = None  # monotonic time of the last connect or disconnect
        self._tasks: list[asyncio.Task[None]] = []
        self._client: aiomqtt.Client | None = None
        self._subscriber: Subscriber | None = None  # the bridge's bus queue, from start() on
        # store-and-forward of history and events to a centre (mqtt.forward): absent, nothing is forwarded
        forward = settings.forward
        self.forwarder = (SiteForwarding(forward, self.root, settings.qos, db, alarms)
                          if forward is not None else None)

    def _subscribe(self) -> Subscriber:
        return self.bus.subscribe(lambda e: e.type in PUBLISHED_TYPES, limit=self.settings.command_queue * 4,
                                  name="mqtt")

    # -- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.forwarder is not None:
            await self.forwarder.start()
        self._subscriber = self._subscribe()
        self._tasks = [loop.create_task(self._pump(), name="mqtt-pump"),
                       loop.create_task(self._run(), name="mqtt-link")]

    async def stop(self) -> None:
        """Say goodbye (`offline`, retained) if connected, then end both tasks."""
        client = self._client
        if client is not None and self.connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.publish(
                    topics.status(self.root), orjson.dumps(messages.site_status(False, self._site(), "stopped")),
                    qos=self.settings.qos, retain=True), STOP_GOODBYE_S)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.forwarder is not None:
            await self.forwarder.stop()
        if self._subscriber is not None:
            self._subscriber.close("stopped")
        self.connected = False

    def status(self) -> dict[str, Any]:
        """What /api/os/health shows of the link (never a credential)."""
        return {
            "broker": f"{self.settings.host}:{self.settings.port}", "tls": self.settings.tls is not None,
            "root": self.root, "connected": self.connected, "connects": self.connects,
            "lastError": self.last_error, "published": self.published, "waiting": len(self.outbox),
            "dropped": self.outbox.dropped, "commandsAccepted": self.inbox.accepted,
            "commandsRefused": self.inbox.refused,
            "sinceS": None if self.since is None else round(time.monotonic() - self.since, 1),
            "forward": None if self.forwarder is None else self.forwarder.status(),
        }

    def _site(self) -> str:
        return self.config_of().site.name

    # -- the bus side --------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Bus → outbox, always, broker or not (the outbox bounds what waits)."""
        while True:
            assert self._subscriber is not None
            try:
                events: list[Event] = await self._subscriber.get_many()
            except SubscriberClosed as exc:  # cannot happen while this loop keeps taking; never die of it
                log.error("mqtt: bus queue closed (%s): subscribing again, every state republished", exc.reason)
                self._subscriber = self._subscribe()
                self._snapshot_states_into_outbox()
                continue
            for event in events:
                self.outbox.add(event)

    def _snapshot_states_into_outbox(self) -> None:
        for endpoint in self.config_of().endpoints:
            state = self.plant.states.get(endpoint.id)
            if state is not None:
                self.outbox.add_snapshot(self.outbox.snapshot_state(endpoint, state, self.bus.last_seq))

    # -- the broker side -----------------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, serve, and after a loss wait the backoff and connect again, until stopped."""
        while True:
            try:
                client = link.client(self.settings, self._site())
                async with client:
                    self._client = client
                    await self._connected(client)
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._send(client))
                        group.create_task(self._receive(client))
                        if self.forwarder is not None:
                            group.create_task(self.forwarder.run(client))
                        if self.discovery is not None:
                            group.create_task(self.discovery.serve(client))
            except* (aiomqtt.MqttError, link.LinkSettingsError, OSError) as group_exc:
                self._lost(str(group_exc.exceptions[0]))
            except* Exception as group_exc:  # a bug here must cost MQTT only, never the plant
                log.exception("mqtt: link failed", exc_info=group_exc.exceptions[0])
                self._lost(f"internal error: {group_exc.exceptions[0]!r}")
            finally:
                self._client = None
            await asyncio.sleep(self.backoff.wait_s())

    async def _connected(self, client: aiomqtt.Client) -> None:
        """Birth, the subscriptions, then every endpoint's state and every standing alarm; `connected` once
        all of it is on the broker (a subscriber from then on gets the present as retained messages)."""
        qos = self.settings.qos
        await client.publish(topics.status(self.root), orjson.dumps(messages.site_status(True, self._site())),
                             qos=qos, retain=True)
        await client.subscribe(topics.command_subscription(self.root), qos=qos)
        for topic in topics.alarm_action_subscriptions(self.root):  # a centre's acknowledgements, shelves, resets …
            await client.subscribe(topic, qos=qos)
        await client.subscribe(topics.alarm_subscription(self.root), qos=qos)  # leftovers (see _receive)
        if self.forwarder is not None:
            await client.subscribe(topics.ack_subscription(self.root), qos=qos)
        if self.discovery is not None:
            self.discovery.connection_started()
            for topic in self.discovery.subscriptions():
                await client.subscribe(topic, qos=qos)
        seq = self.bus.last_seq
        snapshot: list[Outgoing] = []
        for endpoint in self.config_of().endpoints:
            state = self.plant.states.get(endpoint.id)
            if state is not None:
                snapshot.append(self.outbox.snapshot_state(endpoint, state, seq))
        standing = self.alarms.standing()
        for alarm in standing:
            snapshot += self.outbox.alarm_messages(messages.snapshot(messages.alarm(alarm, "standing"), seq))
        # what waits of these is older than the snapshot; what waits of ended alarms still has to clear them
        self.outbox.reset_states()
        self.outbox.reset_alarms({alarm.id for alarm in standing})
        for item in snapshot:
            await client.publish(item.topic, item.payload, qos=qos, retain=item.retain)
            self.published += 1
        self.connected = True
        self.connects += 1
        self.since = time.monotonic()
        self.last_error = None
        self.backoff.reset()
        log.info("mqtt: connected to %s:%d as %s, publishing under %s/ (%d retained messages republished)",
                 self.settings.host, self.settings.port, self.settings.identifier, self.root, len(snapshot))

    def _lost(self, why: str) -> None:
        if self.connected or self.last_error != why:
            log.warning("mqtt: no connection to %s:%d (%s); trying again in %g s", self.settings.host,
                        self.settings.port, why, self.backoff.next_s)
        if self.connected:
            self.since = time.monotonic()
        self.connected = False
        self.last_error = why

    async def _send(self, client: aiomqtt.Client) -> None:
        qos = self.settings.qos
        while True:
            await self.outbox.wait()
            items = self.outbox.pop()
            for i, item in enumerate(items):
                try:
                    await client.publish(item.topic, item.payload, qos=qos, retain=item.retain)
                except BaseException:
                    for rest in reversed(items[i:]):
                        self.outbox.put_back(rest)
                    raise
                self.published += 1
                cancel_if_asked()  # Python 3.11: a stop must not be lost in the publish (bevforge/tasks.py)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload or "").encode()
            ack_user = topics.parse_ack(self.root, message.topic.value)
            if ack_user is not None:
                if self.forwarder is not None and payload and not message.retain:
                    self.forwarder.take_ack(ack_user, payload)
                continue  # never a command (an ack is not a set topic)
            if self.discovery is not None and self.discovery.owns(message.topic.value):
                self.discovery.received(message.topic.value, payload, bool(message.retain))
                continue
            alarm_id = topics.alarm_id_of(self.root, message.topic.value)
            if alarm_id is not None or message.topic.value.startswith(f"{self.root}/{topics.ALARMS}/"):
                if message.retain and payload and alarm_id not in self.alarms.current:
                    # retained from before (the alarm ended while this site was stopped or cut off): remove it
                    await client.publish(message.topic.value, b"", qos=self.settings.qos, retain=True)
                    self.published += 1
                continue  # our own alarm messages coming back live: nothing to do
            if not payload:
                continue  # an empty message only removes a retained one (ours, below): not a command
            # A command published with the retain flag would be handed over again at every reconnect and run
            # again. MQTT 3.1.1 does not say whether a live message was retained, so every command topic is
            # emptied after its message is taken; one that arrives retained (published while this site was
            # away) is refused, never run late.
            await client.publish(message.topic.value, b"", qos=self.settings.qos, retain=True)
            if message.retain:
                answer = self.inbox.refuse_retained(message.topic.value)
            else:
                answer = await self.inbox.handle(message.topic.value, payload)
            if answer is not None:
                await client.publish(answer.topic, answer.payload, qos=self.settings.qos, retain=False)
                self.published += 1
