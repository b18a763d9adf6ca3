"""Live config reload: check the edited config.yaml, work out what changed, apply it whole or not at all.

Why it exists: a restart stops polling every device for longer than the 2–3 s comms watchdogs in
the brewhouse's devices (issue 16; docs/deployment.md has the measured figures), so an edit mid-brew
would drop heaters and pumps to their safe state. A reload instead touches only what the edit touched.

The rules, in the order `ConfigReloader.reload` follows them:

1. **Same checks as start-up.** The file is read once, hashed, and parsed by `parse_config` with
   the drivers' own check (`Runtime.config_check`, drivers.check handed in by main.py), so a
   problem is reported as the same `file:line: field: message` `--check-config` prints. An invalid
   file changes nothing (`Invalid`, code `config_invalid`, every problem listed).
2. **Refuse what cannot be applied live.** Sections the running parts read only when they are
   built (`RESTART_SECTIONS`: the simulator's ports, sign-in, the live-feed limits, the store, the
   power budget...) are compared; any change refuses the whole reload, naming the key ("needs a
   restart: simulator.modbus_port changed"). So does an edit to an endpoint that a controller which
   keeps running uses (the loop holds it), and a change to a controller whose output the power
   budget shares out (the budget is built once). Nothing has changed at that point.
3. **Removed outputs go safe first**, through the command pipeline, attributed to `system` with
   origin `reload` (stored and audited like every command), while their device still runs under
   the old config. If one fails, the reload is refused and nothing else changes; an output whose
   device is offline is not sent (its device's watchdog owns it) and the answer says so. An output
   of a controller being removed or changed is left to that loop's own stop (step 4).
4. **Apply in one step.** Changed and removed controllers stop and put their outputs safe (as at
   shutdown, as `controller:<id>`); drivers of changed and removed devices stop; then, without
   awaiting, the runtime, plant, alarms, commands and controllers take the new config (so no
   reading or command ever sees half of it); then drivers of changed and new devices start, and
   changed and new controllers start, resuming as after a restart (their `resume` rule). A device
   whose definition and endpoints are unchanged keeps its driver object and its polling, and a
   controller that is unchanged keeps its loop and task: nothing is written for them.
5. **Tell everyone.** The endpoint mirror in the store is updated, a `config` bus event ends the
   live subscriptions to removed endpoints and redraws the screens, every continuous interlock is
   evaluated once against the present state, and the reload is audited (`config.reload`, with the
   diff summary and the file's sha256) — refused reloads too.

Reloads are serialised by a lock: a second request waits for the first to finish, then compares its
file against what the first applied.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bevforge import messages, permissions
from bevforge.bus import COMMAND_STATUS, CONFIG
from bevforge.config import ConfigError, ConfigProblem, PlantConfig, parse_config
from bevforge.devices import site_alarm_prefix
from bevforge.domain import Actor, CommandStatus
from bevforge.errors import (
    CONFIG_INVALID,
    NEEDS_RESTART,
    NO_CONFIG_FILE,
    RELOAD_FAILED,
    BevForgeError,
    Conflict,
    Invalid,
)
from bevforge.store import EndpointRow, sync_endpoints

if TYPE_CHECKING:
    from bevforge.devices import Driver
    from bevforge.runtime import Runtime

log = logging.getLogger(__name__)

RELOAD_ORIGIN = "reload"
FINAL_STATUSES = frozenset(s.value for s in CommandStatus if s.is_final)
# Read only when the runtime builds its parts: a change needs a restart (docs/config.md "Reloading").
RESTART_SECTIONS = ("simulator", "auth", "realtime", "store", "retention", "ingest", "power", "programs", "mqtt",
                    "brewfather", "notifications", "version")
# Compared and applied live; `devices` and `endpoints` are compared per entry below.
LIVE_SECTIONS = ("site", "nodes", "tiles", "interlocks", "alarms", "controllers", "commands", "ui", "layout",
                 "metrics")  # metrics: read on every scrape (api/metrics_api.py)
MAX_NAMED_KEYS = 10


@dataclass
class ConfigDiff:
    """What differs between the running config and the file, by section."""

    devices_added: list[str] = field(default_factory=list)
    devices_removed: list[str] = field(default_factory=list)
    devices_changed: list[str] = field(default_factory=list)  # definition or any of its endpoints
    endpoints_added: list[int] = field(default_factory=list)
    endpoints_removed: list[int] = field(default_factory=list)
    endpoints_changed: list[int] = field(default_factory=list)
    sections: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # live section → added/removed/changed
    needs_restart: list[str] = field(default_factory=list)  # dotted keys

    @property
    def empty(self) -> bool:
        return not (self.devices_added or self.devices_removed or self.devices_changed or self.endpoints_added
                    or self.endpoints_removed or self.endpoints_changed or self.sections or self.needs_restart)

    def summary(self) -> dict[str, Any]:
        """The diff as the API answers it and the audit row keeps it."""
        out: dict[str, Any] = {}
        devices = {"added": self.devices_added, "removed": self.devices_removed, "changed": self.devices_changed}
        endpoints = {"added": self.endpoints_added, "removed": self.endpoints_removed,
                     "changed": self.endpoints_changed}
        for name, parts in (("devices", devices), ("endpoints", endpoints), *self.sections.items()):
            kept = {k: v for k, v in parts.items() if v}
            if kept:
                out[name] = kept
        return out

    def words(self) -> str:
        """One line for the log and the audit journal."""
        parts = []
        for section, kinds in self.summary().items():
            parts.append(section + " " + ", ".join(f"{kind} {' '.join(map(str, ids))}" for kind, ids in kinds.items()))
        return "; ".join(parts) or "no change"


def _dump(value: Any) -> Any:
    """A section as plain JSON values (a list of models, a model, or a scalar such as `version`)."""
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def changed_keys(old: Any, new: Any, prefix: str) -> list[str]:
    """The dotted keys whose values differ (lists compared whole), e.g. ["simulator.modbus_port"]."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += changed_keys(old.get(key), new.get(key), f"{prefix}.{key}")
        return out
    return [] if old == new else [prefix]


