"""The running plant: builds the core's parts from a config and starts/stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bevforge import __version__
from bevforge.alarms import Alarm, AlarmService, Point
from bevforge.alarms.states import AlarmEvent, PointState
from bevforge.audit import AuditLog
from bevforge.auth import AuthService
from bevforge.bus import EventBus
from bevforge.clock import Clock, SystemClock
from bevforge.commands import CommandService
from bevforge.config import ExtraCheck, PlantConfig
from bevforge.controllers import ControllerService
from bevforge.devices import (
    SITE_ALARM_KIND,
    Driver,
    DriverFactory,
    ForwardedRow,
    site_alarm_key,
    site_alarm_prefix,
)
from bevforge.domain import Actor, Reading, Severity
from bevforge.errors import SITE_UNREACHABLE, Unavailable
from bevforge.ingest import ReadingIntake
from bevforge.plant import Plant
from bevforge.programs.service import ProgramService
from bevforge.recipes.service import RecipeService
from bevforge.reload import ConfigReloader
from bevforge.retention import RetentionService
from bevforge.store import (
    Database,
    EndpointRow,
    HistoryWriter,
    create_schema,
    fail_interrupted_commands,
    sync_endpoints,
)
from bevforge.store.faults import STORE_ALARM_KEY, STORE_ALARM_KIND
from bevforge.store.forward_rows import take_forwarded, take_forwarded_events
from bevforge.store.queries import HistoryReader
from bevforge.trends import TrendViews

if TYPE_CHECKING:
    from bevforge.integrations.brewfather import BrewfatherPush
    from bevforge.mqtt import MqttBridge
    from bevforge.notify import NotificationService

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 5.0
MAX_COMMENT = 500  # what a site takes in an alarm action's comment
# a central panel's action on a site's alarm → (the site's MQTT alarm action, how the comment words it)
SITE_ALARM_ACTIONS = {AlarmEvent.SHELVE: ("shelve", "shelved"), AlarmEvent.UNSHELVE: ("unshelve", "unshelved"),
                      AlarmEvent.RESET: ("reset", "reset"),
                      AlarmEvent.REMOVE_FROM_SERVICE: ("out-of-service", "taken out of service"),
                      AlarmEvent.RETURN_TO_SERVICE: ("in-service", "returned to service")}


def _site_state(frame: dict[str, Any]) -> PointState:
    """A site's alarm frame (docs/mqtt.md "Alarm") → the state the centre's point follows."""
    shelf = frame.get("shelved") if frame.get("shelved") in ("timed", "oneshot") else None
    until = None
    if shelf == "timed":
        with contextlib.suppress(TypeError, ValueError):
            until = datetime.fromisoformat(str(frame.get("shelvedUntil")).replace("Z", "+00:00"))
    return PointState(active=bool(frame.get("active")), latched=bool(frame.get("latched")), shelf=shelf,
                      shelved_until=until, out_of_service=bool(frame.get("outOfService")))


def central_comment(words: str, user: str, comment: str | None) -> str:
    """The comment a site journals for a central operator's action: who at the centre, and their note."""
    return (f"{words} at the central panel by {user}" + (f": {comment}" if comment else ""))[:MAX_COMMENT]


