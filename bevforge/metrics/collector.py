"""The plant's figures for Prometheus, read from the running parts when a scraper asks.

A custom collector rather than metrics updated on every event: the poll path of a 5,000-endpoint
plant is already near one core (bench/scale.py), so nothing here runs per reading. The hot paths keep
only the O(1) tallies of bevforge/tallies.py (a driver's requests, a command's end, a history flush);
every other figure (comms state, alarm counts, clients, the history queue) is a count of state the
parts hold anyway, taken at scrape time. Each figure is documented in docs/integrations.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from bevforge import __version__
from bevforge.alarms.states import DisplayState
from bevforge.domain import Severity
from bevforge.tallies import Timings

if TYPE_CHECKING:
    from bevforge.runtime import Runtime

PREFIX = "bevforge"
CLIENT_KINDS = ("ws", "sse", "ui")  # /ws sockets, SSE streams, NiceGUI screens (browser tabs)

ClientCounts = Callable[[], Mapping[str, int]]


@cache
def _bound_labels(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The `le` label of each bucket (and +Inf), formatted once per set of bounds, not on every scrape."""
    return (*(floatToGoString(b) for b in bounds), "+Inf")


def _buckets(timings: Timings) -> list[tuple[str, float]]:
    labels = _bound_labels(timings.bounds)
    return [(label, float(count)) for label, (_, count) in zip(labels, timings.cumulative(), strict=True)]


class PlantCollector(Collector):
    """Yields the plant's metric families from `runtime` (read afresh each scrape: a live reload swaps
    drivers and config) and the live client counts from `clients`."""

    def __init__(self, runtime: Runtime, clients: ClientCounts) -> None:
        self.runtime = runtime
        self.clients = clients

    def collect(self) -> Iterator[Metric]:
        yield from self._info()
        yield from self._devices()
        yield from self._commands()
        yield from self._clients()
        yield from self._alarms()
        yield from self._history()

    def _info(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(f"{PREFIX}_info", "This BevForge OS server: its version and site (always 1)",
                                 labels=["version", "site"])
        info.add_metric([__version__, self.runtime.config.site.name], 1)
        yield info

    def _devices(self) -> Iterator[Metric]:
        rt = self.runtime
        up = GaugeMetricFamily(f"{PREFIX}_device_up", "Device comms as the core sees them: 1 online, 0 offline "
                               "(its values BAD, its outputs safe, commands to it blocked)",
                               labels=["device", "driver"])
        polls = HistogramMetricFamily(f"{PREFIX}_device_poll_duration_seconds",
                                      "Each request to a device (a Modbus block read, a probe query), answered "
                                      "or not", labels=["device"])
        errors = CounterMetricFamily(f"{PREFIX}_device_poll_errors", "Device requests that failed (timeout, "
                                     "exception answer, lost connection)", labels=["device"])
        for device in rt.config.devices:
            up.add_metric([device.id, device.driver], 1 if rt.plant.device_online.get(device.id) else 0)
            driver = rt.drivers.get(device.id)
            if driver is None:
                continue
            tally = driver.polls
            polls.add_metric([device.id], _buckets(tally.timings), tally.timings.total)
            errors.add_metric([device.id], tally.errors)
        yield up
        yield polls
        yield errors

    def _commands(self) -> Iterator[Metric]:
        latency = HistogramMetricFamily(f"{PREFIX}_command_latency_seconds",
                                        "From a command's request to its final status, by result (succeeded, "
                                        "blocked, timeout, mismatch, device_error, expired, superseded, "
                                        "interrupted, failed)", labels=["result"])
        for result, timings in self.runtime.commands.runner.latency.items():
            latency.add_metric([result], _buckets(timings), timings.total)
        yield latency

    def _clients(self) -> Iterator[Metric]:
        counts = self.clients()
        words = {"ws": "Open /ws WebSocket connections", "sse": "Open SSE streams (/api/os/events)",
                 "ui": "NiceGUI screens (browser tabs) with a live connection"}
        for kind in CLIENT_KINDS:
            yield GaugeMetricFamily(f"{PREFIX}_{kind}_clients", words[kind], value=counts.get(kind, 0))

    def _alarms(self) -> Iterator[Metric]:
        counts = {(state.value, priority.value): 0 for state in DisplayState for priority in Severity}
        for point in self.runtime.alarms.points.values():
            key = (point.state.display.value, point.priority.value)
            counts[key] = counts.get(key, 0) + 1
        alarms = GaugeMetricFamily(f"{PREFIX}_alarms", "Alarm points by ISA-18.2 state and priority (normal "
                                   "included: the configured points and the system ones raised so far)",
                                   labels=["state", "priority"])
        for (state, priority), n in counts.items():
            alarms.add_metric([state, priority], n)
        yield alarms

    def _history(self) -> Iterator[Metric]:
        writer = self.runtime.history_writer
        yield GaugeMetricFamily(f"{PREFIX}_history_queue_rows", "History rows waiting for the next flush to the "
                                "store", value=writer.pending)
        yield HistogramMetricFamily(f"{PREFIX}_history_flush_duration_seconds", "Each committed history "
                                    "transaction (rows and current values)", buckets=_buckets(writer.flush_times),
                                    sum_value=writer.flush_times.total)
        yield CounterMetricFamily(f"{PREFIX}_history_rows_written", "History rows written to the store",
                                  value=writer.rows_written)
        yield CounterMetricFamily(f"{PREFIX}_history_rows_dropped", "History rows dropped: the backlog was full "
                                  "while the store refused or could not keep up", value=writer.rows_dropped)
        yield CounterMetricFamily(f"{PREFIX}_history_failed_flushes", "History flushes the store refused (kept "
                                  "and retried)", value=writer.failed_flushes)
