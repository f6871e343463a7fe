"""The report's plotly figures: one function per figure, each from a :class:`~agents.report.run.ReplayRun`.

Every series is drawn over the windows' end times (event time), with the thresholds it is judged
against as dashed lines: distance drift methods over their threshold, test methods' p-values (log
axis) over alpha, quality ratios over their warning level, model metrics beside their reference and
the level at which a drop alerts.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from agents.report.run import AlertEvent, FeatureWindow, ModelWindow, ReplayRun, StreamWindow, WindowId
from monitor.reference import FeatureProfile
from monitor.spec import MonitorSpec, StreamSpec

__all__ = ["FEATURE_RATIOS", "RECORD_RATIOS", "Thresholds", "alert_timeline", "feature_figure", "model_figure",
           "stream_figure"]

#: Per-feature quality ratios drawn over windows (the ones a window reports as null are left out).
FEATURE_RATIOS = ("missing_ratio", "type_violation_ratio", "out_of_domain_ratio", "unseen_category_ratio",
                  "format_violation_ratio")
#: Record-level ratios of a stream drawn over windows.
RECORD_RATIOS = ("duplicate_ratio", "late_ratio", "out_of_order_ratio", "unexpected_field_ratio", "volume_deviation")
#: Model metrics drawn, when the windows carry them (binary and multiclass first, then regression).
MODEL_METRICS = ("accuracy", "roc_auc", "f1", "mae", "rmse")

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
SEVERITY_COLOURS = {"info": "#1f77b4", "warning": "#f0a202", "critical": "#d62728"}
REFERENCE_COLOUR = "#7f7f7f"
W = TypeVar("W", FeatureWindow, StreamWindow, ModelWindow)
LAYOUT: dict[str, Any] = {"template": "plotly_white", "margin": {"l": 60, "r": 30, "t": 60, "b": 50},
                          "legend": {"orientation": "h", "y": -0.18, "font": {"size": 10}}, "font": {"size": 11}}


def _time(w: WindowId) -> datetime:
    return datetime.fromisoformat(w.end.replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)


def _dated(windows: Sequence[W]) -> list[W]:
    """The windows with an end time (a partial window that saw no timed record ends at epoch 0: left out)."""
    return [w for w in windows if _time(w.window).year > 1970]


def _levels(fig: go.Figure, levels: dict[str, tuple[float, str]], *, row: int, col: int) -> None:
    """One dashed line per distinct level, its annotation naming every check judged by it."""
    by_level: dict[float, list[tuple[str, str]]] = {}
    for check, (level, colour) in levels.items():
        by_level.setdefault(level, []).append((check, colour))
    for level, checks in by_level.items():
        colour = checks[0][1] if len(checks) == 1 else REFERENCE_COLOUR
        _hline(fig, level, colour, f"{', '.join(c for c, _ in checks)} {level:g}", row=row, col=col)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The levels the spec judges a stream's checks by (``None``: no spec given, no lines drawn)."""

    spec: MonitorSpec | None

    def warning(self, stream: str, feature: str | None, check: str) -> float | None:
        """The lowest raise level of ``check`` (for ``feature``, or the stream's records)."""
        st = self._stream(stream)
        if self.spec is None or st is None:
            return None
        fs = next((f for f in st.features if f.name == feature), None) if feature is not None else None
        level = self.spec.threshold_for(st, fs, check)
        if level is None:
            return None
        return level.warning if level.warning is not None else level.critical

    def model_drop(self, stream: str, check: str) -> float | None:
        """The lowest raise level of a model check such as ``accuracy_drop``."""
        st = self._stream(stream)
        if st is None or st.model is None:
            return None
        level = st.model.level_for(check)
        if level is None:
            return None
        return level.warning if level.warning is not None else level.critical

    def _stream(self, name: str) -> StreamSpec | None:
        if self.spec is None:
            return None
        try:
            return self.spec.stream(name)
        except KeyError:
            return None


def _hline(fig: go.Figure, y: float, colour: str, text: str, *, row: int, col: int, secondary: bool = False,
           dash: str = "dash") -> None:
    fig.add_hline(y=y, line={"color": colour, "dash": dash, "width": 1}, row=row, col=col,
                  annotation_text=text, annotation_font={"size": 9, "color": colour},
                  annotation_position="top left", secondary_y=secondary if secondary else None)


