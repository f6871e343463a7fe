"""Prometheus metrics of a worker, on a registry passed in (tests use a fresh one).

Names follow the project conventions: ``streamdq_`` prefix, base units,
``_total`` counters, ``_ratio`` for 0..1; labels only take configured names
(stream, feature, window, check, method) or fixed code sets (outcome, reason,
severity), so cardinality is bounded by the spec (topic/partition by the input
topics, model/version by ``max_versions``).

Two sources: :meth:`Metrics.observe` turns each closed window's report into the
gauges of that window (the one place reports become metrics); the state that
changes between windows (the fill of each open window, the alerts open now) is
read from the :class:`~monitor.Monitor` at scrape time (:meth:`Metrics.watch`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.columns import compiled
from monitor.engine import Monitor
from monitor.model import ModelMonitor
from monitor.report import ModelWindowReport, Report, WindowReport
from monitor.spec import FEATURE_CHECKS, MonitorSpec, Threshold

if TYPE_CHECKING:
    import faust

__all__ = ["FaustCollector", "IngestCollector", "Metrics"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("streamdq")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown"


class Metrics:
    """The worker's own series. One instance per worker."""

    def __init__(self, spec: MonitorSpec, *, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.build = Info("streamdq_build", "The streamdq build: package version, and kernels=\"compiled\" when "
                          "the engine's compiled kernels are in use or \"python\" on its slower pure-Python path.",
                          registry=registry)
        self.build.info({"version": _version(), "kernels": "compiled" if compiled() else "python"})
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
        drift_labels = ["stream", "feature", "window", "method"]
        self.drift_p_value = Gauge("streamdq_feature_drift_p_value", "Drift tests (ks, chi_square): the test's "
                                   "p-value in the last closed window, before the multiple-testing correction.",
                                   drift_labels, registry=registry)
        self.drift_p_value_adjusted = Gauge(
            "streamdq_feature_drift_p_value_adjusted", "Drift tests: the p-value after the window's multiple-testing "
            "correction; drifted when <= streamdq_feature_drift_threshold (alpha).", drift_labels, registry=registry)
        self.drift_threshold = Gauge("streamdq_feature_drift_threshold", "The method's raise level in the last "
                                     "closed window: a distance drifts when its score >= it, a test when its "
                                     "adjusted p-value <= it (alpha).", drift_labels, registry=registry)
        self.drift_sample_size = Gauge("streamdq_feature_drift_sample_size", "Valid values the method compared "
                                       "with the reference in the last closed window (below the stream's "
                                       "min_samples: insufficient data, no score).", drift_labels, registry=registry)
        self.check_threshold = Gauge("streamdq_check_threshold", "The configured level of a check per severity: "
                                     "feature quality checks, drift distances (check = method) and stream-level "
                                     "checks (feature=\"\"); the check raises when its value is >= it.",
                                     ["stream", "feature", "check", "severity"], registry=registry)
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
        model_labels = ["stream", "model", "version", "window"]
        self.model_performance = Gauge(
            "streamdq_model_performance", "Model performance in the last closed model window: realised (labels "
            "joined) or estimated without labels (CBPE), over the window's labelled examples or predictions.",
            [*model_labels, "basis", "source", "metric"], registry=registry)
        self.model_estimation_error = Gauge(
            "streamdq_model_estimation_error", "|estimated - realised| of a metric over the same labelled examples "
            "(how far the label-free estimate was from the truth).", [*model_labels, "metric"], registry=registry)
        self.model_label_expired = Gauge(
            "streamdq_model_label_expired_ratio", "Share of the predictions decided in the last predictions window "
            "whose label never came within the TTL.", model_labels, registry=registry)
        self.model_windows = Counter("streamdq_model_windows_closed", "Model windows closed and evaluated.",
                                     ["stream", "model", "basis"], registry=registry)
        self.model_errors = Counter("streamdq_model_errors", "Batches the model monitor failed on (logged).",
                                    ["stream"], registry=registry)
        self._join = _JoinCollector()
        registry.register(self._join)
        self._state = _StateCollector()
        registry.register(self._state)
        self._spec = spec
        self._thresholds_set: set[tuple[str, str, str]] = set()
        #: (stream, window) -> the (feature, method) pairs of its last window: bounded by the spec.
        self._drift_ran: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._drift_gauges = (self.drift, self.drifted, self.drift_p_value, self.drift_p_value_adjusted,
                              self.drift_threshold, self.drift_sample_size)
        # Pre-create the zero series so dashboards and rate() see them from the start.
        for s in spec.streams:
            for outcome in ("processed", "deadlettered"):
                self.records.labels(s.name, outcome)
            for w in s.windows:  # a window that never closed is then visible (increase(...) == 0)
                self.windows.labels(s.name, w.name)
            if s.model is not None:
                self.model_errors.labels(s.name)

    def observe(self, report: Report) -> None:
        """Set the gauges to a closed window's values (feature or model window). A value the window
        could not give (no records, insufficient data) removes the series, so no stale value lingers."""
        if isinstance(report, ModelWindowReport):
            self._observe_model_window(report)
        elif isinstance(report, WindowReport):
            self._observe_window(report)
        else:
            raise TypeError(f"not a window report: {type(report).__name__}")

    def _observe_window(self, report: WindowReport) -> None:
        stream, window = report.stream, report.window["name"]
        self.windows.labels(stream, window).inc()
        self.window_records.labels(stream, window).set(report.count)
        for name, fr in report.features.items():
            for check, gauge in self.ratios.items():
                value = fr.ratios.get(check)
                _set(gauge, (stream, name, window), value)
                if value is not None:
                    self._threshold(stream, name, check)
            _set(self.cardinality, (stream, name, window), fr.cardinality)
        # Methods chosen by sample size (drift.methods: auto) change from window to window: the series of a
        # method this window did not run go, so no stale score or p-value lingers beside the current one.
        ran = {(name, method) for name, methods in report.drift.items() for method in methods}
        for name, method in self._drift_ran.get((stream, window), set()) - ran:
            for gauge in self._drift_gauges:
                _set(gauge, (stream, name, window, method), None)
        self._drift_ran[(stream, window)] = ran
        for name, methods in report.drift.items():
            for method, d in methods.items():
                labels = (stream, name, window, method)
                _set(self.drift, labels, d.statistic)
                _set(self.drifted, labels, None if d.drifted is None else float(d.drifted))
                _set(self.drift_p_value, labels, d.p_value)
                _set(self.drift_p_value_adjusted, labels, d.p_value_adjusted)
                self.drift_threshold.labels(*labels).set(d.threshold)
                self.drift_sample_size.labels(*labels).set(d.sample_size)
                if d.p_value is None and d.statistic is not None:  # a distance: its warning and critical levels
                    self._threshold(stream, name, method, levels_of=d.method)
        rec = report.records
        for record_check, gauge in self.record_ratios.items():
            _set(gauge, (stream, window), rec.get(record_check))
        _set(self.freshness, (stream, window), rec.get("freshness_p95_seconds"))
        _set(self.volume, (stream, window), rec.get("volume_deviation"))
        for record_check in (*self.record_ratios, "freshness_p95_seconds", "volume_deviation"):
            if rec.get(record_check) is not None:
                self._threshold(stream, None, record_check)

    def _threshold(self, stream: str, feature: str | None, check: str, *, levels_of: str | None = None) -> None:
        """Export a check's configured levels once, when the check first has a value (so a level shows
        beside every series it applies to, and none for a check that never runs on a feature).
        ``levels_of``: the check whose levels apply (``psi`` for ``psi@rolling``)."""
        key = (stream, feature or "", check)
        if key in self._thresholds_set:
            return
        self._thresholds_set.add(key)
        st = self._spec.stream(stream)
        fs = next((f for f in st.features if f.name == feature), None) if feature is not None else None
        thr: Threshold | None = self._spec.threshold_for(st, fs, levels_of or check)
        if thr is None:
            return
        for severity in ("warning", "critical"):
            level = getattr(thr, severity)
            if level is not None:
                self.check_threshold.labels(stream, feature or "", check, severity).set(level)

    def watch(self, monitor: Monitor) -> None:
        """Export ``monitor``'s open-window fill and open alerts at scrape time."""
        self._state.monitor = monitor


    def watch_model(self, monitor: ModelMonitor) -> None:
        """Export ``monitor``'s join counters and sizes at scrape time."""
        self._join.monitors.append(monitor)

    def forget_model_versions(self, stream: str, versions: list[tuple[str, str]]) -> None:
        """Remove the series of model versions the monitor no longer tracks (beyond ``max_versions``)."""
        for model, version in versions:
            for gauge in (self.model_performance, self.model_estimation_error, self.model_label_expired):
                for labels in list(gauge._metrics):  # prometheus_client keeps no public index of series
                    if labels[:3] == (stream, model, version):
                        gauge.remove(*labels)

    def _observe_model_window(self, report: ModelWindowReport) -> None:
        base = (report.stream, report.model, report.version, report.window["name"])
        self.model_windows.labels(report.stream, report.model, report.basis).inc()
        for source, values in (("realised", report.realised), ("estimated", report.estimated)):
            for metric, value in (values or {}).items():
                if metric in _MODEL_METRICS:
                    _set(self.model_performance, (*base, report.basis, source, metric),
                         None if value is None else float(value))
        for metric, err in report.estimation_error().items():
            self.model_estimation_error.labels(*base, metric).set(err)
        if report.basis == "predictions":
            _set(self.model_label_expired, base, report.join.get("label_expired_ratio"))


#: Performance metrics exported as gauges (the reports hold more, e.g. expected confusion counts).
_MODEL_METRICS = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier", "ece",
                            "accuracy_std", "macro_precision", "macro_recall", "macro_f1", "mae", "rmse", "mape",
                            "mean_error"})


