"""Command-line settings: flags with environment equivalents, and `--check-config`."""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from bevforge.config import ConfigError, ExtraCheck, PlantConfig, load_config
from bevforge.store.engine import shown_db as shown_db

DEFAULT_CONFIG = "config.yaml"
DEFAULT_PORT = 5007
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Settings:
    config_path: Path
    host: str
    port: int
    db_url: str
    data_dir: Path
    check_config: bool = False
    log_level: str = "info"
    db_from: str = "default"  # where db_url came from: "--db", "DATABASE_URL" or "default" (see `database`)

    def database(self, config: PlantConfig) -> tuple[str, str]:
        """The database the server and the `user`/`token` commands both use, and where that was decided:
        `--db`, then `DATABASE_URL`, then the config's `store.database_url`, then `<data dir>/bevforge.db`
        (made absolute, so it is the same file whichever folder the command is typed in)."""
        if self.db_from != "default":
            return self.db_url, f"set by {self.db_from}"
        if config.store.database_url:
            return config.store.database_url, f"set by store.database_url in {self.config_path}"
        return (f"sqlite:///{(self.data_dir / 'bevforge.db').resolve()}",
                "the default: bevforge.db in the data folder, --data-dir / BEVFORGE_DATA_DIR")


def parse_args(argv: list[str], env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    parser = argparse.ArgumentParser(prog="python main.py", description="BevForge OS brewhouse control panel")
    parser.add_argument("--config", default=env.get("BEVFORGE_CONFIG", DEFAULT_CONFIG),
                        help="plant config file (env BEVFORGE_CONFIG; default config.yaml)")
    parser.add_argument("--host", default=env.get("BEVFORGE_HOST", "127.0.0.1"),
                        help="address to listen on (env BEVFORGE_HOST; default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(env.get("BEVFORGE_PORT", DEFAULT_PORT)),
                        help="port (env BEVFORGE_PORT; default 5007)")
    parser.add_argument("--db", default=env.get("DATABASE_URL"),
                        help="SQLAlchemy database URL (env DATABASE_URL; default sqlite:///data/bevforge.db)")
    parser.add_argument("--data-dir", default=env.get("BEVFORGE_DATA_DIR", "data"),
                        help="folder for the default SQLite file (env BEVFORGE_DATA_DIR)")
    parser.add_argument("--log-level", default=env.get("BEVFORGE_LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"])
    parser.add_argument("--check-config", nargs="?", const="", default=None, metavar="FILE",
                        help="validate the config file and exit (0 valid, 2 invalid)")
    args = parser.parse_args(argv)
    config_path = Path(args.check_config or args.config)
    data_dir = Path(args.data_dir)
    db_url = args.db or f"sqlite:///{data_dir / 'bevforge.db'}"
    db_from = "default" if not args.db else "--db" if "--db" in argv or any(a.startswith("--db=") for a in argv) \
        else "DATABASE_URL"
    return Settings(config_path=config_path, host=args.host, port=args.port, db_url=db_url,
                    data_dir=data_dir, check_config=args.check_config is not None, log_level=args.log_level,
                    db_from=db_from)


def port_problem(host: str, port: int, what: str) -> str | None:
    """Why `host:port` cannot be listened on (None: it can), naming `what` sets it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use — {what}, or stop the program that holds it"
            return f"cannot listen on {host}:{port}: {exc.strerror} — {what}"
    return None


def load_or_report(path: Path, extra_check: ExtraCheck | None = None) -> PlantConfig | None:
    """Load the config; on error print every problem (file:line: field: message) to stderr."""
    try:
        return load_config(path, extra_check)
    except ConfigError as exc:
        print(f"{path}: {len(exc.problems)} problem(s) in the config:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def check_config(path: Path, driver_check: ExtraCheck | None = None) -> int:
    """`--check-config`: 0 when valid, 2 otherwise. `driver_check` (drivers.check, passed in by
    main.py) adds the drivers' device settings and address checks, which otherwise run only at start."""
    config = load_or_report(path, driver_check)
    if config is None:
        return 2
    print(f"{path}: OK — {len(config.nodes)} nodes, {len(config.devices)} devices, "
          f"{len(config.endpoints)} endpoints, {len(config.tiles)} tiles, "
          f"{len(config.interlocks)} interlocks, {len(config.alarms)} alarm rules")
    return 0