def _bin_labels(profile: FeatureProfile | None, n: int) -> list[str]:
    edges = profile.bin_edges if profile is not None else None
    if edges is None or len(edges) != n - 1:
        return [f"bin {i + 1}" for i in range(n)]
    cut = [f"{e:.3g}" for e in edges]
    return [f"< {cut[0]}", *(f"{a} to {b}" for a, b in itertools.pairwise(cut)), f">= {cut[-1]}"]


def _shares(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    return [c / total if total else 0.0 for c in counts]


def feature_figure(name: str, windows: Sequence[FeatureWindow], profile: FeatureProfile | None,
                   thresholds: Thresholds) -> go.Figure:
    """Three panels for one feature of one window spec: reference vs current distribution (the last
    closed window, and the most drifted one when it is another), drift over windows with thresholds,
    quality ratios over windows with their warning levels."""
    stream, wname = windows[0].stream, windows[0].window.name
    windows = _dated(windows)
    fig = make_subplots(rows=1, cols=3, column_widths=[0.36, 0.34, 0.30], horizontal_spacing=0.07,
                        specs=[[{}, {"secondary_y": True}, {}]],
                        subplot_titles=("distribution: reference vs windows", "drift over windows",
                                        "quality ratios over windows"))
    # -- distribution
    closed = [w for w in windows if not w.window.partial and w.histogram] or [w for w in windows if w.histogram]
    if closed:
        last = closed[-1]
        n = len(last.histogram or [])
        labels = last.histogram_labels or _bin_labels(profile, n)
        expected = profile.expected_histogram() if profile is not None else None
        if expected is not None and len(expected) == n:
            fig.add_trace(go.Bar(x=labels, y=_shares(expected), name="reference", marker_color=REFERENCE_COLOUR,
                                 legendgroup="dist"), row=1, col=1)
        worst = max(closed, key=lambda w: w.first_distance() or 0.0)
        shown = [last] if worst is last or not worst.drifted else [worst, last]
        for w, colour in zip(shown, ("#d62728", PALETTE[0]) if len(shown) == 2 else (PALETTE[0],), strict=True):
            role = "most drifted" if w is worst and len(shown) == 2 else "last"
            fig.add_trace(go.Bar(x=labels, y=_shares(w.histogram or []), name=f"{w.window.label} ({role})",
                                 marker_color=colour, legendgroup="dist"), row=1, col=1)
        fig.update_yaxes(title_text="share", tickformat=".0%", row=1, col=1)
        fig.update_xaxes(tickangle=-35, tickfont={"size": 9}, row=1, col=1)
    # -- drift over windows
    times = [_time(w.window) for w in windows]
    methods: dict[str, None] = {}
    for w in windows:
        for m in w.drift:
            methods.setdefault(m, None)
    for k, method in enumerate(methods):
        colour = PALETTE[k % len(PALETTE)]
        rows = [(t, w.drift[method]) for t, w in zip(times, windows, strict=True) if method in w.drift]
        is_test = any(r.get("p_value") is not None for _, r in rows)
        key = "p_value" if is_test else "statistic"
        pts = [(t, r[key], bool(r.get("drifted"))) for t, r in rows if r.get(key) is not None]
        if not pts:
            continue
        label = f"{method} p-value (right, log)" if is_test else method
        fig.add_trace(go.Scatter(
            x=[p[0] for p in pts], y=[max(float(p[1]), 1e-300) if is_test else p[1] for p in pts],
            mode="lines+markers", name=label, line={"color": colour, "dash": "dot" if is_test else "solid"},
            marker={"size": [9 if p[2] else 5 for p in pts], "symbol": ["x" if p[2] else "circle" for p in pts]},
            legendgroup="drift"), row=1, col=2, secondary_y=is_test)
        threshold = next((r.get("threshold") for _, r in rows if r.get("threshold") is not None), None)
        if threshold is not None:
            _hline(fig, threshold, colour, f"{'alpha' if is_test else method} {threshold:g}", row=1, col=2,
                   secondary=is_test)
        if is_test:
            fig.update_yaxes(type="log", title_text="p-value", row=1, col=2, secondary_y=True)
    fig.update_yaxes(title_text="distance", rangemode="tozero", row=1, col=2, secondary_y=False)
    # -- quality ratios
    k = 0
    levels: dict[str, tuple[float, str]] = {}
    for check in FEATURE_RATIOS:
        ratios = [(t, w.quality.get(check)) for t, w in zip(times, windows, strict=True)]
        if all(v is None for _, v in ratios):
            continue
        colour = PALETTE[k % len(PALETTE)]
        k += 1
        fig.add_trace(go.Scatter(x=[t for t, _ in ratios], y=[v for _, v in ratios], mode="lines+markers",
                                 name=check, line={"color": colour}, marker={"size": 4}, legendgroup="quality"),
                      row=1, col=3)
        level = thresholds.warning(stream, name, check)
        if level is not None:
            levels[check] = (level, colour)
    _levels(fig, levels, row=1, col=3)
    fig.update_yaxes(title_text="ratio", tickformat=".0%", rangemode="tozero", row=1, col=3)
    fig.update_layout(**{**LAYOUT, "margin": {**LAYOUT["margin"], "b": 110},
                         "legend": {**LAYOUT["legend"], "y": -0.32}}, height=420,
                      title={"text": f"<b>{stream}.{name}</b>  ({wname})", "x": 0.01, "font": {"size": 14}})
    return fig


def stream_figure(stream: str, windows: Sequence[StreamWindow], thresholds: Thresholds) -> go.Figure:
    """Records per window (bars) and the record-level ratios with their warning levels."""
    wname = windows[0].window.name
    windows = _dated(windows)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], horizontal_spacing=0.08,
                        subplot_titles=("records per window", "record checks over windows"))
    times = [_time(w.window) for w in windows]
    fig.add_trace(go.Bar(x=times, y=[w.count for w in windows], name="records", marker_color=PALETTE[0]),
                  row=1, col=1)
    k = 0
    levels: dict[str, tuple[float, str]] = {}
    for check in RECORD_RATIOS:
        pts = [(t, w.records.get(check)) for t, w in zip(times, windows, strict=True)]
        if all(v is None for _, v in pts):
            continue
        colour = PALETTE[(k + 1) % len(PALETTE)]
        k += 1
        fig.add_trace(go.Scatter(x=[t for t, _ in pts], y=[v for _, v in pts], mode="lines+markers", name=check,
                                 line={"color": colour}, marker={"size": 4}), row=1, col=2)
        level = thresholds.warning(stream, None, check)
        if level is not None:
            levels[check] = (level, colour)
    _levels(fig, levels, row=1, col=2)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_layout(**LAYOUT, height=330, title={"text": f"<b>{stream}</b>  ({wname}): records",
                                                   "x": 0.01, "font": {"size": 14}})
    return fig


