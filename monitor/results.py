"""What a batch run of the monitor returns: every closed window's report, the alerts, the rejected records.

:meth:`monitor.Monitor.process_records` and :meth:`monitor.Monitor.process_frame` return a
:class:`Results`. Its :attr:`Results.windows` is a pandas DataFrame (pandas is an optional
dependency: ``pip install 'streamdq[pandas]'``); everything else is plain Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor.alerts import Alert
from monitor.records import Rejection
from monitor.report import ModelWindowReport, Report, WindowReport

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Results"]


@dataclass
class Results:
    """The reports of every window closed in a batch run, in order, and the records it rejected.

    Bounded by the input: one report per closed window, one :class:`~monitor.records.Rejection`
    (with the record's bytes) per rejected record.

    Examples
    --------
    >>> from monitor import Monitor
    >>> monitor = Monitor.from_spec({"version": 1, "name": "t", "streams": [{
    ...     "name": "f", "windows": [{"name": "w2", "kind": "count", "size": 2}], "min_samples": 2,
    ...     "features": [{"name": "x", "type": "numeric"}]}]})
    >>> results = monitor.process_records([{"record_id": 1, "x": 1.0}, {"record_id": 2}, {"x": 3.0}])
    >>> [(row["feature"], row["count"], row.get("missing_ratio")) for row in results.rows()]
    [(None, 2, None), ('x', 2, 0.5)]
    >>> results.rejected_by_reason
    Counter({'missing_id': 1})
    >>> [(a.check, a.severity, a.status) for a in results.alerts]
    [('missing_ratio', 'critical', 'firing')]
    """

    reports: list[Report] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    def add(self, reports: Iterable[Report]) -> None:
        """Append the reports of windows that closed."""
        self.reports.extend(reports)

    @property
    def alerts(self) -> list[Alert]:
        """What would have been notified: every firing and resolved event, in order."""
        return [event for report in self.reports for event in report.events]

    @property
    def rejected_by_reason(self) -> Counter[str]:
        """Rejected records by reason code (the dead-letter reasons)."""
        return Counter(r.reason for r in self.rejected)

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per feature and window (feature windows), or per model window and version.

        Feature rows: the window's identity, ``count``, the feature's quality ratios and, per drift
        method, its statistic (``drift_<method>``) and p-value (``drift_<method>_p``, tests only, and
        ``drift_<method>_p_adjusted`` after the window's multiple-testing correction).
        Stream-level rows (``feature`` ``None``) carry the record ratios. Model rows carry the
        realised and estimated metrics (``realised_<metric>``, ``estimated_<metric>``).
        """
        out: list[dict[str, Any]] = []
        for report in self.reports:
            w = report.window
            base = {"stream": report.stream, "window": w["name"], "kind": w["kind"], "index": w["index"],
                    "start": w["start"], "end": w["end"], "partial": w["partial"], "count": report.count}
            if isinstance(report, WindowReport):
                records = {k: v for k, v in report.records.items() if isinstance(v, int | float) or v is None}
                out.append({**base, "feature": None, **records,
                            "alerts": sum(a.feature is None for a in report.alerts)})
                for name, fr in report.features.items():
                    row = {**base, "feature": name, "feature_count": fr.count, **fr.ratios}
                    for method, d in report.drift.get(name, {}).items():
                        row[f"drift_{method}"] = d.statistic
                        if d.p_value is not None:
                            row[f"drift_{method}_p"] = d.p_value
                            row[f"drift_{method}_p_adjusted"] = d.p_value_adjusted
                    row["alerts"] = sum(a.feature == name for a in report.alerts)
                    out.append(row)
            elif isinstance(report, ModelWindowReport):
                row = {**base, "model": report.model, "model_version": report.version, "basis": report.basis}
                for source, values in (("realised", report.realised), ("estimated", report.estimated)):
                    for metric, value in (values or {}).items():
                        if isinstance(value, int | float) or value is None:
                            row[f"{source}_{metric}"] = value
                row["alerts"] = len(report.alerts)
                out.append(row)
        return out

    @property
    def windows(self) -> pd.DataFrame:
        """:meth:`rows` as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is in the test extras
            raise ImportError("Results.windows needs pandas: pip install 'streamdq[pandas]' "
                              "(or use Results.rows())") from None
        return pd.DataFrame(self.rows())
