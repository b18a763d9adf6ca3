"""kill -9 in a command burst: the record never contradicts what the screens were shown (issue 13.8).

`python main.py` runs as a real subprocess (temp SQLite file, free port, the simulated plant). Four
clients send commands to the valves as fast as they are answered while a /ws client subscribed to
`commands` records the last status pushed for each command. Right after a run of `succeeded` frames
has been seen, the app is killed with SIGKILL, the file is inspected, and the app is restarted.

Checked every round:
- every command answered 202 has its `command.request` audit row (written in the same transaction
  as the command row, before the answer);
- for every command whose final status (`succeeded` / `failed`) reached the socket, the stored status
  is that status — before the restart and after it (the restart's clean-up marks only commands that
  were still in flight `failed: interrupted by restart`; it never rewrites a status operators saw);
- a command shown in flight (`queued` / `sent` / `acked`) is stored at that step or a later one;
- every final command stored has its `command.result` audit row.

BEVFORGE_RECORD_KILLS sets the number of kills (default 4).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from drivers.sim.ports import use_simulator_ports
from tests.reliability.test_crash_recovery import start_app, wait_ready
from tests.support.server import config_document, free_port

pytestmark = pytest.mark.slow  # about a minute: four crashes and restarts of main.py

KILLS = int(os.environ.get("BEVFORGE_RECORD_KILLS", "4"))
VALVES = [22, 34, 51, 61]  # writable, no interlock on them: commands are accepted, not blocked
STEPS = {"queued": 0, "sent": 1, "acked": 2, "succeeded": 3, "failed": 3, "blocked": 3}
FINAL = ("succeeded", "failed", "blocked")
SUCCESSES_BEFORE_KILL = 25


@dataclass
class Seen:
    accepted: list[str] = field(default_factory=list)  # answered 202
    pushed: dict[str, str] = field(default_factory=dict)  # commandId → last status pushed on /ws
    successes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    enough: threading.Event = field(default_factory=threading.Event)  # a run of successes was pushed


def burst_client(base_url: str, name: str, stop: threading.Event, seen: Seen) -> None:
    with httpx.Client(base_url=base_url, timeout=5) as http:
        n = 0
        while not stop.is_set():
            command_id = f"{name}-{n}"
            try:
                answer = http.post("/api/os/command", json={"endpointId": VALVES[n % len(VALVES)],
                                                            "value": (n // len(VALVES)) % 2 == 0,
                                                            "commandId": command_id})
            except httpx.HTTPError:
                return  # the app is gone; this command had no answer, so no promise was made
            n += 1
            if answer.status_code == 202:
                with seen.lock:
                    seen.accepted.append(command_id)


def status_client(ws_url: str, stop: threading.Event, seen: Seen, subscribed: threading.Event) -> None:
    try:
        with connect(ws_url, open_timeout=10) as ws:
            ws.recv(timeout=10)  # connected
            ws.send(json.dumps({"type": "subscribe", "channel": "commands"}))
            subscribed.set()
            while not stop.is_set():
                try:
                    frame = json.loads(ws.recv(timeout=0.5))
                except TimeoutError:
                    continue
                if frame.get("type") != "command_status" or frame.get("snapshot"):
                    continue
                with seen.lock:
                    seen.pushed[frame["commandId"]] = frame["status"]
                    if frame["status"] == "succeeded":
                        seen.successes += 1
                        if seen.successes >= SUCCESSES_BEFORE_KILL:
                            seen.enough.set()
    except (ConnectionClosed, InvalidHandshake, OSError):
        return
    finally:
        subscribed.set()


def stored(db: Path) -> tuple[dict[str, str], set[str], set[str]]:
    """Stored status per command, and the command ids with a request / a result audit row."""
    conn = sqlite3.connect(db)
    try:
        statuses = dict(conn.execute("SELECT id, status FROM commands").fetchall())
        requests = {r[0] for r in conn.execute("SELECT command_id FROM audit WHERE action = 'command.request'")}
        results = {r[0] for r in conn.execute("SELECT command_id FROM audit WHERE action = 'command.result'")}
        return statuses, requests, results
    finally:
        conn.close()


def test_kill_9_in_a_command_burst_keeps_what_operators_saw(tmp_path: Path) -> None:
    doc = use_simulator_ports(config_document(), free_port(), str(tmp_path / "probe"))  # none shared
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    db = tmp_path / "bevforge.db"
    log = tmp_path / "main.log"
    shown_final: dict[str, str] = {}  # every final status ever pushed, over all rounds
    accepted_total = 0

    for kill in range(KILLS + 1):
        port = free_port()
        proc = start_app(config, db, port, log)
        base_url = f"http://127.0.0.1:{port}"
        threads: list[threading.Thread] = []
        stop = threading.Event()
        seen = Seen()
        try:
            with httpx.Client(base_url=base_url, timeout=10) as http:
                wait_ready(proc, http, log)
                # -- after the restart: nothing operators saw was rewritten ----------------------------
                for command_id, status in shown_final.items():
                    answer = http.get(f"/api/os/commands/{command_id}").json()
                    assert answer["status"] == status, (command_id, status, answer)
                if kill == KILLS:
                    break
                subscribed = threading.Event()
                threads = [threading.Thread(target=status_client,
                                            args=(f"ws://127.0.0.1:{port}/ws", stop, seen, subscribed))]
                threads += [threading.Thread(target=burst_client, args=(base_url, f"r{kill}-c{c}", stop, seen))
                            for c in range(4)]
                for thread in threads:
                    thread.start()
                subscribed.wait(30)
                assert seen.enough.wait(60), f"no run of successes was pushed:\n{log.read_text()[-3000:]}"
        finally:
            proc.send_signal(signal.SIGKILL)  # right after the successes were seen on the socket
            proc.wait()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

        # -- the file as the crash left it ---------------------------------------------------------
        statuses, requests, results = stored(db)
        with seen.lock:
            pushed, accepted = dict(seen.pushed), list(seen.accepted)
        missing_audit = [c for c in accepted if c not in requests]
        assert not missing_audit, f"kill {kill}: accepted commands without their audit row: {missing_audit[:5]}"
        behind = {c: (s, statuses.get(c)) for c, s in pushed.items()
                  if statuses.get(c) is None or STEPS[statuses[c]] < STEPS[s]
                  or (s in FINAL and statuses[c] != s)}
        assert not behind, f"kill {kill}: pushed → stored, the record is behind the screens: {list(behind.items())[:5]}"
        unaudited = [c for c, s in statuses.items() if s in ("succeeded", "failed") and c not in results
                     and c.startswith(f"r{kill}-")]
        assert not unaudited, f"kill {kill}: final commands without their result audit row: {unaudited[:5]}"
        shown_final.update({c: s for c, s in pushed.items() if s in FINAL})
        accepted_total += len(accepted)

    assert accepted_total > KILLS * SUCCESSES_BEFORE_KILL, "the clients got commands through"
    print(f"\ncommand records: {KILLS} kills, {accepted_total} commands answered 202 (all with their audit row), "
          f"{len(shown_final)} final statuses pushed (all stored, none rewritten by a restart)")