def _by_id(old: list[Any], new: list[Any], key: str = "id") -> dict[str, list[Any]]:
    before = {getattr(item, key): _dump(item) for item in old}
    after = {getattr(item, key): _dump(item) for item in new}
    return {"added": [k for k in after if k not in before], "removed": [k for k in before if k not in after],
            "changed": [k for k in after if k in before and before[k] != after[k]]}


def compare(old: PlantConfig, new: PlantConfig) -> ConfigDiff:
    """Work out what a reload would change. Pure: reads two configs, touches nothing."""
    diff = ConfigDiff()
    for section in RESTART_SECTIONS:
        diff.needs_restart += changed_keys(_dump(getattr(old, section)), _dump(getattr(new, section)), section)
    endpoints = _by_id(old.endpoints, new.endpoints)
    diff.endpoints_added, diff.endpoints_removed, diff.endpoints_changed = (
        sorted(endpoints["added"]), sorted(endpoints["removed"]), sorted(endpoints["changed"]))
    devices = _by_id(old.devices, new.devices)
    diff.devices_added, diff.devices_removed = devices["added"], devices["removed"]
    touched = set(diff.endpoints_removed) | set(diff.endpoints_changed) | set(diff.endpoints_added)
    old_by_id, new_by_id = old.endpoints_by_id, new.endpoints_by_id
    touched_devices = {old_by_id[e].device for e in touched if e in old_by_id} | \
        {new_by_id[e].device for e in touched if e in new_by_id}
    diff.devices_changed = [d.id for d in new.devices if d.id not in diff.devices_added
                            and (d.id in devices["changed"] or d.id in touched_devices)]
    loops = _by_id(old.controllers, new.controllers)
    restarted = set(loops["removed"]) | set(loops["changed"])
    for controller in old.controllers:  # a loop that keeps running holds its endpoints: they must stay as they are
        if controller.id in restarted:
            continue
        used = {controller.input, *controller.outputs, controller.setpoint_id}
        for eid in sorted(used & (set(diff.endpoints_removed) | set(diff.endpoints_changed))):
            diff.needs_restart.append(f"endpoints[id={eid}] (used by controller {controller.id})")
    budgeted = {e.output for c in (old, new) if c.power is not None for e in c.power.elements}
    for controller in [*old.controllers, *new.controllers]:  # the power budget is built once, with its loops
        key = f"controllers[id={controller.id}] (drives an output in power.elements)"
        if (controller.id in restarted or controller.id in loops["added"]) and budgeted & set(controller.outputs) \
                and key not in diff.needs_restart:
            diff.needs_restart.append(key)
    for section in LIVE_SECTIONS:
        before, after = getattr(old, section), getattr(new, section)
        if isinstance(before, list):
            parts = _by_id(before, after)
            if any(parts.values()):
                diff.sections[section] = parts
        elif _dump(before) != _dump(after):
            diff.sections[section] = {"changed": changed_keys(_dump(before), _dump(after), section)}
    return diff