@dataclass
class DeviceLinkToPlant:
    """The DeviceLink handed to one driver: readings and comms state go to the plant.

    A reload cuts the link of a driver it stops before stopping it: whatever that driver still
    says on its way out (its comms going down, a last poll) describes a device definition that no
    longer exists, and must not raise a comms alarm or reach an endpoint the new config removed.
    """

    plant: Plant
    device_id: str
    db: Database | None = None
    cut: bool = False

    def readings(self, readings: Sequence[Reading]) -> None:
        if not self.cut:
            self.plant.ingest(readings)

    def comms(self, online: bool, error: str | None = None) -> None:
        if not self.cut:
            self.plant.mark_device(self.device_id, online, error)

    def site_alarm(self, alarm_id: int, frame: dict[str, Any] | None) -> None:
        """A site's alarm at the centre, as it stands there (the site's state is the truth): raised while it is
        active there, cleared once it is not (or over), shelved, out of service and latched as it is there
        (`AlarmService.follow`). The centre's operators acknowledge the centre's occurrence (and the site's, as
        the centre's MQTT user); their shelve, unshelve, reset and service actions are sent to the site
        (`Runtime._site_alarm_action`) and show here once the site's retained alarm topic says so."""
        if self.cut:
            return
        key = site_alarm_key(self.device_id, alarm_id)
        by = f"site:{self.device_id}"
        if frame is None:  # over at the site
            self.plant.alarms.follow(key, SITE_ALARM_KIND, Severity.HIGH, None, PointState(), by=by)
            return
        try:
            severity = Severity(str(frame.get("priority")))
        except ValueError:
            severity = Severity.HIGH  # a priority this version does not know: shown, and not as a low one
        node = frame.get("node")
        if not isinstance(node, str) or node not in self.plant.config.nodes_of_device(self.device_id):
            node = None  # a node this panel does not show the site's endpoints on: the alarm is the panel's
        message = str(frame.get("message") or "alarm at the site")
        if severity is Severity.ALERT:  # an event there: shown here as a momentary alert, and done
            if frame.get("active"):
                self.plant.alarms.raise_alarm(key, SITE_ALARM_KIND, severity, message, node=node, momentary=True)
            return
        self.plant.alarms.follow(key, SITE_ALARM_KIND, severity, message, _site_state(frame), node=node, by=by)

    def site_alarms_standing(self, alarm_ids: frozenset[int]) -> None:
        """After the site driver's (re)connect: a site alarm shown here (raised in this run, or restored from the
        store at start) that is not among those standing at the site is over there: it follows (cleared, reset,
        unshelved, back in service)."""
        if self.cut:
            return
        prefix = site_alarm_prefix(self.device_id)
        for key, point in list(self.plant.alarms.points.items()):
            state = point.state
            if key.startswith(prefix) and key.removeprefix(prefix).isdigit() \
                    and int(key.removeprefix(prefix)) not in alarm_ids \
                    and (state.active or state.latched or state.shelf is not None or state.out_of_service):
                self.plant.alarms.follow(key, SITE_ALARM_KIND, point.priority, None, PointState(),
                                         by=f"site:{self.device_id}")

    async def forwarded_history(self, site: str, store: str, after: int, up_to: int,
                                rows: Sequence[ForwardedRow]) -> tuple[int, bool]:
        """A site's forwarded history batch, stored once (store-and-forward): (the watermark now, gap)."""
        if self.cut or self.db is None:
            raise RuntimeError(f"device {self.device_id} is being stopped: the batch is not stored")
        return await self.db.write(take_forwarded, self.db.engine, site, store, after, up_to, rows)

    async def forwarded_events(self, site: str, store: str, stream: str, after: int, up_to: int,
                               rows: Sequence[dict[str, Any]]) -> tuple[int, bool]:
        """A site's forwarded alarm journal or audit entries, stored once (store-and-forward): (watermark, gap)."""
        if self.cut or self.db is None:
            raise RuntimeError(f"device {self.device_id} is being stopped: the batch is not stored")
        return await self.db.write(take_forwarded_events, self.db.engine, site, store, stream, after, up_to, rows)



