"""`/metrics` for Prometheus: one registry per running app, the plant's figures and the process's.

A dedicated `CollectorRegistry` per app, never prometheus-client's global one: two servers in one
process (the tests, a central panel's tooling) and a live reload then never register the same name
twice, and nothing a library registers globally leaks into the scrape. The route lives with the other
transports (bevforge/api/metrics_api.py); who may scrape is decided in bevforge/permissions.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from bevforge.metrics.collector import CLIENT_KINDS, PREFIX, ClientCounts, PlantCollector

if TYPE_CHECKING:
    from bevforge.runtime import Runtime

__all__ = ["CLIENT_KINDS", "CONTENT_TYPE", "PREFIX", "PlantMetrics"]

# Every name and label here is a classic one, so the output is the text format 0.0.4 every Prometheus
# (and Grafana Agent, VictoriaMetrics…) reads; 0.26's "latest" announces 1.0.0, which older scrapers refuse.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class PlantMetrics:
    """The registry of one app: the plant collector plus process (CPU, memory, open files), Python
    platform and garbage-collector metrics."""

    def __init__(self, runtime: Runtime, clients: ClientCounts) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(PlantCollector(runtime, clients))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def scrape(self) -> bytes:
        """The text exposition of every metric now (runs on the event loop: it reads loop-owned state)."""
        return generate_latest(self.registry)