def config_problems(exc: ConfigError) -> Invalid:
    """The refusal of an invalid file: every problem as `file:line: field: message`, the first one's field."""
    problems: list[ConfigProblem] = exc.problems
    first = problems[0] if problems else None
    return Invalid(f"the config has {len(problems)} problem(s); nothing was changed: " + "; ".join(map(str, problems)),
                   code=CONFIG_INVALID, field=first.field if first else None,
                   problems=[str(p) for p in problems])


class ConfigReloader:
    """Applies an edited config file to a running `Runtime` (see the module docstring for the rules)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = asyncio.Lock()
        self.reloads = 0  # applied reloads since start
        self.last: dict[str, Any] | None = None  # the last answer or refusal, as the screens show it

    async def reload(self, actor: Actor, origin: str = "api") -> dict[str, Any]:
        """Check and apply the config file; the answer says what changed. Raises (nothing changed):
        `Forbidden` below technician, `Invalid` (config_invalid) for a bad file, `Conflict` for a key that
        needs a restart (needs_restart), a removed output that could not be put safe (reload_failed), or
        a server with no config file (no_config_file)."""
        permissions.require_role(actor, permissions.TECHNICIAN)
        async with self._lock:
            try:
                answer = await self._reload(actor, origin)
            except BevForgeError as exc:
                self._refused(actor, origin, exc)
                raise
            self.last = answer
            return answer

    async def reload_from_signal(self) -> None:
        """SIGHUP: reload as the system; the log (and the audit journal) is the only place to answer."""
        try:
            await self.reload(Actor(user="system", station="SIGHUP", role="admin"), origin="sighup")
        except BevForgeError:
            pass  # already logged and audited by reload()
        except Exception:
            log.exception("config reload on SIGHUP failed")

    def _refused(self, actor: Actor, origin: str, exc: BevForgeError) -> None:
        self.last = {"status": "refused", "error": exc.code, "message": exc.message, "field": exc.field,
                     **exc.extra}
        for line in exc.extra.get("problems") or [exc.message]:
            log.error("config reload refused: %s", line)
        if self.runtime.audit is not None:
            self.runtime.audit.record(actor, "config.reload", target=self.runtime.config_path, result="refused",
                                      detail=f"{origin}: {exc.code}: {exc.message}"[:2000])

    async def _reload(self, actor: Actor, origin: str) -> dict[str, Any]:
        rt = self.runtime
        if not rt.config_path:
            raise Conflict("this server was not started from a config file; nothing to reload", code=NO_CONFIG_FILE)
        path = Path(rt.config_path)
        try:
            raw = await asyncio.to_thread(path.read_bytes)
            text = raw.decode("utf-8")
        except OSError as exc:
            raise config_problems(ConfigError([ConfigProblem(str(path), None, "", f"cannot read: {exc.strerror}")])
                                  ) from None
        except UnicodeDecodeError:
            raise config_problems(ConfigError([ConfigProblem(str(path), None, "", "not UTF-8 text")])) from None
        digest = hashlib.sha256(raw).hexdigest()
        try:
            new = parse_config(text, str(path), rt.config_check)
        except ConfigError as exc:
            raise config_problems(exc) from None
        old = rt.config
        diff = compare(old, new)
        if diff.needs_restart:
            named = diff.needs_restart[:MAX_NAMED_KEYS]
            more = f" and {len(diff.needs_restart) - len(named)} more" if len(diff.needs_restart) > len(named) else ""
            raise Conflict(f"needs a restart: {', '.join(named)}{more} changed; nothing was changed",
                           code=NEEDS_RESTART, field=named[0], keys=diff.needs_restart)
        if diff.empty:
            answer = {"status": "unchanged", "configHash": digest, "file": str(path), "changes": {}, "commands": []}
            rt.audit.record(actor, "config.reload", target=str(path), result="unchanged",
                            detail=f"{origin}; sha256 {digest}")
            log.info("config reload (%s): %s unchanged", origin, path)
            return answer
        built = self._build_drivers(new, diff)
        loops = diff.sections.get("controllers", {})
        stopping = set(loops.get("removed", [])) | set(loops.get("changed", []))
        commands = await self._outputs_safe(old, diff, stopping)
        await self._apply(old, new, diff, built, digest)
        summary = diff.summary()
        rt.audit.record(actor, "config.reload", target=str(path), result="applied",
                        detail=f"{origin}; sha256 {digest}; {diff.words()}"[:2000])
        log.warning("config reload (%s) applied from %s (sha256 %s): %s", origin, path, digest[:12], diff.words())
        self.reloads += 1
        return {"status": "applied", "configHash": digest, "file": str(path), "changes": summary, "commands": commands}

    def _build_drivers(self, new: PlantConfig, diff: ConfigDiff) -> dict[str, Driver]:
        """Build (not start) the drivers of new and changed devices before anything changes: a driver
        that refuses its settings here refuses the reload, not half of it."""
        rt = self.runtime
        built: dict[str, Driver] = {}
        for device in new.devices:
            if device.id not in diff.devices_added and device.id not in diff.devices_changed:
                continue
            factory = rt.factories.get(device.driver)
            if factory is None:
                raise Invalid(f"device {device.id}: no driver named {device.driver!r}", code=CONFIG_INVALID,
                              field="devices.driver", problems=[f"device {device.id}: no driver {device.driver!r}"])
            endpoints = [e for e in new.endpoints if e.device == device.id]
            try:
                built[device.id] = factory(device, endpoints, rt.link_for(device.id))
            except ValueError as exc:
                raise Invalid(f"{device.id}: {exc}", code=CONFIG_INVALID, field="devices",
                              problems=[f"{rt.config_path}: {exc}"]) from None
        return built

    async def _outputs_safe(self, old: PlantConfig, diff: ConfigDiff, stopping: set[str]) -> list[dict[str, Any]]:
        """Command every removed output to its safe value and wait for the outcome (old config still live).

        The outcome is read from the commands' own `command_status` frames, which are published only
        once stored, so the answer never reports a status the record does not hold yet.
        """
        rt = self.runtime
        answers: list[dict[str, Any]] = []
        pending: dict[str, int] = {}  # command id → endpoint
        final: dict[str, dict[str, Any]] = {}
        sub = rt.bus.subscribe(lambda e: e.type == COMMAND_STATUS and e.payload["commandId"] in pending
                               and e.payload["status"] in FINAL_STATUSES, name="config-reload")
        try:
            for eid in diff.endpoints_removed:
                endpoint = old.endpoint(eid)
                if not endpoint.writable or endpoint.safe_value is None or endpoint.source != "device":
                    continue
                owner = next((c.id for c in old.controllers if eid in c.outputs), None)
                if owner is not None and owner in stopping:  # the loop's own stop puts it safe, after it stopped
                    answers.append({"endpointId": eid, "name": endpoint.name, "status": "loop_stopped",
                                    "reason": f"put safe by controller {owner} as it stops"})
                    continue
                if not rt.plant.device_online.get(endpoint.device or "", False):
                    answers.append({"endpointId": eid, "name": endpoint.name, "status": "not_sent",
                                    "reason": f"device {endpoint.device} is offline: its watchdog puts it safe"})
                    continue
                command, _ = await rt.commands.submit(eid, endpoint.safe_value, actor=Actor.system(),
                                                      origin=RELOAD_ORIGIN, check_interlocks=False)
                if command.status.is_final:
                    final[command.id] = {"status": command.status.value, "error": command.error}
                pending[command.id] = eid
            timeout = old.commands.write_timeout_s + old.commands.readback_timeout_s + 2.0
            try:
                async with asyncio.timeout(timeout):
                    while len(final) < len(pending):
                        for event in await sub.get_many():
                            final[event.payload["commandId"]] = event.payload
            except TimeoutError:
                pass
        finally:
            sub.close("reload done")
        failed = []
        for command_id, eid in pending.items():
            outcome = final.get(command_id, {"status": "no final status in time", "error": None})
            answers.append({"endpointId": eid, "name": old.endpoint(eid).name, "commandId": command_id,
                            "status": outcome["status"]})
            if outcome["status"] != CommandStatus.SUCCEEDED.value:
                failed.append(f"{old.endpoint(eid).name}: {outcome['status']}"
                              + (f" ({outcome['error']})" if outcome.get("error") else ""))
        if failed:
            raise Conflict("a removed output could not be put to its safe value, so the config was not applied: "
                           + "; ".join(failed), code=RELOAD_FAILED, field="endpoints", commands=answers)
        return answers

    async def _apply(self, old: PlantConfig, new: PlantConfig, diff: ConfigDiff, built: dict[str, Driver],
                     digest: str) -> None:
        rt = self.runtime
        # the nodes the change belongs to, for who is told (removed endpoints: their node in the old config)
        touched = set(diff.endpoints_removed) | set(diff.endpoints_changed) | set(diff.endpoints_added)
        nodes = frozenset(e.node for c in (old, new) for e in c.endpoints if e.id in touched)
        loops = diff.sections.get("controllers", {})
        rebuild = set(loops.get("added", [])) | set(loops.get("changed", []))
        await rt.controllers.stop_loops(set(loops.get("removed", [])) | set(loops.get("changed", [])))
        rows = await rt.controllers.load_rows() if rebuild else {}
        for device_id in diff.devices_removed + diff.devices_changed:
            await rt.stop_driver(device_id)
        # -- one synchronous step: nothing else runs until every part holds the new config --
        rt.config = new
        rt.plant.reconfigure(new, set(diff.endpoints_changed))
        rt.alarms.reconfigure(new)
        rt.commands.reconfigure(new)
        rt.controllers.reconfigure(new, rebuild, rows)  # unchanged loops keep running untouched
        rt.auth.node_ids = {n.id for n in new.nodes}
        for device_id in diff.devices_removed:
            rt.alarms.clear(f"comms:{device_id}")
            rt.alarms.clear_prefix(site_alarm_prefix(device_id))  # a removed site's alarms shown here
        for eid in diff.endpoints_removed + diff.endpoints_changed:
            rt.alarms.clear(f"stale:{eid}")
        rt.drivers.update(built)
        # -- the rest may await --
        for device_id in built:
            try:
                await rt.drivers[device_id].start()
            except Exception as exc:  # the config is applied; a device that cannot start is a visible comms fault
                log.exception("config reload: driver %s did not start", device_id)
                rt.plant.mark_device(device_id, False, f"driver did not start after the reload: {exc}")
        rt.controllers.start_loops(rebuild)
        await rt.plant.restart_stale_sweep()
        mirror = [EndpointRow(id=e.id, name=e.name, node=e.node, kind=e.kind.value, unit=e.unit,
                              data_type=e.data_type.value, writable=e.writable) for e in new.endpoints]
        try:
            await rt.db.write(sync_endpoints, rt.db.engine, mirror)
        except Exception:  # the mirror only names history; the store alarm says why it failed
            log.exception("config reload: the endpoint list could not be written to the store")
        frame = messages.config_reloaded(digest, diff.endpoints_removed, diff.endpoints_changed,
                                         sorted(diff.summary()))
        rt.bus.publish(CONFIG, frame, node=nodes or None)
        rt.plant.check_all_interlocks()
