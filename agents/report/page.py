"""The report page: one self-contained HTML file (plotly.js inlined once, no request leaves the page).

Order: a summary (records, windows, alerts, dead letters), the alert timeline, each model's
performance, then per stream its records and its features, those that alerted or drifted most first.
Each figure sits in ``<section class="plot" data-plot="...">`` so a reader (or a test) can find them all.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import plotly.io as pio
from plotly.offline import get_plotlyjs

from agents.report.figures import Thresholds, alert_timeline, feature_figure, model_figure, stream_figure
from agents.report.run import FeatureWindow, ReplayRun
from monitor.reference import ReferenceProfile
from monitor.spec import MonitorSpec

__all__ = ["PLOT_CONFIG", "RenderedReport", "render_report"]

#: plotly's per-figure options: no link to plotly's site, figures follow the page's width.
PLOT_CONFIG = {"displaylogo": False, "responsive": True}

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0 auto; max-width: 1500px;
       padding: 16px 24px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin: 4px 0 2px; } h2 { font-size: 17px; margin: 26px 0 8px; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 12px; }
table { border-collapse: collapse; font-size: 12px; margin: 6px 0 10px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; } th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.firing { color: #d62728; } .resolved { color: #2ca02c; }
.sev-critical { font-weight: bold; color: #d62728; } .sev-warning { color: #b07800; }
section.plot { background: white; border: 1px solid #e5e5e5; border-radius: 4px; margin: 10px 0; padding: 2px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 10px 0; }
.card { background: white; border: 1px solid #e5e5e5; border-radius: 4px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 20px; } .card span { color: #666; font-size: 12px; }
details { margin: 6px 0; }
"""


@dataclass(frozen=True, slots=True)
class RenderedReport:
    """The page and what it holds (the ids of its figures, for a reader that checks them)."""

    html: str
    plots: tuple[str, ...]

    def write(self, path: str | Path) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.html, encoding="utf-8")
        return out


def _e(x: object) -> str:
    return html.escape(str(x))


def _feature_rank(windows: list[FeatureWindow], alerted: set[str]) -> tuple[int, float]:
    worst = max((w.first_distance() or 0.0 for w in windows), default=0.0)
    drifted = any(w.drifted for w in windows if not w.window.partial)
    return (0 if windows[0].feature in alerted else 1 if drifted else 2, -worst)


