"""`make run-sites`: a broker, two simulated sites and a central panel on this machine (docs/deployment.md).

    python scripts/run_sites.py [--centre-port 5007] [--broker-port 18830] [--data-dir data/sites]

- Mosquitto on 127.0.0.1 with a password per user and the ACL docs/mqtt.md explains (each site owns its
  tree, every user publishes commands only under cmd/<own name>/);
- two BevForge sites, `brewhouse` (port centre + 1) and `cellar` (port centre + 2), each the shipped
  config.yaml with its own simulated brewhouse (its own Modbus port and probe link) and an `mqtt:`
  section that lets the user `central` operate it;
- the central panel (port centre), its config made by `python main.py sites central-config` from the two
  sites' files: every site's values, commands run by the site's own pipeline.

The files are written under --data-dir (passwords are made anew at each start and handed to each process
in its environment, never written into a config). Ctrl-C stops everything, the panels first.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bevforge.central import central_document  # noqa: E402
from bevforge.config import parse_config  # noqa: E402
from drivers.sim.ports import use_simulator_ports  # noqa: E402

SITES = ("brewhouse", "cellar")
PREFIX = "bevforge"
PASSWORD_ENV = "BEVFORGE_MQTT_PASSWORD"


def broker_files(folder: Path, port: int, passwords: dict[str, str]) -> Path:
    """mosquitto.conf, its password file (mosquitto_passwd) and ACL, for a loopback listener on `port`."""
    folder.mkdir(parents=True, exist_ok=True)
    password_file, acl_file = folder / "passwords", folder / "acl"
    password_file.unlink(missing_ok=True)
    for user, password in passwords.items():
        subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b"]
                       + (["-c"] if not password_file.exists() else []) + [str(password_file), user, password],
                       check=True, capture_output=True, timeout=30)
    acl = "".join(f"user {user}\ntopic readwrite {PREFIX}/{user}/#\n\n" for user in passwords)
    acl += f"pattern read {PREFIX}/#\npattern write {PREFIX}/+/cmd/%u/#\n"
    acl_file.write_text(acl, encoding="utf-8")
    conf = folder / "mosquitto.conf"
    conf.write_text("\n".join([
        *(["user root"] if os.geteuid() == 0 else []),
        "per_listener_settings false", "allow_anonymous false", f"password_file {password_file}",
        f"acl_file {acl_file}", f"listener {port} 127.0.0.1", "persistence false", "log_dest stderr", ""]),
        encoding="utf-8")
    for path in (password_file, acl_file, conf):
        path.chmod(0o600)
    return conf


def site_file(folder: Path, site: str, broker_port: int, modbus_port: int) -> Path:
    """The shipped config.yaml as site `site`: its own simulator ports and an mqtt: section."""
    doc: dict[str, Any] = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    use_simulator_ports(doc, modbus_port, str(folder / "probe"))
    doc["site"] = {**doc.get("site", {}), "name": site.title()}
    doc["mqtt"] = {"host": "127.0.0.1", "port": broker_port, "site": site, "username": site,
                   "password_env": PASSWORD_ENV, "users": {"central": {"role": "operator"}},
                   "forward": {}}  # store-and-forward: the centre's history of each site is the site's own
    path = folder / "config.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def centre_file(folder: Path, sites: list[Path], broker_port: int) -> Path:
    made = [(str(path), parse_config(path.read_text(encoding="utf-8"), str(path))) for path in sites]
    doc = central_document(made, {"host": "127.0.0.1", "port": broker_port, "site": "central",
                                  "username": "central", "password_env": PASSWORD_ENV}, "Central panel")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--centre-port", type=int, default=5007, help="the central panel; the sites take the next two")
    parser.add_argument("--broker-port", type=int, default=18830)
    parser.add_argument("--site-ports", help="the sites' web ports, comma separated (default: the two after "
                        "the centre's)")
    parser.add_argument("--modbus-ports", default="5030,5031",
                        help="the sites' simulated Modbus ports, comma separated")
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "sites"))
    args = parser.parse_args(argv)
    data = Path(args.data_dir).resolve()
    passwords = {user: secrets.token_urlsafe(18) for user in (*SITES, "central")}
    conf = broker_files(data / "broker", args.broker_port, passwords)
    site_ports = ([int(p) for p in args.site_ports.split(",")] if args.site_ports
                  else [args.centre_port + 1 + i for i in range(len(SITES))])
    modbus_ports = [int(p) for p in args.modbus_ports.split(",")]
    if len(site_ports) != len(SITES) or len(modbus_ports) != len(SITES):
        parser.error(f"--site-ports and --modbus-ports take {len(SITES)} ports each")
    site_files = [site_file(data / site, site, args.broker_port, modbus_ports[i]) for i, site in enumerate(SITES)]
    centre = centre_file(data / "central", site_files, args.broker_port)

    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    stop_requested: list[int] = []
    signal.signal(signal.SIGTERM, lambda sig, _frame: stop_requested.append(sig))
    try:
        processes.append(("broker", subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c",
                                                      str(conf)], stderr=subprocess.DEVNULL)))
        panels = [(site, port, path, data / site)
                  for site, port, path in zip(SITES, site_ports, site_files, strict=True)]
        panels.append(("central", args.centre_port, centre, data / "central"))
        for name, port, path, folder in panels:
            processes.append((name, subprocess.Popen(
                [sys.executable, str(ROOT / "main.py"), "--config", str(path), "--port", str(port),
                 "--host", "127.0.0.1", "--data-dir", str(folder)],
                cwd=ROOT, env=env | {PASSWORD_ENV: passwords[name]})))
        print(f"BevForge sites: broker 127.0.0.1:{args.broker_port}; "
              + "; ".join(f"{name} http://127.0.0.1:{port}" for name, port, _, _ in panels)
              + f" (files in {data}; Ctrl-C stops them)", file=sys.stderr, flush=True)
        while not stop_requested:
            for name, process in processes:
                if process.poll() is not None:
                    print(f"BevForge sites: {name} exited with {process.returncode}; stopping the rest",
                          file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        for _name, process in reversed(processes):  # the panels first (outputs safe), the broker last
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


if __name__ == "__main__":
    sys.exit(main())