def model_figure(stream: str, key: str, windows: Sequence[ModelWindow], thresholds: Thresholds) -> go.Figure:
    """A model version's realised performance (windows of joined labels) beside its label-free estimate
    (windows of predictions), the reference performance and the level at which a drop alerts; and the
    share of predictions whose label expired."""
    windows = _dated(windows)
    labelled = [w for w in windows if w.basis == "labels" and w.realised]
    predicted = [w for w in windows if w.basis == "predictions"]
    present = [m for m in MODEL_METRICS
               if any((w.realised or {}).get(m) is not None for w in labelled)
               or any((w.estimated or {}).get(m) is not None for w in predicted)]
    metrics = present[:3]
    cols = len(metrics) + 1
    fig = make_subplots(rows=1, cols=cols, horizontal_spacing=0.06,
                        subplot_titles=(*metrics, "labels: expired share and coverage"))
    for c, metric in enumerate(metrics, start=1):
        first = c == 1
        real = [(_time(w.window), w.realised[metric]) for w in labelled
                if w.realised and w.realised.get(metric) is not None]
        est = [(_time(w.window), w.estimated[metric]) for w in predicted
               if w.estimated and w.estimated.get(metric) is not None]
        if real:
            fig.add_trace(go.Scatter(x=[t for t, _ in real], y=[v for _, v in real], mode="lines+markers",
                                     name="realised (labels)", line={"color": PALETTE[0]}, legendgroup="realised",
                                     showlegend=first, marker={"size": 5}), row=1, col=c)
        if est:
            fig.add_trace(go.Scatter(x=[t for t, _ in est], y=[v for _, v in est], mode="lines+markers",
                                     name="estimated (CBPE, no labels)", line={"color": PALETTE[1], "dash": "dash"},
                                     legendgroup="estimated", showlegend=first, marker={"size": 5}), row=1, col=c)
        ref = next((w.reference[metric] for w in windows if w.reference and w.reference.get(metric) is not None), None)
        if ref is not None:
            _hline(fig, float(ref), REFERENCE_COLOUR, f"reference {float(ref):.3f}", row=1, col=c, dash="dot")
            drop = thresholds.model_drop(stream, f"{metric}_drop")
            if drop is not None:
                higher_better = metric not in ("mae", "rmse")
                alert_at = float(ref) - drop if higher_better else float(ref) + drop
                _hline(fig, alert_at, SEVERITY_COLOURS["warning"], f"{metric}_drop {drop:g}", row=1, col=c)
    expired = [(_time(w.window), w.join.get("label_expired_ratio")) for w in predicted]
    if any(v is not None for _, v in expired):
        fig.add_trace(go.Scatter(x=[t for t, _ in expired], y=[v for _, v in expired], mode="lines+markers",
                                 name="label_expired_ratio", line={"color": PALETTE[3]}, marker={"size": 5}),
                      row=1, col=cols)
        level = thresholds.model_drop(stream, "label_expired_ratio")
        if level is not None:
            _hline(fig, level, PALETTE[3], f"label_expired_ratio {level:g}", row=1, col=cols)
    joined = [(_time(w.window), w.join.get("joined"), w.join.get("expired")) for w in predicted]
    coverage = [(t, j / (j + e)) for t, j, e in joined if j is not None and e is not None and j + e > 0]
    if coverage:
        fig.add_trace(go.Scatter(x=[t for t, _ in coverage], y=[v for _, v in coverage], mode="lines",
                                 name="label coverage", line={"color": PALETTE[2]}), row=1, col=cols)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=1, col=cols)
    fig.update_layout(**LAYOUT, height=360, title={"text": f"<b>{stream}</b> model {key}: realised vs estimated",
                                                   "x": 0.01, "font": {"size": 14}})
    return fig