def render_report(run: ReplayRun, *, spec: MonitorSpec | None = None,
                  references: Mapping[str, ReferenceProfile] | None = None, window: str | None = None,
                  title: str | None = None) -> RenderedReport:
    """Build the page for ``run``: with ``spec`` the quality thresholds are drawn, with ``references``
    (per stream) the reference distributions; ``window`` picks the window spec drawn over time (default:
    each stream's first)."""
    references = references or {}
    thresholds = Thresholds(spec)
    parts: list[str] = []
    plots: list[str] = []

    def add(fig_id: str, fig: object) -> None:
        div = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=fig_id, config=PLOT_CONFIG)
        parts.append(f'<section class="plot" data-plot="{_e(fig_id)}">{div}</section>')
        plots.append(fig_id)

    firing = [a for a in run.alerts if a.status == "firing"]
    name = title or (f"streamdq report: {spec.name}" if spec is not None else "streamdq report")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    first = min((w.window.start for w in run.streams), default="")
    last = max((w.window.end for w in run.streams), default="")
    sources = ", ".join(map(str, run.paths))
    parts.append(f"<h1>{_e(name)}</h1><div class='meta'>replay {_e(sources)} · event time {_e(first)} to "
                 f"{_e(last)} · generated {generated}</div>")
    records = {s: sum(w.count for w in run.streams if w.stream == s and w.window.name == run.window_names(s)[0])
               for s in run.stream_names() if run.window_names(s)}
    cards = [(f"{sum(records.values()):,}", "records in windows"), (f"{len(run.streams):,}", "stream windows"),
             (f"{len(firing)}", "alerts fired"),
             (f"{sum(1 for a in run.alerts if a.status == 'resolved')}", "resolved"),
             (f"{sum(run.deadletters.values()):,}", "dead letters")]
    parts.append("<div class='cards'>" + "".join(f"<div class='card'><b>{_e(v)}</b><span>{_e(k)}</span></div>"
                                                 for v, k in cards) + "</div>")
    rows = "".join(f"<tr><td>{_e(s)}</td><td class='num'>{records.get(s, 0):,}</td>"
                   f"<td>{_e(', '.join(run.window_names(s)))}</td><td class='num'>{len(run.feature_names(s))}</td>"
                   f"<td>{_e(references[s].profile_version) if s in references else 'none given'}</td></tr>"
                   for s in run.stream_names())
    parts.append("<table><tr><th>stream</th><th>records</th><th>windows</th><th>features</th>"
                 f"<th>reference profile</th></tr>{rows}</table>")
    if run.deadletters:
        parts.append("<div class='meta'>dead letters by reason: " + _e(", ".join(
            f"{k} {v:,}" for k, v in sorted(run.deadletters.items()))) + "</div>")

    # -- alerts
    parts.append("<h2>Alerts</h2>")
    if run.alerts:
        add("alert-timeline", alert_timeline(run))
        body = "".join(
            f"<tr><td>{_e(a.window.end)}</td><td class='{_e(a.status)}'>{_e(a.status)}</td>"
            f"<td class='sev-{_e(a.severity)}'>{_e(a.severity)}</td><td>{_e(a.subject)}</td><td>{_e(a.check)}</td>"
            f"<td class='num'>{'' if a.value is None else f'{a.value:.4g}'}</td>"
            f"<td class='num'>{'' if a.threshold is None else f'{a.threshold:.4g}'}</td>"
            f"<td>{_e(a.window.label)}</td></tr>" for a in sorted(run.alerts, key=lambda a: a.time))
        parts.append(f"<details><summary>{len(run.alerts)} alert events</summary><table><tr><th>window end</th>"
                     "<th>status</th><th>severity</th><th>subject</th><th>check</th><th>value</th><th>threshold</th>"
                     f"<th>window</th></tr>{body}</table></details>")
    else:
        parts.append("<p>No alert fired in this replay.</p>")

    # -- models
    for n, (stream, key) in enumerate(run.model_keys()):
        if n == 0:
            parts.append("<h2>Model performance</h2>")
        ws = [m for m in run.models if m.stream == stream and m.key == key]
        add(f"model-{n}", model_figure(stream, key, ws, thresholds))

    # -- streams and features
    alerted = Counter((a.stream, a.feature) for a in firing if a.feature is not None)
    for s_idx, stream in enumerate(run.stream_names()):
        names = run.window_names(stream)
        if not names:
            continue
        wname = window if window in names else names[0]
        parts.append(f"<h2>Stream {_e(stream)}</h2>")
        sw = [w for w in run.streams if w.stream == stream and w.window.name == wname]
        add(f"stream-{s_idx}", stream_figure(stream, sw, thresholds))
        per_feature = {f: [w for w in run.features if w.stream == stream and w.feature == f and w.window.name == wname]
                       for f in run.feature_names(stream)}
        hit = {f for (s, f) in alerted if s == stream}
        ordered = sorted((f for f in per_feature if per_feature[f]),
                         key=lambda f: _feature_rank(per_feature[f], hit))
        ref = references.get(stream)
        for f_idx, feature in enumerate(ordered):
            profile = ref.features.get(feature) if ref is not None else None
            add(f"feature-{s_idx}-{f_idx}", feature_figure(feature, per_feature[feature], profile, thresholds))
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(name)}</title><style>{CSS}</style>"
            f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
            + "\n".join(parts) + "</body></html>")
    return RenderedReport(html=page, plots=tuple(plots))
