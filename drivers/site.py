"""A remote site as one device of a central panel (docs/mqtt.md "A central panel"): driver name `site`.

A site's BevForge publishes every endpoint's present value, retained, under
`<topic_prefix>/<site>/<node>/<endpoint>/state`, and `<topic_prefix>/<site>/status` online / offline
(its Last Will). This driver subscribes to them on the central's own broker connection settings
(`mqtt:` of the central's config.yaml) and hands the values to the central's plant like any device's
readings, with the site's quality and time. The site is offline (every value stale, never shown as
live) while the broker is out of reach or the site's status is not `online`.

A write is a command for the site: published on `<root>/cmd/<central's MQTT user>/<node>/<endpoint>/set`
with a request id, and run there by the site's own pipeline (its interlocks, its readback, its audit as
`mqtt:<user>`). The write returns when the site reports the command `succeeded`; a site that blocked or
failed it raises DeviceError with the site's reasons, which the central's command record shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiomqtt
import orjson

from bevforge import messages
from bevforge.config import MQTT_SEGMENT, Device, Endpoint, MqttSettings
from bevforge.devices import DeviceError, DeviceLink, Driver, SettingsRefused
from bevforge.domain import Quality, Reading, Value
from bevforge.messages import from_iso
from bevforge.mqtt import link as mqtt_link
from bevforge.mqtt import topics
from bevforge.store.forward_rows import ALARM_JOURNAL, AUDIT, TELEMETRY
from bevforge.tasks import cancel_if_asked

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 15.0
HISTORY_QUEUE = 100  # forwarded history batches waiting to be stored (beyond: dropped, the site sends them again)
_QUALITIES = {q.value: q for q in Quality}


def _segment(owner: Device | Endpoint, field: str, value: Any) -> str:
    import re

    if not isinstance(value, str) or not re.match(MQTT_SEGMENT, value):
        raise SettingsRefused(owner, field, "one MQTT topic level: letters, digits, '_' or '-'")
    return value


class SiteDriver(Driver):
    """The endpoints of one remote site, read from and commanded through its MQTT topic tree."""

    def __init__(self, device: Device, endpoints: Sequence[Endpoint], link: DeviceLink,
                 broker: MqttSettings | None) -> None:
        super().__init__(device, endpoints, link)
        if broker is None:
            raise SettingsRefused(device, "driver", "a site is reached through the central's broker: "
                                                    "config.yaml needs an mqtt: section")
        settings = dict(device.settings)
        unknown = sorted(set(settings) - {"site", "command_timeout_s"})
        if unknown:
            raise SettingsRefused(device, f"settings.{unknown[0]}", "unknown setting (site, command_timeout_s)")
        self.site = _segment(device, "settings.site", settings.get("site"))
        if self.site == broker.site:
            raise SettingsRefused(device, "settings.site", f"{self.site!r} is this panel's own mqtt.site")
        timeout = settings.get("command_timeout_s", COMMAND_TIMEOUT_S)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 600:
            raise SettingsRefused(device, "settings.command_timeout_s", "seconds, above 0 and at most 600")
        if broker.username is None:
            raise SettingsRefused(device, "driver", "commands to a site need mqtt.username (the site's "
                                                    "mqtt.users entry gives it a role)")
        self.command_timeout_s = float(timeout)
        self.broker = broker
        self.root = f"{broker.topic_prefix}/{self.site}"
        self.by_name: dict[str, Endpoint] = {}
        for endpoint in self.endpoints:
            address = dict(endpoint.address)
            unknown = sorted(set(address) - {"endpoint", "node"})
            if unknown:
                raise SettingsRefused(endpoint, f"address.{unknown[0]}", "unknown key (endpoint, node)")
            name = _segment(endpoint, "address.endpoint", address.get("endpoint", endpoint.name))
            if name in self.by_name:
                raise SettingsRefused(endpoint, "address.endpoint", f"{name!r} is read by another endpoint")
            self.by_name[name] = endpoint
        self.names = {e.id: n for n, e in self.by_name.items()}
        self.nodes: dict[str, str] = {n: e.address["node"] for n, e in self.by_name.items() if "node" in e.address}
        self.client: aiomqtt.Client | None = None
        self.connected = False
        self.site_online = False
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._confirmed: dict[int, Reading] = {}
        self._task: asyncio.Task[None] | None = None
        # store-and-forward (Device.history forwarded): the site's history batches, stored in arrival order
        self.forwarded = device.history == "forwarded"
        self._batches: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=HISTORY_QUEUE)
        self._history_task: asyncio.Task[None] | None = None
        self.forwarded_streams: dict[str, dict[str, int]] = {}  # per stream: watermark, rows, batches, gaps
        self.history_refused = 0
        # the site's alarms that came (their retained topics) since the last connect
        self._alarms_seen: set[int] = set()
        self._alarms_reconciled = True
        self.alarm_actions_refused = 0  # this panel's alarm actions the site refused (on <root>/cmd/<user>/error)
        self.last_refusal: str | None = None
        # the site's node → this panel's node, from the endpoints' addresses (`address.node`)
        self.node_map: dict[str, str] = {e.address["node"]: e.node for e in self.endpoints if "node" in e.address}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"site-{self.site}")
        if self.forwarded:
            self._history_task = asyncio.create_task(self._store_history(), name=f"site-{self.site}-history")

    async def stop(self) -> None:
        for task in (self._task, self._history_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._history_task = None
        self._report(False, "stopped")

    def status(self) -> dict[str, Any]:
        status = super().status() | {"site": self.site, "brokerConnected": self.connected,
                                     "siteOnline": self.site_online, "alarmActionsRefused": self.alarm_actions_refused,
                                     "lastRefusal": self.last_refusal}
        if self.forwarded:
            status["history"] = {"streams": {name: dict(counts) for name, counts in self.forwarded_streams.items()},
                                 "refused": self.history_refused}
        return status

    # -- the link ---------------------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        broker = self.broker
        return aiomqtt.Client(
            broker.host, broker.port, username=broker.username, password=mqtt_link.password(broker),
            identifier=f"{broker.identifier}-site-{self.site}", keepalive=broker.keepalive_s,
            # forwarded history: a persistent session, so the broker keeps the batches sent while this panel
            # is down (the site sends again from the last acknowledged row anyway: nothing depends on it)
            clean_session=not self.forwarded,
            tls_context=mqtt_link.tls_context(broker),
            tls_insecure=broker.tls.insecure if broker.tls is not None else None,
            timeout=max(5.0, float(broker.keepalive_s)))

    async def _run(self) -> None:
        backoff = mqtt_link.Backoff(self.broker.reconnect_min_s, self.broker.reconnect_max_s)
        while True:
            why = "broker connection ended"
            try:
                async with self._client() as client:
                    self.client = client
                    self.connected = True
                    backoff.reset()
                    self._alarms_seen = set()
                    self._alarms_reconciled = False
                    # the retained alarms first and the retained status last: the broker hands one client its
                    # messages in order, so the status marks the end of the alarms standing at the site now
                    await client.subscribe(topics.alarm_subscription(self.root), qos=self.broker.qos)
                    await client.subscribe(f"{self.root}/+/+/{topics.STATE}", qos=self.broker.qos)
                    await client.subscribe(f"{self.root}/{topics.COMMANDS}/+", qos=self.broker.qos)
                    if self.forwarded:
                        await client.subscribe(topics.history(self.root), qos=max(1, self.broker.qos))
                        if self.broker.username is not None:  # listening now: the site need not wait to send again
                            await client.publish(topics.ack(self.root, self.broker.username),
                                                 orjson.dumps(messages.history_hello()), qos=max(1, self.broker.qos))
                            cancel_if_asked()
                    if self.broker.username is not None:  # why the site refused what this panel sent
                        await client.subscribe(topics.user_error(self.root, self.broker.username), qos=self.broker.qos)
                    await client.subscribe(topics.status(self.root), qos=self.broker.qos)
                    async for message in client.messages:
                        self._take(str(message.topic), bytes(message.payload or b""), bool(message.retain))
            except (aiomqtt.MqttError, mqtt_link.LinkSettingsError, OSError) as exc:
                why = f"broker: {exc}"
            finally:
                self.client = None
                self.connected = False
            self._report(False, why)
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(DeviceError(f"site {self.site}: {why}", retryable=False))
            await asyncio.sleep(backoff.wait_s())

    def _report(self, site_online: bool, error: str | None) -> None:
        self.site_online = site_online
        online = self.connected and site_online
        if online != self.online or (not online and error != self.last_error):
            self.online = online
            self.last_error = None if online else error
            self.link.comms(online, None if online else error)

    def _take(self, topic: str, payload: bytes, retained: bool = False) -> None:
        try:
            body = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            log.warning("site %s: %s is not JSON; ignored", self.site, topic)
            return
        alarm_id = topics.alarm_id_of(self.root, topic)
        if alarm_id is not None:
            self._take_alarm(alarm_id, body if isinstance(body, dict) else None)
            return
        if topic == topics.status(self.root):
            if retained and not self._alarms_reconciled:
                self._reconcile_alarms()
            online = isinstance(body, dict) and body.get("status") == "online"
            reason = body.get("reason") if isinstance(body, dict) else None
            self._report(online, None if online else f"site {self.site} offline ({reason or 'no status'})")
            return
        if topic == topics.history(self.root):
            if self.forwarded and isinstance(body, dict):
                try:
                    self._batches.put_nowait(body)
                except asyncio.QueueFull:  # the site sends it again from the last acknowledged row
                    self.history_refused += 1
            return
        if self.broker.username is not None and topic == topics.user_error(self.root, self.broker.username):
            self._take_refusal(body if isinstance(body, dict) else {})
            return
        rest = topic[len(self.root) + 1:].split("/")
        if len(rest) == 2 and rest[0] == topics.COMMANDS and isinstance(body, dict):
            future = self.pending.get(str(body.get("commandId")))
            if future is not None and not future.done() and body.get("status") in ("succeeded", "failed", "blocked"):
                future.set_result(body)
            return
        if len(rest) == 3 and rest[2] == topics.STATE and isinstance(body, dict):
            node, name = rest[0], rest[1]
            endpoint = self.by_name.get(name)
            if endpoint is None:
                return
            self.nodes.setdefault(name, node)
            self.link.readings([_reading(endpoint, body)])

    # -- the site's alarms -------------------------------------------------------------------------

    def _take_alarm(self, alarm_id: int, frame: dict[str, Any] | None) -> None:
        """An alarm as it stands at the site (its retained topic), shown on this panel under the centre's node."""
        self._alarms_seen.add(alarm_id)
        if frame is None:  # over at the site: its retained topic was emptied
            self.link.site_alarm(alarm_id, None)
            return
        frame = dict(frame)
        frame["node"] = self.node_map.get(str(frame.get("node")))
        frame["message"] = f"{self.site}: {frame.get('message') or 'alarm'}"
        self.link.site_alarm(alarm_id, frame)

    def unreachable(self) -> str | None:
        """Why the site cannot be reached now (no broker connection, the site not online), or None."""
        if self.broker.username is None:
            return "this panel has no mqtt.username"
        if self.client is None or not self.connected:
            return f"no connection to the broker ({self.last_error or 'connecting'})"
        if not self.site_online:
            return f"site {self.site} is offline"
        return None

    async def acknowledge_at_site(self, alarm_id: int, comment: str | None) -> bool:
        """Acknowledge the site's alarm `alarm_id` there, as this panel's MQTT user (the site checks its role and
        journals it as `mqtt:<user>`). False when the site cannot be reached now (it stays unacknowledged there)."""
        return await self.alarm_action_at_site(alarm_id, topics.ACK, {"comment": comment} if comment else {})

    async def alarm_action_at_site(self, alarm_id: int, action: str, body: dict[str, Any]) -> bool:
        """Ask the site for `action` (topics.ALARM_ACTIONS: ack, shelve, reset, …) on its alarm `alarm_id`, as this
        panel's MQTT user, on `<root>/cmd/<user>/alarms/<id>/<action>`: the site's own alarm service checks the
        user's role, does it and journals it as `mqtt:<user>`; its retained alarm topic then says how it stands.
        False when the site cannot be reached now (nothing was sent)."""
        client = self.client
        if client is None or self.unreachable() is not None or self.broker.username is None:
            return False
        try:
            await client.publish(topics.alarm_action(self.root, self.broker.username, alarm_id, action),
                                 orjson.dumps(body), qos=max(1, self.broker.qos))
        except aiomqtt.MqttError:
            return False
        return True

    def _take_refusal(self, frame: dict[str, Any]) -> None:
        """The site refused an alarm action this panel sent (the central user's role there, the alarm's state):
        logged and counted (`/api/os/health`, the driver's `alarmActionsRefused`, `lastRefusal`); this panel's
        point stays as the site has it."""
        on_alarm = topics.parse_alarm_action(self.root, str(frame.get("topic")))
        if on_alarm is None:
            return  # a command's refusal: its record fails when the site's answer does not come (command_timeout_s)
        _, alarm_id, action = on_alarm
        self.alarm_actions_refused += 1
        self.last_refusal = f"alarm {alarm_id} {action}: {frame.get('code')}: {frame.get('message')}"
        log.warning("site %s refused this panel's %s of its alarm %d: %s", self.site, action, alarm_id,
                    frame.get("message"))

    def _reconcile_alarms(self) -> None:
        """After a (re)connect: an alarm shown here that the site no longer has (it ended while this panel was
        away from the broker or stopped, so no empty message came to it) is cleared."""
        self._alarms_reconciled = True
        self.link.site_alarms_standing(frozenset(self._alarms_seen))

    # -- forwarded history ------------------------------------------------------------------------

    async def _store_history(self) -> None:
        """Store each batch (once: the store keeps the watermark), then acknowledge it to the site: the history
        under this panel's endpoint ids, the alarm journal and the audit journal in tables of their own."""
        while True:
            body = await self._batches.get()
            stream = body.get("stream", TELEMETRY)
            try:
                batch = _batch(body) if stream == TELEMETRY else _event_batch(body, stream, self.node_map)
            except ValueError as exc:
                batch, why = None, str(exc)
            else:
                why = "no store, after, upTo or rows of its shape"
            if batch is None:
                self.history_refused += 1
                log.warning("site %s: a forwarded %s message refused (%s); the site sends it again", self.site,
                            stream, why)
                continue
            store, after, up_to, rows = batch
            try:
                if stream == TELEMETRY:
                    mapped = [(row[0], self._endpoint_id(row[2]), row[3], row[4], row[5], row[6]) for row in rows]
                    mark, gap = await self.link.forwarded_history(self.site, store, after, up_to, mapped)
                else:
                    mark, gap = await self.link.forwarded_events(self.site, store, stream, after, up_to, rows)
            except Exception as exc:  # not stored, not acknowledged: the site sends it again
                log.warning("site %s: forwarded %s rows %d..%d not stored: %s", self.site, stream, after + 1, up_to,
                            exc)
                continue
            counts = self.forwarded_streams.setdefault(stream, {"watermark": 0, "rows": 0, "batches": 0, "gaps": 0})
            counts["watermark"] = mark
            counts["batches"] += 1
            if gap:
                counts["gaps"] += 1
            else:
                counts["rows"] += len(rows)
            client = self.client
            if client is None or self.broker.username is None:
                continue  # the site sends again, and the watermark skips what is stored
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(topics.ack(self.root, self.broker.username),
                                     orjson.dumps(messages.history_ack(store, mark, gap, stream)),
                                     qos=max(1, self.broker.qos))
            cancel_if_asked()  # Python 3.11: a stop must not be lost in the publish (bevforge/tasks.py)

    def _endpoint_id(self, name: Any) -> int | None:
        endpoint = self.by_name.get(name) if isinstance(name, str) else None
        return None if endpoint is None else endpoint.id

    # -- commands ---------------------------------------------------------------------------------

    async def refresh(self, endpoint: Endpoint) -> None:
        """The command runner's readback asks for a fresh sample: the site's readback of the write just made."""
        confirmed = self._confirmed.pop(endpoint.id, None)
        if confirmed is not None:
            self.link.readings([confirmed])

    async def write(self, endpoint: Endpoint, value: Value) -> None:
        client, name = self.client, self.names[endpoint.id]
        node = self.nodes.get(name)
        if client is None or not self.online:
            raise DeviceError(f"site {self.site} is offline: not sent", code="device_offline")
        if node is None:
            raise DeviceError(f"site {self.site} has not published {name}: its node is unknown")
        request = f"central-{uuid.uuid4().hex}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request] = future
        try:
            topic = f"{self.root}/{topics.COMMANDS_IN}/{self.broker.username}/{node}/{name}/{topics.SET}"
            await client.publish(topic, orjson.dumps({"value": value, "requestId": request}), qos=self.broker.qos)
            try:
                outcome = await asyncio.wait_for(future, self.command_timeout_s)
            except TimeoutError:
                raise DeviceError(f"site {self.site} did not finish the command within "
                                  f"{self.command_timeout_s:g} s", code="device_timeout") from None
        finally:
            self.pending.pop(request, None)
        if outcome["status"] == "succeeded":
            # the site's own readback is the confirming sample: handed over when the runner asks (refresh),
            # since the state message with the same value may have come before this answer
            self._confirmed[endpoint.id] = _reading(endpoint, {"value": outcome.get("actualValue"), "quality": "good",
                                                               "timestamp": outcome.get("completedAt")})
            return
        reasons = "; ".join(str(r.get("reason", r)) if isinstance(r, dict) else str(r)
                            for r in outcome.get("reasons") or []) or outcome.get("error") or "no reason given"
        raise DeviceError(f"site {self.site} {outcome['status']} it: {reasons}", code=f"site_{outcome['status']}")


