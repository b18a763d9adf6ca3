"""`/metrics` for Prometheus: one registry per running app, the plant's figures and the process's.

A dedicated collector and registry per app, never prometheus-client's global registry: two servers in one
process (the tests, a central panel's tooling) and a live reload then never register the same name
twice, and nothing a library registers globally leaks into the scrape. The route lives with the other
transports (bevforge/api/metrics_api.py); who may scrape is decided in bevforge/permissions.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from bevforge.metrics.collector import CLIENT_KINDS, PREFIX, ClientCounts, PlantCollector

if TYPE_CHECKING:
    from bevforge.runtime import Runtime

__all__ = ["CLIENT_KINDS", "CONTENT_TYPE", "PREFIX", "PlantMetrics"]

# Every name and label here is a classic one, so the output is the text format 0.0.4 every Prometheus
# (and Grafana Agent, VictoriaMetrics…) reads; 0.26's "latest" announces 1.0.0, which older scrapers refuse.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class _Collected(Collector):
    """Metric families already collected, for the text formatter."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


class PlantMetrics:
    """The metrics of one app: the plant collector, plus process (CPU, memory, open files), Python
    platform and garbage-collector metrics in a registry of their own.

    A scrape reads the plant on the event loop (its state belongs to the loop) and leaves the rest to
    a worker thread: the process collector's reads of /proc and the text formatting, which is most of a
    scrape's cost (about 1,000 samples at 50 devices), so the loop is held only while the figures are
    read (bench/scale.py measures a scrape)."""

    def __init__(self, runtime: Runtime, clients: ClientCounts) -> None:
        self.plant = PlantCollector(runtime, clients)
        self.process = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.process)
        PlatformCollector(registry=self.process)
        GCCollector(registry=self.process)

    async def scrape(self) -> bytes:
        """The text exposition of every metric now."""
        plant = list(self.plant.collect())  # on the loop: the parts' state is only consistent there
        return await asyncio.to_thread(self._text, plant)

    def _text(self, plant: list[Metric]) -> bytes:
        return generate_latest(_Collected([*plant, *self.process.collect()]))
