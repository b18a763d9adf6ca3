"""A central panel's config.yaml made from its sites' own config files (`python main.py sites central-config`).

A central BevForge shows each site through the `site` driver (drivers/site.py, docs/config.md): one
device per site, and for every endpoint of the site an endpoint of the centre that reads it. Writing
those by hand repeats every site's endpoints; this builds them from the files the sites run, so the
technician reviews one generated file instead:

- the site's nodes become `<site>_<node>` (two sites both have an `HLT`), named "<site name>: <node name>";
- each endpoint keeps its kind, unit, type, range, writability, tolerance, safe value and criticality, is
  renamed `<site>_<name>` and numbered `<n> × 100 000 + <its id>` (the n-th site on the command line);
  its address names the site's endpoint and node, and it turns stale after three of the site's
  `realtime.telemetry_refresh_s` (a steady value is published again only that often);
- a site that forwards its history (`mqtt.forward`) gets `history: forwarded`: the centre stores the
  site's own history, complete after an outage, instead of the live values it saw;
- the site's tiles come along; interlocks, alarms, controllers, programs and the mimic do not: the
  site runs them itself, and a command from the centre runs through them there.

Pure: file in, document out; the caller writes it and checks it as any config.yaml.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bevforge.config import ConfigError, ExtraCheck, PlantConfig, load_config, parse_config

ID_BLOCK = 100_000  # the n-th site's endpoints are numbered n × ID_BLOCK + their own id
STALE_REFRESHES = 3
STALE_FLOOR_S = 5.0  # a site that publishes every sample (telemetry_refresh_s 0): its own polls decide


class CentralConfigError(ValueError):
    """The sites cannot be joined (no mqtt: section, the same site twice, an id out of range): says which."""


def central_document(sites: Sequence[tuple[str, PlantConfig]], mqtt: dict[str, Any],
                     name: str = "Central panel") -> dict[str, Any]:
    """The central's config document for `sites` ((file name, its config) in order) on the broker `mqtt`."""
    doc: dict[str, Any] = {"site": {"name": name}, "nodes": [], "devices": [], "endpoints": [], "tiles": [],
                           "simulator": {"enabled": False}, "mqtt": mqtt}
    seen: dict[str, str] = {}
    for n, (filename, site) in enumerate(sites, start=1):
        if site.mqtt is None:
            raise CentralConfigError(f"{filename}: the site has no mqtt: section, so a centre cannot reach it")
        key = site.mqtt.site
        if key in seen:
            raise CentralConfigError(f"{filename}: mqtt.site {key!r} is also {seen[key]}'s")
        if key == mqtt.get("site"):
            raise CentralConfigError(f"{filename}: mqtt.site {key!r} is the centre's own")
        if site.mqtt.topic_prefix != mqtt.get("topic_prefix", "bevforge"):
            raise CentralConfigError(f"{filename}: mqtt.topic_prefix {site.mqtt.topic_prefix!r} differs from the "
                                     "centre's: its topics would not be read")
        seen[key] = filename
        _add_site(doc, n, key, site)
    return doc