class _JoinCollector(Collector):
    """The label joins' counters and sizes, read from the model monitors at scrape time."""

    def __init__(self) -> None:
        self.monitors: list[ModelMonitor] = []

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        if not self.monitors:
            return
        events = CounterMetricFamily("streamdq_label_join_events", "Label-join outcomes (predictions, labels, "
                                     "joined, expired, evicted, duplicate, skipped on restart).",
                                     labels=["stream", "outcome"])
        pending = GaugeMetricFamily("streamdq_label_pending_predictions", "Predictions waiting for their label.",
                                    labels=["stream"])
        orphans = GaugeMetricFamily("streamdq_label_orphan_labels", "Labels waiting for their prediction.",
                                    labels=["stream"])
        coverage = GaugeMetricFamily("streamdq_label_coverage_ratio", "Share of decided predictions that got a "
                                     "label (joined / (joined + expired)).", labels=["stream"])
        latency = Metric("streamdq_label_latency_seconds", "Label latency (label time - prediction time) over every "
                         "joined example: quantiles estimated from a log-bucket histogram.", "summary")
        unusable = CounterMetricFamily("streamdq_model_unusable_records", "Predictions without a usable score/"
                                       "class/value and labels without a usable value (not joined).",
                                       labels=["stream", "kind"])
        for m in self.monitors:
            st = m.join_stats()
            name = m.stream.name
            for outcome in ("predictions", "labels", "joined", "expired_predictions", "expired_orphan_labels",
                            "evicted_pending", "evicted_orphans", "duplicate_predictions", "duplicate_labels",
                            "skipped_predictions", "skipped_labels"):
                events.add_metric([name, outcome], st[outcome])
            pending.add_metric([name], st["pending"])
            orphans.add_metric([name], st["orphans"])
            if st["coverage"] is not None:
                coverage.add_metric([name], st["coverage"])
            lat = st["latency"]
            if lat.get("count"):
                for q, key in (("0.5", "p50"), ("0.95", "p95"), ("1", "max")):
                    if lat.get(key) is not None:
                        latency.add_sample("streamdq_label_latency_seconds", {"stream": name, "quantile": q}, lat[key])
                latency.add_sample("streamdq_label_latency_seconds_count", {"stream": name}, lat["count"])
                latency.add_sample("streamdq_label_latency_seconds_sum", {"stream": name},
                                   lat["count"] * (lat.get("mean") or 0.0))
            unusable.add_metric([name, "predictions"], m.counters["unusable_predictions"])
            unusable.add_metric([name, "labels"], m.counters["unusable_labels"])
        yield from (events, pending, orphans, coverage, latency, unusable)