class Runtime:
    def __init__(self, config: PlantConfig, db_url: str, factories: Mapping[str, DriverFactory],
                 config_path: str | None = None, host: str = "127.0.0.1", clock: Clock | None = None,
                 config_check: ExtraCheck | None = None) -> None:
        self.config = config
        self.factories = dict(factories)  # kept: a live reload builds the drivers of new and changed devices
        # the drivers' own checks (drivers.check, handed in by main.py): a reload checks the file as start-up did
        self.config_check = config_check
        self.clock: Clock = clock if clock is not None else SystemClock()  # process time: the controllers tick on it
        self.config_path = config_path
        self.db = Database(db_url, config.store.busy_timeout_s)
        self.audit = AuditLog(self.db)
        self.auth = AuthService(config, self.db, self.audit, host)
        self.bus = EventBus(history=config.realtime.sse_buffer, default_limit=config.realtime.queue_limit,
                            history_s=config.realtime.sse_buffer_s)
        # the writer batches telemetry into the store; the reader answers trends and listings from it
        self.history_writer = HistoryWriter(self.db, config.store.flush_interval_s, config.store.flush_rows,
                                            config.store.max_pending_rows)
        self.history_reader = HistoryReader(self.db, self.history_writer)
        self.alarms = AlarmService(config, self.bus, self.db, self.audit)
        self.plant = Plant(config, self.bus, self.history_writer, self.alarms)
        self.alarms.states = self.plant.states
        self.intake = ReadingIntake(self.plant, config.ingest)
        self.alarms.device_online = self.plant.device_online
        self.drivers: dict[str, Driver] = {}
        for device in config.devices:
            factory = factories.get(device.driver)
            if factory is None:
                raise ValueError(f"device {device.id}: no driver named {device.driver!r} "
                                 f"(available: {', '.join(sorted(factories))})")
            endpoints = [e for e in config.endpoints if e.device == device.id]
            self.drivers[device.id] = factory(device, endpoints, self.link_for(device.id))
        self.commands = CommandService(config, self.plant, self.bus, self.db, self.alarms, self.drivers, self.audit)
        self.retention = RetentionService(config.retention, self.db, self.alarms)
        self.retention.keep_newest = config.mqtt is not None and config.mqtt.forward is not None
        self.plant.trip_handler = self.commands.trip
        self.controllers = ControllerService(config, self.plant, self.commands, self.alarms, self.bus, self.db,
                                             self.audit, self.clock)
        self.trends = TrendViews(config, self.db, self.audit, self.alarms)  # the /trends screen's views and markers
        self.programs = ProgramService(config, self.plant, self.controllers, self.commands, self.alarms, self.bus,
                                       self.db, self.audit, self.clock)
        self.recipes = RecipeService(config, self.db, self.audit, self.programs, self.clock)  # drafts → programs
        # the plant on an MQTT broker (docs/mqtt.md): only with an `mqtt:` section; never waited on by control
        self.mqtt: MqttBridge | None = None
        if config.mqtt is not None:
            from bevforge.mqtt import MqttBridge  # here: the MQTT client library loads only for a plant that uses it

            self.mqtt = MqttBridge(config.mqtt, lambda: self.config, self.plant, self.alarms, self.commands, self.bus,
                                   self.db)
        # fermenter values to a Brewfather custom stream (docs/integrations.md): only with a `brewfather:` section
        self.brewfather: BrewfatherPush | None = None
        if config.brewfather is not None:
            from bevforge.integrations.brewfather import BrewfatherPush  # here: httpx loads only when it is used

            self.brewfather = BrewfatherPush(config.brewfather, lambda: self.config, self.plant.states, self.clock)
        # alarms and prompts told by e-mail, Telegram, … (bevforge/notify): only with a `notifications:` section
        self.notifications: NotificationService | None = None
        if config.notifications is not None:
            from bevforge.notify import NotificationService  # here: Apprise loads only for a plant that uses it

            self.notifications = NotificationService(config.notifications, self.bus, self.clock, self.audit,
                                                     config.site.timezone)
        self.started_at: float | None = None
        self.interrupted_commands = 0
        # No user yet: the first-run setup code is handed here at start (main.py prints it on the console)
        self.on_first_run: Callable[[str], None] | None = None
        self.attachments: dict[str, Any] = {}  # things the composition root hangs on (the simulator)
        self._background: set[asyncio.Task[Any]] = set()  # fire-and-forget tasks kept from the garbage collector
        self.reloader = ConfigReloader(self)
        self.alarms.listeners.append(self._site_alarm_acknowledged)
        self.alarms.remote[SITE_ALARM_KIND] = self._site_alarm_action  # a site's alarms: the site decides

    async def start(self) -> None:
        create_schema(self.db.engine)
        sync_endpoints(self.db.engine, (
            EndpointRow(id=e.id, name=e.name, node=e.node, kind=e.kind.value, unit=e.unit,
                        data_type=e.data_type.value, writable=e.writable)
            for e in self.config.endpoints
        ))
        self.interrupted_commands = fail_interrupted_commands(self.db.engine)
        if self.interrupted_commands:
            log.warning("%d commands were in flight at the last stop: marked failed, not re-sent",
                        self.interrupted_commands)
        self.alarms.load()
        self.controllers.load()
        self.programs.load()
        self.auth.load()
        if self.auth.setup_code is not None:  # the console is told when sign-in is required; else only the log
            if self.auth.mode == "required" and self.on_first_run is not None:
                self.on_first_run(self.auth.setup_code)
            else:
                log.info("no user exists: the first admin is created at /setup with the setup code %s",
                         self.auth.setup_code)
        self.auth.start()
        self.db.health.attach(asyncio.get_running_loop(), self._store_health_changed)
        if self.notifications is not None:  # listening before the alarms start: the first raise is told too
            self.notifications.start()
        self.alarms.start()
        self.history_writer.start()
        self.retention.start()
        self.plant.start()
        for driver in self.drivers.values():
            await driver.start()
        self.controllers.start()
        self.programs.start()
        if self.mqtt is not None:
            await self.mqtt.start()
        if self.brewfather is not None:
            self.brewfather.start()
        self.started_at = time.monotonic()

    def _site_alarm_acknowledged(self, alarm: Alarm, event: str) -> None:
        """A site's alarm acknowledged on this (central) panel is acknowledged at the site too, as this panel's
        MQTT user: the site's own pipeline checks and journals it (drivers/site.py, docs/mqtt.md)."""
        if event != "acked" or alarm.kind != SITE_ALARM_KIND or alarm.acked_by is None:
            return
        device_id, _, site_alarm = alarm.rule_id.removeprefix("site:").rpartition(":")
        driver = self.drivers.get(device_id)
        acknowledge = getattr(driver, "acknowledge_at_site", None)
        if acknowledge is None or not site_alarm.isdigit():
            return
        comment = central_comment("acknowledged", alarm.acked_by, alarm.ack_comment)
        task = asyncio.get_running_loop().create_task(acknowledge(int(site_alarm), comment))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _site_alarm_action(self, point: Point, event: AlarmEvent, actor: Actor, fields: dict[str, Any]) -> str:
        """A centre operator's shelve, unshelve, reset or service action on a site's alarm, sent to the site as this
        panel's MQTT user (drivers/site.py, docs/mqtt.md): the site's own alarm service checks that user's role, does
        it and journals it; this panel's point follows the site's retained alarm topic. Refused whole (Unavailable,
        `site_unreachable`) when the site cannot be reached now: nothing is changed here or there."""
        action, words = SITE_ALARM_ACTIONS[event]
        device_id, _, site_alarm = point.key.removeprefix("site:").rpartition(":")
        driver = self.drivers.get(device_id)
        send = getattr(driver, "alarm_action_at_site", None)
        why = "no such site device" if send is None or not site_alarm.isdigit() else driver.unreachable()
        if why is not None:
            site = getattr(driver, "site", device_id)
            raise Unavailable(f"site {site} cannot be reached now ({why}): the alarm is not {words} there, and this "
                              "panel shows it as the site has it", code=SITE_UNREACHABLE)
        body = {k: v for k, v in fields.items() if v is not None and k != "comment"}
        body["comment"] = central_comment(words, actor.user, fields.get("comment"))
        task = asyncio.get_running_loop().create_task(self._send_to_site(send, int(site_alarm), action, body))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return f"sent to site {getattr(driver, 'site', device_id)} as its alarm {site_alarm}"

    @staticmethod
    async def _send_to_site(send: Any, alarm_id: int, action: str, body: dict[str, Any]) -> None:
        if not await send(alarm_id, action, body):
            log.warning("a site's alarm %d: %s not sent (the link dropped just now): nothing changed there",
                        alarm_id, action)

    def link_for(self, device_id: str) -> DeviceLinkToPlant:
        """The DeviceLink a new driver of this device reports through (at start-up and on a reload)."""
        return DeviceLinkToPlant(self.plant, device_id, self.db)

    async def stop_driver(self, device_id: str) -> None:
        """Stop one device's driver and forget it (a reload removed or changed the device). Its link is
        cut first; a driver that does not stop within STOP_TIMEOUT_S is logged and left behind, cut off."""
        driver = self.drivers.pop(device_id, None)
        if driver is None:
            return
        link = driver.link
        if isinstance(link, DeviceLinkToPlant):
            link.cut = True
        try:
            await asyncio.wait_for(driver.stop(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.error("driver %s did not stop within %.0f s", device_id, STOP_TIMEOUT_S)
        except Exception:
            log.exception("driver %s did not stop cleanly", device_id)

    def _store_health_changed(self, ok: bool, reason: str | None) -> None:
        """The store alarm follows the store: raised on the first refused write, cleared on the next that works."""
        if ok:
            self.alarms.clear(STORE_ALARM_KEY)
        else:
            self.alarms.raise_alarm(
                STORE_ALARM_KEY, STORE_ALARM_KIND, Severity.HIGH,
                f"Database cannot be written: {reason} — control and alarms go on; commands, sign-in and "
                "changes are refused until it can, history is held and written when it can")

    async def stop(self) -> None:
        """Stop every part; a part that does not stop within STOP_TIMEOUT_S is logged and left behind,
        so a stuck port or socket can never keep the plant from shutting down."""
        steps: list[tuple[str, Any]] = [("mqtt", self.mqtt.stop)] if self.mqtt is not None else []
        steps += [("brewfather", self.brewfather.stop)] if self.brewfather is not None else []
        steps += [("programs", self.programs.stop), ("controllers", self.controllers.stop)]
        steps += [(f"driver {d.device.id}", d.stop) for d in self.drivers.values()]
        steps += [("commands", self.commands.stop), ("plant", self.plant.stop), ("retention", self.retention.stop),
                  ("alarms", self.alarms.stop), ("history writer", self.history_writer.stop), ("auth", self.auth.stop)]
        if self.notifications is not None:
            steps.append(("notifications", self.notifications.stop))
        for name, stop in steps:
            try:
                await asyncio.wait_for(stop(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.error("%s did not stop within %.0f s", name, STOP_TIMEOUT_S)
            except Exception:
                log.exception("%s did not stop cleanly", name)
        self.db.close()

    def health(self, ticks_since: int | None = None) -> dict[str, object]:
        """The technician's view of the running core; `ticks_since` narrows the controllers' tick
        lateness to the ticks numbered after it (see `ControllerService.timing`)."""
        import fastapi
        import pydantic
        import sqlalchemy

        return {
            "status": "ok",
            "version": __version__,
            "versions": {"bevforge": __version__, "fastapi": fastapi.__version__,
                         "pydantic": pydantic.__version__, "sqlalchemy": sqlalchemy.__version__},
            "uptimeS": round(time.monotonic() - self.started_at, 1) if self.started_at else 0.0,
            "site": self.config.site.name,
            "drivers": [d.status() for d in self.drivers.values()],
            "database": {"url": self.db.url.split("://", 1)[0], "historyPending": self.history_writer.pending,
                         "rowsWritten": self.history_writer.rows_written, "lastError": self.history_writer.last_error,
                         "writeErrors": self.db.write_errors, "writable": self.db.health.ok,
                         "storeFault": self.db.health.reason, "historyDropped": self.history_writer.rows_dropped,
                         "heldWrites": len(self.db.held.jobs), "heldDropped": self.db.held.dropped},
            "bus": {"published": self.bus.published, "subscribers": self.bus.subscriber_count},
            "readingsIngested": self.plant.readings_ingested,
            "tasks": len(asyncio.all_tasks()),  # flat over a soak run, or something leaks tasks
            "retention": self.retention.stats.as_dict(),
            "auth": self.auth.mode,
            "controllers": self.controllers.timing(ticks_since),
            "mqtt": None if self.mqtt is None else self.mqtt.status(),
            "brewfather": None if self.brewfather is None else self.brewfather.status(),
        }