def _batch(body: dict[str, Any]) -> tuple[str, int, int, list[list[Any]]] | None:
    """A history message's parts, or None when it is not one (checked: it comes from a broker)."""
    store, after, up_to, rows = body.get("store"), body.get("after"), body.get("upTo"), body.get("rows")
    if not isinstance(store, str) or not store or not isinstance(rows, list):
        return None
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (after, up_to)):
        return None
    for row in rows:
        if (not isinstance(row, list) or len(row) != 7 or not isinstance(row[0], int) or not isinstance(row[4], str)
                or not all(v is None or isinstance(v, int | float) for v in (row[3], row[5]))
                or not isinstance(row[6], int | float)):
            return None
    return store, after, up_to, rows  # type: ignore[return-value]


# a forwarded event's fields (the site's REST names) → the centre's columns; (required, types)
_JOURNAL_FIELDS: dict[str, tuple[str, bool, tuple[type, ...]]] = {
    "alarmId": ("alarm_id", False, (int,)), "ruleId": ("rule_id", True, (str,)), "event": ("event", True, (str,)),
    "user": ("user", True, (str,)), "comment": ("comment", False, (str,)), "state": ("state", True, (str,)),
    "priority": ("priority", True, (str,)), "message": ("message", True, (str,))}
_AUDIT_FIELDS: dict[str, tuple[str, bool, tuple[type, ...]]] = {
    "user": ("user", True, (str,)), "role": ("role", True, (str,)), "station": ("station", True, (str,)),
    "action": ("action", True, (str,)), "target": ("target", False, (str,)), "result": ("result", True, (str,)),
    "commandId": ("command_id", False, (str,)), "detail": ("detail", False, (str,))}