class _StateCollector(Collector):
    """What changes between windows, read from the monitor at scrape time (nothing on the hot path):
    the fill of each stream's open windows and one series per open alert."""

    def __init__(self) -> None:
        self.monitor: Monitor | None = None

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        monitor = self.monitor
        if monitor is None:
            return
        fill = GaugeMetricFamily("streamdq_window_fill_ratio", "How full the window that closes next is: count "
                                 "windows records / size, time windows time passed / length (event time: against "
                                 "the watermark minus the allowed lateness).", labels=["stream", "window"])
        for s in monitor.spec.streams:
            for window, value in monitor.window_fill(s.name).items():
                if value is not None:
                    fill.add_metric([s.name, window], value)
        yield fill
        active = GaugeMetricFamily("streamdq_alert_active", "Alerts firing now (after the alert policy), one series "
                                   "per stream, feature (\"\" for stream and model checks), check and notified "
                                   "severity; 1 while open (more only for a model check open on several model "
                                   "versions), gone when resolved.", labels=["stream", "feature", "check", "severity"])
        counts: dict[tuple[str, str, str, str], int] = {}
        for a in monitor.policy.firing():
            if a.stream is None or a.check is None:
                continue  # restored from an older state without its identity: shown after its next window
            key = (a.stream, a.feature or "", a.check, str(a.severity))
            counts[key] = counts.get(key, 0) + 1
        for key, n in sorted(counts.items()):
            active.add_metric(list(key), n)
        yield active


