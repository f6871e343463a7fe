"""Prometheus metrics of a worker, on a registry passed in (tests use a fresh one).

Names follow the project conventions: ``streamdq_`` prefix, base units,
``_total`` counters, ``_ratio`` for 0..1; labels only take configured names
(stream, feature, window, check) or fixed code sets (outcome, reason,
severity), so cardinality is bounded by the spec.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.engine import WindowReport
from monitor.spec import FEATURE_CHECKS, MonitorSpec

if TYPE_CHECKING:
    import faust

__all__ = ["FaustCollector", "Metrics"]


class Metrics:
    """The worker's own series. One instance per worker."""

    def __init__(self, spec: MonitorSpec, *, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.records = Counter("streamdq_records", "Records read, by stream and outcome "
                               "(processed or deadlettered).", ["stream", "outcome"], registry=registry)
        self.deadletters = Counter("streamdq_deadletter_records", "Records sent to the dead-letter "
                                   "topic, by reason code.", ["stream", "reason"], registry=registry)
        self.windows = Counter("streamdq_windows_closed", "Windows closed and evaluated.",
                               ["stream", "window"], registry=registry)
        self.alerts = Counter("streamdq_alerts", "Alert events (firing, resolved) sent to the alerts topic.",
                              ["stream", "check", "severity", "status"], registry=registry)
        self.open_alerts = Gauge("streamdq_open_alerts", "Alerts currently firing (after the alert policy).",
                                 registry=registry)
        self.window_records = Gauge("streamdq_window_records", "Records in the last closed window.",
                                    ["stream", "window"], registry=registry)
        self.ratios = {
            check: Gauge(f"streamdq_feature_{check}", f"Share of records in the last closed window "
                         f"({check.removesuffix('_ratio').replace('_', ' ')}).", ["stream", "feature", "window"],
                         registry=registry)
            for check in FEATURE_CHECKS
        }
        self.cardinality = Gauge("streamdq_feature_cardinality", "Estimated distinct values in the last closed "
                                 "window (HyperLogLog).", ["stream", "feature", "window"], registry=registry)
        self.drift = Gauge("streamdq_feature_drift_score", "Drift statistic of the last closed window "
                           "against the reference (the method label names the statistic).",
                           ["stream", "feature", "window", "method"], registry=registry)
        self.drifted = Gauge("streamdq_feature_drifted", "1 if the method's drift decision for the last closed "
                             "window was positive, 0 if not (absent: insufficient data).",
                             ["stream", "feature", "window", "method"], registry=registry)
        self.record_ratios = {
            check: Gauge(f"streamdq_{check}", f"Share of records in the last closed window "
                         f"({check.removesuffix('_ratio').replace('_', ' ')}).", ["stream", "window"],
                         registry=registry)
            for check in ("duplicate_ratio", "late_ratio", "out_of_order_ratio", "unexpected_field_ratio")
        }
        self.freshness = Gauge("streamdq_freshness_lag_p95_seconds", "95th percentile of processing time minus "
                               "event time in the last closed window.", ["stream", "window"], registry=registry)
        self.volume = Gauge("streamdq_volume_deviation", "|log2(records / expected records)| of the last closed "
                            "time window (1 = off by 2x).", ["stream", "window"], registry=registry)
        # Pre-create the zero series so dashboards and rate() see them from the start.
        for s in spec.streams:
            for outcome in ("processed", "deadlettered"):
                self.records.labels(s.name, outcome)

    def observe_window(self, report: WindowReport) -> None:
        """Set the gauges to the closed window's values. A value the window could not give
        (no records, insufficient data) removes the series, so no stale value lingers."""
        stream, window = report.stream, report.window["name"]
        self.windows.labels(stream, window).inc()
        self.window_records.labels(stream, window).set(report.count)
        for name, fr in report.features.items():
            for check, gauge in self.ratios.items():
                _set(gauge, (stream, name, window), fr.ratios.get(check))
            _set(self.cardinality, (stream, name, window), fr.cardinality)
        for name, methods in report.drift.items():
            for method, d in methods.items():
                _set(self.drift, (stream, name, window, method), d.statistic)
                _set(self.drifted, (stream, name, window, method), None if d.drifted is None else float(d.drifted))
        rec = report.records
        for check, gauge in self.record_ratios.items():
            _set(gauge, (stream, window), rec.get(check))
        _set(self.freshness, (stream, window), rec.get("freshness_p95_seconds"))
        _set(self.volume, (stream, window), rec.get("volume_deviation"))


def _set(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    if value is not None:
        gauge.labels(*labels).set(value)
        return
    gauge.remove(*labels)  # a no-op for a series never set


class FaustCollector(Collector):
    """Exports Faust's built-in ``Monitor`` sensor counters at scrape time.

    Faust's own ``PrometheusMonitor`` adds ~30 us per record and uses names
    that fail ``promtool check metrics`` (``_ms`` units); reading the default
    sensor on scrape costs nothing on the hot path.
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        m = self.app.monitor
        yield _counter("streamdq_faust_messages_received", "Kafka messages received by the worker.",
                       m.messages_received_total)
        yield _counter("streamdq_faust_messages_sent", "Kafka messages sent by the worker.", m.messages_sent)
        yield _counter("streamdq_faust_events", "Stream events processed by agents.", m.events_total)
        yield _gauge("streamdq_faust_events_active", "Stream events being processed now.", m.events_active)
        yield _gauge("streamdq_faust_event_runtime_seconds", "Median processing time of recent events.",
                     m.events_runtime_avg)
        yield _counter("streamdq_faust_rebalances", "Consumer group rebalances.", m.rebalances)
        lag = GaugeMetricFamily("streamdq_faust_consumer_lag_records",
                                "Records between the partition's end offset and the last read offset.",
                                labels=["topic", "partition"])
        for tp, end in list(m.tp_end_offsets.items()):
            read = m.tp_read_offsets.get(tp)
            if read is not None:
                lag.add_metric([tp.topic, str(tp.partition)], max(end - read - 1, 0))
        yield lag
        committed = GaugeMetricFamily("streamdq_faust_committed_offset", "Last committed offset.",
                                      labels=["topic", "partition"])
        for tp, off in list(m.tp_committed_offsets.items()):
            committed.add_metric([tp.topic, str(tp.partition)], off)
        yield committed


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