def alert_timeline(run: ReplayRun) -> go.Figure:
    """Each alert (one row per stream, feature or model, and check): a bar from firing to resolved (or the
    end of the replay), coloured by its highest severity, with a marker per event."""
    events = sorted(run.alerts, key=lambda a: a.time)
    end = max((_time(w.window) for w in run.streams), default=None)
    rows: dict[str, list[AlertEvent]] = {}
    for a in events:
        rows.setdefault(a.fingerprint, []).append(a)
    fig = go.Figure()
    shown: set[str] = set()
    for evs in rows.values():
        label = f"{evs[0].subject} · {evs[0].check}"
        opened: AlertEvent | None = None
        for ev in [*evs, None]:
            if ev is not None and ev.status == "firing" and opened is None:
                opened = ev
            elif opened is not None and (ev is None or ev.status == "resolved"):
                stop = _time(ev.window) if ev is not None else (end or _time(opened.window))
                sev = max((e.severity for e in evs if e.status == "firing" and opened.time <= e.time),
                          key=lambda s: ("info", "warning", "critical").index(s) if s in SEVERITY_COLOURS else 0)
                fig.add_trace(go.Scatter(
                    x=[_time(opened.window), stop], y=[label, label], mode="lines",
                    line={"color": SEVERITY_COLOURS.get(sev, "#333"), "width": 10}, opacity=0.45,
                    name=f"open ({sev})", legendgroup=f"open-{sev}", showlegend=f"open-{sev}" not in shown,
                    hoverinfo="skip"))
                shown.add(f"open-{sev}")
                opened = None
        for status, symbol in (("firing", "triangle-up"), ("resolved", "circle-open")):
            pts = [a for a in evs if a.status == status]
            if not pts:
                continue
            fig.add_trace(go.Scatter(
                x=[_time(a.window) for a in pts], y=[label] * len(pts), mode="markers", name=status,
                legendgroup=status, showlegend=status not in shown,
                marker={"symbol": symbol, "size": 11, "color": [SEVERITY_COLOURS.get(a.severity, "#333") for a in pts],
                        "line": {"width": 2, "color": [SEVERITY_COLOURS.get(a.severity, "#333") for a in pts]}},
                text=[a.summary for a in pts], hovertemplate="%{text}<extra></extra>"))
            shown.add(status)
    fig.update_layout(**{**LAYOUT, "margin": {"l": 260, "r": 30, "t": 50, "b": 50}},
                      height=max(220, 60 + 26 * len(rows)),
                      title={"text": f"<b>alert timeline</b>  ({len(events)} events, {len(rows)} alerts)", "x": 0.01,
                             "font": {"size": 14}})
    fig.update_yaxes(autorange="reversed", type="category")
    return fig