def _add_site(doc: dict[str, Any], n: int, key: str, site: PlantConfig) -> None:
    prefix = key.lower().replace("-", "_")
    device = f"site_{prefix}"
    offset = n * ID_BLOCK
    refresh = site.realtime.telemetry_refresh_s
    entry_device: dict[str, Any] = {"id": device, "name": f"{site.site.name} (site {key})", "driver": "site",
                                    "settings": {"site": key}}
    if site.mqtt.forward is not None:  # the site forwards its history: the centre stores that, not the live values
        entry_device["history"] = "forwarded"
    doc["devices"].append(entry_device)
    for node in site.nodes:
        entry: dict[str, Any] = {"id": _node(prefix, node.id), "name": f"{site.site.name}: {node.name}",
                                 "kind": node.kind}
        if node.volume_l is not None:
            entry["volume_l"] = node.volume_l
        doc["nodes"].append(entry)
    for endpoint in site.endpoints:
        if endpoint.id + offset > offset + ID_BLOCK - 1:
            raise CentralConfigError(f"site {key}: endpoint {endpoint.name} has id {endpoint.id}, above "
                                     f"{ID_BLOCK - 1} (the centre numbers each site's endpoints in a block of "
                                     f"{ID_BLOCK:,})")
        own_stale = endpoint.stale_after_s or 3 * endpoint.poll_interval_s
        entry = {
            "id": offset + endpoint.id, "name": _name(prefix, endpoint.name),
            "label": f"{site.site.name}: {endpoint.label or endpoint.name}",
            "node": _node(prefix, endpoint.node), "device": device,
            "kind": str(getattr(endpoint.kind, "value", endpoint.kind)),
            "unit": endpoint.unit, "data_type": endpoint.data_type.value, "writable": endpoint.writable,
            "stale_after_s": max(STALE_FLOOR_S, own_stale, STALE_REFRESHES * refresh),
            "address": {"endpoint": endpoint.name, "node": endpoint.node},
        }
        if endpoint.range is not None:
            entry["range"] = endpoint.range.model_dump(exclude_none=True)
        if endpoint.safe_value is not None:  # 0 and false are safe values too
            entry["safe_value"] = endpoint.safe_value
        if endpoint.tolerance:
            entry["tolerance"] = endpoint.tolerance
        if endpoint.critical:
            entry["critical"] = True
        if endpoint.feedback is not None:
            entry["feedback"] = offset + endpoint.feedback
        doc["endpoints"].append(entry)
    for tile in site.tiles:
        doc["tiles"].append({"id": f"{prefix}_{tile.id}", "title": f"{site.site.name}: {tile.title}",
                             "node": _node(prefix, tile.node), "endpoints": [offset + e for e in tile.endpoints],
                             "order": n * 1000 + tile.order})


def _node(prefix: str, node: str) -> str:
    made = f"{prefix}_{node}"
    if len(made) > 32:
        raise CentralConfigError(f"node {made!r} would be longer than 32 characters: shorten mqtt.site or the node id")
    return made


def _name(prefix: str, name: str) -> str:
    made = f"{prefix}_{name}"
    if len(made) > 64:
        raise CentralConfigError(f"endpoint {made!r} would be longer than 64 characters: shorten mqtt.site")
    return made


def run(argv: Sequence[str], extra_check: ExtraCheck | None = None) -> int:
    """`python main.py sites central-config SITE.yaml ...`: the central's config on stdout (or --out)."""
    import argparse
    import sys
    from pathlib import Path

    import yaml

    parser = argparse.ArgumentParser(prog="python main.py sites", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    make = sub.add_parser("central-config", help="a central panel's config.yaml from its sites' config files")
    make.add_argument("sites", nargs="+", metavar="SITE_CONFIG", help="each site's config.yaml (with its mqtt:)")
    make.add_argument("--name", default="Central panel", help="the centre's site.name")
    make.add_argument("--broker-host", default="127.0.0.1")
    make.add_argument("--broker-port", type=int, default=1883)
    make.add_argument("--site", default="central", help="the centre's own mqtt.site (topic level)")
    make.add_argument("--username", default="central", help="the centre's MQTT user: each site's mqtt.users "
                      "gives it the role its commands run with")
    make.add_argument("--password-env", default="BEVFORGE_MQTT_PASSWORD",
                      help="environment variable holding the centre's broker password")
    make.add_argument("--out", help="write here instead of stdout")
    args = parser.parse_args(list(argv))
    try:
        sites = [(path, load_config(path)) for path in args.sites]
        mqtt = {"host": args.broker_host, "port": args.broker_port, "site": args.site, "username": args.username,
                "password_env": args.password_env}
        doc = central_document(sites, mqtt, args.name)
    except (ConfigError, CentralConfigError) as exc:
        print(f"cannot make the central config: {exc}", file=sys.stderr)
        return 2
    text = ("# A central panel over " + ", ".join(s.mqtt.site for _, s in sites if s.mqtt) + ": made by "
            "`python main.py sites central-config` from " + ", ".join(args.sites) + ".\n"
            + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120))
    try:
        parse_config(text, args.out or "<central config>", extra_check)  # what the centre will refuse, said now
    except ConfigError as exc:
        print(f"the central config made would be refused:\n{exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"{args.out}: {len(sites)} sites, {len(doc['endpoints'])} endpoints, {len(doc['tiles'])} tiles",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
