"""Programs (issue 15): the step timer against real time, and a restart → the resume prompt on /ws and on a screen.

    python bench/programs.py [--drift-seconds 120 | --hour] [--runs 3]

Each part starts the real server (`python main.py`, the shipped config.yaml on free simulator ports,
sign-in off, a bench template added to its `programs:`) and reads it only as a screen does: a `/ws`
client subscribed to the `programs` channel.

- **Timer drift, system clock** (speed 1, `SystemClock`: what a deployment runs on): a `hold` step on
  FV1 (18 °C, band ± 10 °C and a day's grace, so its timer runs throughout) counts down; every frame the
  server pushes is stamped with the real monotonic time it arrived. Drift is the countdown (the first
  frame's time left less the last's) less the real time between the two frames. The issue's target is
  ≤ 1 s over one hour of real time; `make bench` cannot spend an hour, so it measures over
  `--drift-seconds` (default 120 s) and reports it without a verdict (the row says why: 1 s per hour is
  33 ms per 120 s, below what one window of frames resolves), with the countdown's rate scaled to an
  hour beside it; `--hour` measures the full hour and judges the target. The rate is the least-squares
  slope of time left over arrival time across every frame, because one frame alone is off by up to
  0.05 s (frames carry the time left rounded to 0.1 s) and by the push's latency (the tick's work and
  the socket: milliseconds, tens on a loaded machine).
- **Timer error at the end of a scaled hour** (speed 60, `ScaledClock`): a 60-minute hold on FV1 runs to
  its end (a real minute). The error is how long it took on the process clock (the program's `endedAt`
  less the step's `startedAt`, both process time) less 60 min; the runner looks at a step once a
  process second (`TICK_S`) after each look's work, so a step ends up to one look after its time is
  up (and at 60× a look's milliseconds of work are 60× that in process time). Reported, no target.
- **Restart → the resume prompt**: the server runs a brewhouse program (a 60-minute `wait` step, so no
  heater is involved); it is stopped with SIGTERM, or killed with SIGKILL, mid-step, and started again on
  the same database. Measured from the new process's start: the first `/api/os/health` answer, and the
  first `program` frame for the brewhouse on a `/ws` client subscribed to `programs` that is `paused`
  with the resume message (what every screen shows, as a dialog or on the Programs screen). The client
  retries its connection every 20 ms from the spawn on. And on a screen: the Control Panel page a kiosk
  keeps open in Chromium (`/usr/bin/chromium`, headless, one browser context for the run, so its HTTP cache
  holds the page's scripts as a kiosk's does), live before each stop, until the resume question shows on it:
  drawn by the page's restart watch (ui/restart_watch.py) as soon as the new process's `/ws` answers, or by
  the page's own prompt dialog if that came first. Reported beside it: when the page, reloaded from the new
  process, shows the question in its own prompt dialog. Then as many restarts again with no page open but
  one opened as soon as the new process takes TCP connections (a kiosk PC back from the same power cut, a
  new tab), until the question shows on it: on the starting page the server answers while its screens load
  (bevforge/api/screens_gate.py), or in the page's own dialog. Also shown: from the stop signal. The app's bytecode
  is cached (in the run's temporary folder) as a deployed service's is (docs/deployment.md), also where the
  caller's environment sets PYTHONDONTWRITEBYTECODE; the first start, which writes it, is not a measured one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import websockets
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Row, child_env, free_port, table  # noqa: E402
from drivers.sim.ports import use_simulator_ports  # noqa: E402

COMMAND = "python bench/programs.py"
DRIFT_TARGET_S = 1.0  # per hour of real time (issue 15)
PROMPT_TARGET_S = 3.0
# in band at once (FV1 starts at 18 °C), and a grace long enough that a probe reading late on a loaded machine
# (no GOOD value for a while: "out of band") never stops the timer: the bench measures the timer, not the probe
HOLD = {"type": "hold", "name": "Bench hold", "controller": "fv1_temperature", "target_c": 18, "band_c": 10,
        "grace_s": 86400}
WAIT = {"id": "bench_wait", "name": "Bench brewhouse wait", "unit": "brewhouse",
        "steps": [{"type": "wait", "name": "Bench rest", "minutes": 60}]}


class Server:
    """`python main.py` on one data directory, config file and port, across restarts."""

    def __init__(self, tmp: Path, speed: float, hold_minutes: float) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        doc = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
        use_simulator_ports(doc, free_port(), str(tmp / "probe"))
        doc["auth"] = {"mode": "none"}
        doc["simulator"]["speedup"] = speed
        doc.setdefault("realtime", {})["idle_timeout_s"] = 7200  # the bench's client only listens
        programs = doc["programs"]
        programs["templates"] = [t for t in programs["templates"] if t["id"] not in ("bench_hold", "bench_wait")]
        programs["templates"] += [{"id": "bench_hold", "name": "Bench hold", "unit": "fv1",
                                   "steps": [{**HOLD, "minutes": hold_minutes}]}, WAIT]
        self.config = tmp / "config.yaml"
        self.config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> float:
        env = child_env(self.tmp / "pycache")  # bytecode cached as a deployed service's is (the first start writes it)
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "--port", str(self.port), "--host", "127.0.0.1",
             "--data-dir", str(self.tmp), "--config", str(self.config), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return t0

    def health_ok(self, timeout: float = 60.0) -> float:
        """Until /api/os/health first answers 200; the real monotonic time it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.base}/api/os/health", timeout=1).status_code == 200:
                    return time.monotonic()
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError("the server did not answer /api/os/health in time")

    def online(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{self.base}/api/os/health", timeout=1).json()
                if health.get("drivers") and all(d["online"] for d in health["drivers"]):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("devices not online in time")

    def start_program(self, unit: str, template: str) -> dict[str, Any]:
        answer = httpx.post(f"{self.base}/api/os/programs/{unit}/start", json={"templateId": template}, timeout=30)
        if answer.status_code != 200:
            raise RuntimeError(f"start {template}: {answer.status_code} {answer.text}")
        return answer.json()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def frames(url: str, unit: str, until: Any, timeout: float, connect_until: float | None = None,
                 on_frame: Any = None) -> tuple[float, dict[str, Any]]:
    """Subscribe to `programs` (retrying the connection until `connect_until`) and read `unit`'s frames
    until `until(frame)`; returns (real monotonic time it arrived, the frame)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with websockets.connect(url, open_timeout=5, max_size=None) as ws:
                await ws.send(json.dumps({"type": "subscribe", "channel": "programs"}))
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"no such {unit} frame within {timeout} s")
                    frame = json.loads(await asyncio.wait_for(ws.recv(), left))
                    at = time.monotonic()
                    if frame.get("type") != "program" or frame.get("unit") != unit:
                        continue
                    if on_frame is not None:
                        on_frame(at, frame)
                    if until(frame):
                        return at, frame
        except (OSError, websockets.exceptions.InvalidHandshake, websockets.exceptions.ConnectionClosed):
            if connect_until is None or time.monotonic() > connect_until:
                raise
            await asyncio.sleep(0.02)


def iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def drift(seconds: float) -> dict[str, float]:
    """A hold on the system clock for `seconds` of real time: the countdown against the real clock."""
    with tempfile.TemporaryDirectory(prefix="bevforge-bench-programs-") as tmp:
        server = Server(Path(tmp), speed=1.0, hold_minutes=(seconds + 600) / 60)
        server.spawn()
        try:
            server.health_ok()
            server.online()
            seen: list[tuple[float, float]] = []

            def note(at: float, frame: dict[str, Any]) -> None:
                step = frame.get("step")
                if frame["state"] == "running" and step and step.get("remainingS") is not None \
                        and not frame.get("snapshot"):
                    seen.append((at, float(step["remainingS"])))

            async def run() -> None:
                task = asyncio.create_task(frames(server.ws_url, "fv1", lambda f: False, seconds + 60,
                                                  on_frame=note))
                await asyncio.sleep(1.0)  # subscribed
                await asyncio.to_thread(server.start_program, "fv1", "bench_hold")
                while not seen or seen[-1][0] - seen[0][0] < seconds:
                    if task.done():
                        task.result()
                    await asyncio.sleep(0.2)
                task.cancel()

            asyncio.run(run())
        finally:
            server.stop()
    # from the first frame pushed after the start's own (the countdown's first whole second) to the last
    seen = seen[1:]
    (t0, r0), (t1, r1) = seen[0], seen[-1]
    real = t1 - t0
    counted = r0 - r1
    # the countdown's rate against real time: the least-squares slope of time left over arrival time, over every
    # frame (each end point alone is off by up to 0.05 s: frames carry the time left rounded to 0.1 s)
    n = len(seen)
    mean_t = sum(t for t, _ in seen) / n
    mean_r = sum(r for _, r in seen) / n
    slope = sum((t - mean_t) * (r - mean_r) for t, r in seen) / sum((t - mean_t) ** 2 for t, _ in seen)
    return {"real": real, "counted": counted, "drift": counted - real, "frames": n,
            "per_hour": (-slope - 1.0) * 3600.0}


def scaled_hour(speed: float = 60.0) -> dict[str, float]:
    """A 60 min hold on a clock `speed` times real time, run to its end."""
    with tempfile.TemporaryDirectory(prefix="bevforge-bench-programs-") as tmp:
        server = Server(Path(tmp), speed=speed, hold_minutes=60)
        server.spawn()
        try:
            server.health_ok()
            server.online()
            started = server.start_program("fv1", "bench_hold")
            t0 = time.monotonic()
            at, done = asyncio.run(frames(server.ws_url, "fv1", lambda f: f["state"] == "completed",
                                          3600 / speed + 120))
        finally:
            server.stop()
    took = (iso(done["endedAt"]) - iso(started["step"]["startedAt"])).total_seconds()
    return {"took": took, "error": took - 3600.0, "real": at - t0, "speed": speed}


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREEN_PROMPT = '[data-testid="prompt-text-brewhouse-restart"]'  # the resume question in the dialog every page draws
# the same question drawn by the page's restart watch (ui/restart_watch.py) until the page is drawn again
WATCH_PROMPT = '[data-testid="restart-prompt-text-brewhouse"]'
LIVE = "() => window.bevforgeConnection && window.bevforgeConnection().online && window.bevforgeConnection().fresh"


def _shown(selector: str) -> str:
    """A page-side check that an element of `selector` is drawn (has a box and is not hidden)."""
    return (f"() => [...document.querySelectorAll('{selector}')].some((q) => q.getClientRects().length > 0 "
            "&& getComputedStyle(q).visibility !== 'hidden')")


async def shown_at(page: Any, selector: str, until: float) -> float:
    """The real monotonic time an element of `selector` is drawn on the page, checked at every animation frame
    (what the screen paints; Playwright's own waits poll at growing intervals, up to 0.5 s apart). A reload
    in between (the page drawn again from the new process) is waited through."""
    from playwright.async_api import Error as PlaywrightError

    while True:
        try:
            await page.wait_for_function(_shown(selector), polling="raf",
                                         timeout=max(1.0, until - time.monotonic()) * 1000)
            return time.monotonic()
        except PlaywrightError as exc:  # the context went with a navigation: ask the new page
            if "destroyed" not in str(exc) and "navigat" not in str(exc):
                raise


async def open_kiosk(base: str, browser: Any) -> Any:
    """The Control Panel page a kiosk keeps open, live (connected, drawn from the present state)."""
    page = await browser.new_page()
    await page.goto(f"{base}/", timeout=30_000)
    await page.wait_for_function(LIVE, timeout=30_000)
    return page


async def screen_prompt(page: Any, until: float) -> tuple[float, float]:
    """On the kiosk's page, open when the server stopped: the real monotonic times the resume question first
    shows on it (drawn by its restart watch, or by the page's dialog if that came first) and the page's own
    dialog shows it (after the page reloaded from the new process: what a page opened now shows)."""
    first = await shown_at(page, f"{WATCH_PROMPT}, {SCREEN_PROMPT}", until)
    return first, await shown_at(page, SCREEN_PROMPT, until)


async def new_page_prompt(base: str, browser: Any, until: float) -> float:
    """A Control Panel page opened as soon as the new process takes connections (a kiosk PC back from the same
    power cut, a new tab): the real monotonic time the resume question first shows on it (the starting page's
    restart watch while the screens load, or the page's own dialog)."""
    host, port = base.removeprefix("http://").split(":")
    while True:  # a cheap TCP connect until it listens: Chromium drawing its error page again and again
        try:      # would take the CPU the starting server needs
            _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            break
        except OSError:
            if time.monotonic() > until:
                raise
            await asyncio.sleep(0.02)
    page = await browser.new_page()
    try:
        await page.goto(f"{base}/", wait_until="commit", timeout=30_000)
        return await shown_at(page, f"{WATCH_PROMPT}, {SCREEN_PROMPT}", until)
    finally:
        await page.close()


def restart(runs: int, screen: bool = True) -> list[dict[str, Any]]:
    """Stop (SIGTERM) or kill (SIGKILL) the server mid-step, `runs` times each with a Control Panel page open in
    Chromium throughout (as a kiosk's is), then as often with a page opened as the new process listens; time
    the resume prompt on a /ws client and (`screen`) on those pages."""
    return asyncio.run(_restart(runs, screen and Path(CHROMIUM).exists()))


async def _restart(runs: int, screen: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    playwright = browser = None
    if screen:
        from playwright.async_api import async_playwright

        playwright = await async_playwright().start()
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        browser = await chromium.new_context(viewport={"width": 1280, "height": 800})
    with tempfile.TemporaryDirectory(prefix="bevforge-bench-programs-") as tmp:
        server = Server(Path(tmp), speed=1.0, hold_minutes=60)
        server.spawn()
        try:
            await asyncio.to_thread(server.health_ok)
            await asyncio.to_thread(server.online)
            await asyncio.to_thread(server.start_program, "brewhouse", "bench_wait")
            kiosk = await open_kiosk(server.base, browser) if browser is not None else None
            plan = [(sig, "open") for sig in [signal.SIGTERM] * runs + [signal.SIGKILL] * runs]
            if browser is not None:
                plan += [(sig, "new") for sig in [signal.SIGTERM] * runs + [signal.SIGKILL] * runs]
            for sig, page_is in plan:
                if page_is == "new" and kiosk is not None:  # one page at a time: the kiosk's closes first
                    await kiosk.close()
                    kiosk = None
                await asyncio.sleep(1.5)  # mid-step: the wait has run, and been stored (save_every_s, transitions)
                signalled = time.monotonic()
                await asyncio.to_thread(server.stop, sig)
                spawned = server.spawn()

                def resume_prompt(frame: dict[str, Any]) -> bool:
                    return frame["state"] == "paused" and "Resume" in (frame.get("message") or "")

                prompt = asyncio.create_task(frames(server.ws_url, "brewhouse", resume_prompt, 60,
                                                    connect_until=spawned + 60))
                on_screen = (asyncio.create_task(screen_prompt(kiosk, spawned + 60)) if kiosk is not None else
                             asyncio.create_task(new_page_prompt(server.base, browser, spawned + 60))
                             if browser is not None else None)
                health = await asyncio.to_thread(server.health_ok)
                at, _frame = await prompt
                shown = dialog = None
                if kiosk is not None:
                    shown, dialog = await on_screen
                elif on_screen is not None:
                    shown = await on_screen
                out.append({"signal": sig.name, "page": page_is, "health": health - spawned, "prompt": at - spawned,
                            "from_signal": at - signalled, "screen": None if shown is None else shown - spawned,
                            "dialog": None if dialog is None else dialog - spawned})
                await asyncio.to_thread(server.online)
                (await asyncio.to_thread(httpx.post, f"{server.base}/api/os/programs/brewhouse/resume",
                                         timeout=30)).raise_for_status()
                if kiosk is not None:  # answered: the page is live again before the next stop
                    await kiosk.locator(SCREEN_PROMPT).wait_for(state="detached", timeout=30_000)
                    await kiosk.wait_for_function(LIVE, timeout=30_000)
        finally:
            server.stop()
            if browser is not None:
                await browser.browser.close()
            if playwright is not None:
                await playwright.stop()
    return out


def rows(drift_seconds: float = 120.0, runs: int = 3) -> list[Row]:
    d = drift(drift_seconds)
    per_hour = d["per_hour"]
    full_hour = d["real"] >= 3600.0 - 1
    command = COMMAND + (" --hour" if full_hour else f" --drift-seconds {drift_seconds:g}")
    measured = (f"{d['drift'] * 1000:+.0f} ms over {d['real']:.0f} s (countdown {d['counted']:.1f} s, "
                f"{d['frames']} frames)")
    if full_hour:
        drift_row = Row("program step timer drift, hold step on the system clock, one hour of real time", measured,
                        f"≤ {DRIFT_TARGET_S:g} s per hour", abs(d["drift"]) <= DRIFT_TARGET_S, command)
    else:
        share_ms = DRIFT_TARGET_S * 1000 * d["real"] / 3600.0
        drift_row = Row(f"program step timer drift, hold step on the system clock, over {d['real']:.0f} s of real "
                        "time — not an hour (`--hour` runs the full hour and judges the target)",
                        f"{measured}. Resolution about ±0.1 s (the time left is shown to 0.1 s, plus the frames' "
                        f"arrival jitter), so this window cannot resolve the target's {share_ms:.0f} ms per "
                        f"{d['real']:.0f} s; the countdown's rate (least squares over the frames) scaled linearly "
                        f"to an hour is {per_hour * 1000:+.0f} ms, dominated by that noise",
                        f"≤ {DRIFT_TARGET_S:g} s per hour of real time (judged by `--hour` only)", None, command)
    s = scaled_hour()
    scaled_row = Row(f"program step timer at speed {s['speed']:g} (ScaledClock): a 60 min hold run to its end, "
                     "error = process time it took − 60 min",
                     f"took {s['took']:.1f} process s ({s['error']:+.1f} s; {s['real']:.1f} real s). The runner "
                     f"looks at a step once a process second (TICK_S) after each look's work, so a step ends up to "
                     f"one look after its time is up: at ×{s['speed']:g} a look's real milliseconds of work are "
                     f"×{s['speed']:g} process time",
                     "— (reported, no target: the issue's target is the system clock's drift above)", None, command)
    r = restart(runs)
    out = [drift_row, scaled_row]
    for sig in ("SIGTERM", "SIGKILL"):
        mine = [x for x in r if x["signal"] == sig]
        prompt = [x["prompt"] for x in mine]
        out.append(Row(f"restart after {sig} mid-step → a /ws `programs` client has the paused frame with the "
                       "resume message (from the new process's start)",
                       f"median {statistics.median(prompt):.2f} s, worst {max(prompt):.2f} s ({len(prompt)} runs); "
                       f"first /api/os/health answer median {statistics.median(x['health'] for x in mine):.2f} s; "
                       f"from the {sig}: median {statistics.median(x['from_signal'] for x in mine):.2f} s",
                       f"≤ {PROMPT_TARGET_S:g} s", max(prompt) <= PROMPT_TARGET_S, COMMAND))
        screens = [x["screen"] for x in mine if x["page"] == "open" and x["screen"] is not None]
        if screens:
            out.append(_screen_row(f"restart after {sig} mid-step → the Control Panel page a kiosk has open in "
                                   "Chromium shows the resume question (drawn by its restart watch until the page is "
                                   "drawn again; from the new process's start)", screens, judged=True))
            out.append(_screen_row(f"restart after {sig} mid-step → that page, reloaded from the new process, shows "
                                   "the question in its own prompt dialog (from the new process's start)",
                                   [x["dialog"] for x in mine if x["page"] == "open"], judged=False))
        opened = [x["screen"] for x in mine if x["page"] == "new"]
        if opened:
            out.append(_screen_row(f"restart after {sig} mid-step → a Control Panel page opened in Chromium as soon "
                                   "as the new process takes connections shows the resume question (the starting "
                                   "page's restart watch while the screens load, or the page's own dialog; from the "
                                   "new process's start)", opened, judged=True))
    return out


def _screen_row(measure: str, seconds: list[float], judged: bool) -> Row:
    """Median and worst of a screen's times; judged against the target, or reported beside it."""
    result = f"median {statistics.median(seconds):.2f} s, worst {max(seconds):.2f} s ({len(seconds)} runs)"
    if judged:
        return Row(measure, result, f"≤ {PROMPT_TARGET_S:g} s", max(seconds) <= PROMPT_TARGET_S, COMMAND)
    return Row(measure, result, "— (reported: the open screen's question is judged above)", None, COMMAND)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drift-seconds", type=float, default=120.0, help="real seconds the drift is measured over")
    parser.add_argument("--hour", action="store_true", help="measure the drift over a full hour of real time")
    parser.add_argument("--runs", type=int, default=3, help="restarts per signal")
    args = parser.parse_args()
    produced = rows(3600.0 if args.hour else args.drift_seconds, args.runs)
    print(table(["measure", "result", "target", "met"], [r.cells()[:4] for r in produced]))
    return 0 if all(r.met is not False for r in produced) else 1


if __name__ == "__main__":
    sys.exit(main())