def _set(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    if value is not None:
        gauge.labels(*labels).set(value)
        return
    gauge.remove(*labels)  # a no-op for a series never set


class IngestCollector(Collector):
    """Exports the ingest service's counters and consumer lag at scrape time (nothing on the hot path).

    ``source`` returns the :class:`~agents.worker.ingest.Ingest` service, or ``None`` before it started.
    """

    def __init__(self, source: Callable[[], Any]) -> None:
        self.source = source

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        ingest = self.source()
        yield _counter("streamdq_ingest_messages", "Kafka messages read from the input topics.",
                       ingest.messages if ingest is not None else 0)
        yield _counter("streamdq_ingest_batches", "Consumer batches handled (decoded, processed, published).",
                       ingest.batches if ingest is not None else 0)
        yield _gauge("streamdq_assigned_partitions", "Input partitions this worker holds.",
                     len(ingest.assignment) if ingest is not None else 0)
        yield _counter("streamdq_checkpoints", "Checkpoints of the window state written (with the offsets committed).",
                       ingest.checkpoints if ingest is not None else 0)
        yield _gauge("streamdq_checkpoint_size_bytes", "Size of the last checkpoint.",
                     ingest.checkpoint_bytes if ingest is not None else 0)
        last = ingest.checkpoint_time if ingest is not None else None
        yield _gauge("streamdq_checkpoint_timestamp_seconds", "When the last checkpoint was written (epoch seconds; 0: "
                     "none yet).", last or 0.0)
        lag = GaugeMetricFamily("streamdq_consumer_lag_records",
                                "Records between an input partition's end offset and this worker's position.",
                                labels=["topic", "partition"])
        for (topic, partition), n in sorted(ingest.lag.items()) if ingest is not None else []:
            lag.add_metric([topic, str(partition)], n)
        yield lag


class FaustCollector(Collector):
    """Exports Faust's built-in ``Monitor`` sensor counters at scrape time (Faust reads the tables' changelogs;
    the input topics are read by the ingest service: :class:`IngestCollector`).

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