_EVENT_FIELDS = {ALARM_JOURNAL: _JOURNAL_FIELDS, AUDIT: _AUDIT_FIELDS}
_EVENT_VALUES = {ALARM_JOURNAL: ("value",), AUDIT: ("old", "new")}  # any JSON, kept as it is


def _event_batch(body: dict[str, Any], stream: Any, node_map: dict[str, str]
                 ) -> tuple[str, int, int, list[dict[str, Any]]]:
    """An alarm journal or audit batch as rows of the centre's table (the site's node mapped to this panel's,
    None for one it does not show). ValueError naming what is wrong when it is not one (it comes from a broker)."""
    fields = _EVENT_FIELDS.get(stream) if isinstance(stream, str) else None
    store, after, up_to, rows = body.get("store"), body.get("after"), body.get("upTo"), body.get("rows")
    if fields is None:
        raise ValueError(f"stream {stream!r} unknown")
    if not isinstance(store, str) or not store or not isinstance(rows, list):
        raise ValueError("store or rows missing")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (after, up_to)):
        raise ValueError("after or upTo not a row id")
    out: list[dict[str, Any]] = []
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("id"), int) or isinstance(row.get("id"), bool):
            raise ValueError("a row without its id")
        try:
            when = from_iso(row.get("time")) if isinstance(row.get("time"), str) else None
        except ValueError:
            when = None
        if when is None:
            raise ValueError(f"row {row['id']}: time")
        column_row: dict[str, Any] = {"site_id": row["id"], "time": when}
        for name, (column, required, types) in fields.items():
            value = row.get(name)
            if (value is None and required) or (value is not None and (not isinstance(value, types)
                                                                       or isinstance(value, bool))):
                raise ValueError(f"row {row['id']}: {name}")
            column_row[column] = value
        for name in _EVENT_VALUES[stream]:
            column_row[name] = row.get(name)
        if stream == ALARM_JOURNAL:
            node = row.get("node")
            column_row["node"] = node_map.get(node) if isinstance(node, str) else None
        out.append(column_row)
    return store, after, up_to, out


def _reading(endpoint: Endpoint, body: dict[str, Any]) -> Reading:
    """A state message → a reading: the site's own quality and time, never better than the site says."""
    quality = _QUALITIES.get(str(body.get("quality")), Quality.BAD)
    stamp = None
    with contextlib.suppress(TypeError, ValueError):
        stamp = datetime.fromisoformat(str(body.get("timestamp")).replace("Z", "+00:00"))
    error = body.get("error") if quality is not Quality.GOOD else None
    return Reading(endpoint.id, body.get("value"), quality, stamp, error or (None if quality is Quality.GOOD
                                                                                 else f"{quality.value} at the site"))
