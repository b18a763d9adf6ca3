"""`make bench`: run every benchmark in bench/ and write ONE table, docs/benchmarks.md.

    python bench/run_all.py [--quick] [--out docs/benchmarks.md] [--only ingest,alarms,...]

Each benchmark module offers a function returning `bench.common.Row`s (measure, result, target,
met, command); a benchmark that has none (a newer bench/*.py) is run through its command line and
its Markdown table rows are copied with the target beside them. A benchmark that fails becomes a
row saying so: the report is always written, and the exit status says whether every target was met.
The soak runs in its short form here (2 minutes); the 30-minute soak is `python bench/soak.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Row  # noqa: E402


def suites(quick: bool) -> dict[str, Callable[[], list[Row]]]:
    def call(module: str, fn: str, **kw: object) -> Callable[[], list[Row]]:
        return lambda: getattr(importlib.import_module(f"bench.{module}"), fn)(**kw)

    return {
        "ingest": call("ingest", "rows", seconds=3.0 if quick else 5.0),
        "pg_writer": call("pg_writer", "rows", rows_total=200_000 if quick else 500_000),
        "pg_history": call("pg_history", "rows", rows_total=1_000_000 if quick else 10_000_000),
        "alarms": call("alarms", "rows"),
        "fanout": call("fanout", "rows", seconds=5.0 if quick else 10.0),
        "ui_clients": call("ui_clients", "collect", clients=20, seconds=10.0 if quick else 30.0),
        "control": call("control", "rows", jitter_seconds=30.0 if quick else 60.0),
        "modbus": modbus_rows,
        "crash": lambda: crash_rows(10 if quick else 20),
        "restart": call("restart", "rows", runs=2 if quick else 3),
        "programs": call("programs", "rows", drift_seconds=60.0 if quick else 120.0, runs=2 if quick else 3),
        "sites": call("sites", "rows", counts=(1, 3) if quick else (1, 3, 10), samples=100 if quick else 200),
        "scale": call("scale", "rows", warmup_s=10.0 if quick else 20.0, seconds=15.0 if quick else 30.0),
        "forward": call("forward", "rows", backlogs=(50_000,) if quick else (100_000, 500_000), centre_db="postgresql"),
        "soak": call("soak", "rows", minutes=1.0 if quick else 2.0, sample_s=20.0 if quick else 30.0,
                     out=lambda line: print(line, file=sys.stderr)),
    }


def modbus_rows() -> list[Row]:
    """bench/modbus.py (issue 5): its own rows() if it has one, else its printed table."""
    path = ROOT / "bench" / "modbus.py"
    if not path.exists():
        return [Row("Modbus: points/s and command round trip", "bench/modbus.py is not in this tree", "", None,
                    "python bench/modbus.py")]
    module = importlib.import_module("bench.modbus")
    if hasattr(module, "rows"):
        return module.rows()
    return table_rows([sys.executable, str(path)], "python bench/modbus.py")


def crash_rows(kills: int) -> list[Row]:
    """The crash-recovery test (tests/reliability/test_crash_recovery.py) with its printed figures."""
    command = (f"BEVFORGE_CRASH_KILLS={kills} python -m pytest -p no:playwright "
               "tests/reliability/test_crash_recovery.py -s")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"} | {"BEVFORGE_CRASH_KILLS": str(kills)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:playwright", "-q", "-s",
                           "tests/reliability/test_crash_recovery.py"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)
    summary = next((line.split("crash recovery: ", 1)[1] for line in done.stdout.splitlines()
                    if line.startswith("crash recovery: ")), done.stdout.strip()[-300:])
    return [Row(f"crash recovery: kill -9 of main.py under load, {kills} times", summary,
                "integrity ok; every 202 stored; in-flight failed, not re-sent; telemetry lost only in the "
                "flush tail (window 0.5 s); outputs safe", done.returncode == 0, command)]


def table_rows(cmd: list[str], command: str) -> list[Row]:
    """Rows of every Markdown table with a target column printed by `cmd` (verdict left to the reader)."""
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800,
                          env={k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"})
    rows, header = [], None
    for line in done.stdout.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
        elif set("".join(cells)) <= set("-: ") or "target" not in header:
            continue
        else:
            named = dict(zip(header, cells, strict=False))
            target = named.get("target", "")
            rows.append(Row(cells[0], " / ".join(c for h, c in named.items() if h not in ("target", header[0])),
                            target, None, command))
    if done.returncode != 0 or not rows:
        rows.append(Row(f"{command} exited with {done.returncode}", done.stderr.strip()[-200:] or "no table", "",
                        False, command))
    return rows


LONG_SOAK = "## Long soak"  # a section of benchmarks.md written by hand from `make soak`, kept on rewrite
# Sections written by hand below the table, kept on rewrite from the first one present to the end.
KEPT_SECTIONS = ("## Control loops", LONG_SOAK)


def render(rows: list[Row], started: datetime, seconds: float, quick: bool) -> str:
    met = sum(r.met is True for r in rows)
    targets = sum(r.met is not None for r in rows)
    lines = [
        "# BevForge OS benchmarks",
        "",
        f"Written by `make bench` (`python bench/run_all.py{' --quick' if quick else ''}`) on "
        f"{started:%Y-%m-%d %H:%M} UTC in {seconds / 60:.1f} min: {platform.platform()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}. Server, clients and load generators share "
        "the machine. Every figure is rerun by the command in its row.",
        "",
        f"**{met} of {targets} targets met.**",
        "",
        "| measure | result | target | met | command |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row.cells()) + " |" for row in rows]
    lines += ["", "Longer runs: `make soak` (2 hours; `SOAK_MINUTES=30 make soak` for less; not in CI); "
              "`BEVFORGE_CRASH_KILLS=200 python -m pytest -p no:playwright "
              "tests/reliability/test_crash_recovery.py -s` for a longer crash-recovery run.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows (a smoke run of the report)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--only", default="", help="comma-separated subset, e.g. ingest,alarms")
    args = parser.parse_args()
    started, t0 = datetime.now(UTC), time.monotonic()
    chosen = {k: v for k, v in suites(args.quick).items() if not args.only or k in args.only.split(",")}
    rows: list[Row] = []
    for name, fn in chosen.items():
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            with contextlib.redirect_stdout(io.StringIO()) as printed:
                produced = fn()
            sys.stderr.write(printed.getvalue())
            rows += produced
        except Exception as exc:  # one broken bench must not hide the others' figures
            traceback.print_exc()
            rows.append(Row(f"{name}: the benchmark failed", f"{type(exc).__name__}: {exc}"[:200], "", False,
                            f"python bench/{name}.py"))
    text = render(rows, started, time.monotonic() - t0, args.quick)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = out.read_text(encoding="utf-8") if out.exists() else ""
    kept = [previous.index(heading) for heading in KEPT_SECTIONS if heading in previous]
    if kept:  # the long soak (run by hand) and the control loops' prose: keep those sections
        text += "\n" + previous[min(kept):]
    out.write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
