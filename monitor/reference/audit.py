"""What a reference build found wrong with its input: records the worker would dead-letter, and
features whose reference values break the spec's own rules.

A reference profile is the definition of "normal" for drift: records a worker would never
monitor (no id, a bad event time, ...) must not shape it, and training data that violates the
spec (ages down to -0.34 where the spec says at least 18, a feature missing in most rows) means
either the data or the spec is wrong. :class:`ReferenceAudit` filters the first out with the
worker's own checks (:func:`monitor.records.check_record`, and for JSON lines
:func:`monitor.records.decode_message`) and reports the second from the feature states the build
computes anyway (:class:`monitor.checks.FeatureState`: the same range, category and pattern
checks as a window).

Examples
--------
>>> from monitor.reference import build_profile
>>> from monitor.spec import StreamSpec
>>> s = StreamSpec.model_validate({"name": "f", "windows": [{"name": "w", "kind": "count", "size": 10}],
...     "features": [{"name": "age", "type": "numeric", "range": {"min": 18}}]})
>>> audit = ReferenceAudit(s)
>>> rows = [{"record_id": i, "age": 20.0 + i} for i in range(8)] + [{"age": 30.0}, {"record_id": 9, "age": -0.5}]
>>> p = build_profile(s, lambda: audit.check(rows), source={"kind": "test"}, audit=audit)
>>> p.rows, dict(audit.rejected)
(9, {'missing_id': 1})
>>> audit.findings[0].problems
['1 of 9 values (11.1%) outside range [18, ...): reference min -0.5, max 27']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor.records import REASONS, Rejection, check_record
from monitor.spec import FeatureSpec, StreamSpec

if TYPE_CHECKING:
    from monitor.checks import FeatureState

__all__ = ["MOSTLY_MISSING", "FeatureAudit", "ReferenceAudit"]

#: A feature (not ``nullable``) missing in more than this share of the reference records is reported.
MOSTLY_MISSING = 0.5

#: Values outside the declared categories named in a finding, at most.
SHOWN_VALUES = 5


def _pct(n: int, total: int) -> str:
    return f"{100.0 * n / total:.3g}%" if total else "-"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


@dataclass(frozen=True)
class FeatureAudit:
    """One feature's reference values against its spec (counts over the profiled records)."""

    name: str
    type: str
    nullable: bool
    count: int
    missing: int
    type_violations: int
    out_of_domain: int
    format_violations: int
    min: float | None = None
    max: float | None = None
    declared: str | None = None
    pattern: str | None = None
    #: Values outside the declared categories, most frequent first (at most :data:`SHOWN_VALUES`).
    outside: list[tuple[str, int]] = field(default_factory=list)

    @property
    def mostly_missing(self) -> bool:
        return not self.nullable and self.count > 0 and self.missing / self.count > MOSTLY_MISSING

    @property
    def problems(self) -> list[str]:
        """Each way the feature's reference values break the spec, in words (empty: none)."""
        out = []
        n = self.count
        if self.out_of_domain:
            if self.type == "numeric":
                out.append(f"{self.out_of_domain:,} of {n:,} values ({_pct(self.out_of_domain, n)}) outside "
                           f"{self.declared}: reference min {_num(self.min)}, max {_num(self.max)}")
            else:
                shown = ", ".join(f"{v!r} ({c:,})" for v, c in self.outside)
                out.append(f"{self.out_of_domain:,} of {n:,} values ({_pct(self.out_of_domain, n)}) outside "
                           f"{self.declared}" + (f": {shown}" if shown else ""))
        if self.format_violations:
            out.append(f"{self.format_violations:,} of {n:,} values ({_pct(self.format_violations, n)}) do not "
                       f"match pattern {self.pattern!r}")
        if self.type_violations:
            out.append(f"{self.type_violations:,} of {n:,} values ({_pct(self.type_violations, n)}) are not "
                       f"{'a number' if self.type == 'numeric' else 'a ' + self.type + ' value'}")
        if self.mostly_missing:
            out.append(f"mostly missing: {self.missing:,} of {n:,} records ({_pct(self.missing, n)}) have no value")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.name, "type": self.type, "count": self.count, "missing": self.missing,
                "type_violations": self.type_violations, "out_of_domain": self.out_of_domain,
                "format_violations": self.format_violations, "min": self.min, "max": self.max,
                "problems": self.problems}


def _declared(f: FeatureSpec) -> str | None:
    if f.range is not None:
        lo = "(..." if f.range.min is None else f"[{f.range.min:g}"
        hi = "...)" if f.range.max is None else f"{f.range.max:g}]"
        return f"range {lo}, {hi}"
    if f.categories is not None:
        shown = ", ".join(f.categories[:8]) + (", ..." if len(f.categories) > 8 else "")
        return f"the declared categories ({shown})"
    return None


class ReferenceAudit:
    """Counts what a reference build excluded, and why, and judges each feature's values (see the module)."""

    def __init__(self, stream: StreamSpec) -> None:
        self.stream = stream
        #: Records read (accepted and excluded).
        self.read = 0
        #: Records excluded, by dead-letter reason code.
        self.rejected: Counter[str] = Counter()
        #: The first excluded record's detail, by reason.
        self.examples: dict[str, str] = {}
        #: Every feature's audit, in spec order (filled when the build ends).
        self.features: list[FeatureAudit] = []

    @property
    def excluded(self) -> int:
        return sum(self.rejected.values())

    @property
    def profiled(self) -> int:
        return self.read - self.excluded

    def _reject(self, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        self.examples.setdefault(reason, detail)

    def check(self, items: Iterable[dict[str, Any] | Rejection]) -> Iterator[dict[str, Any]]:
        """The records of ``items`` a worker would monitor; the others (and ``Rejection`` items, from
        decoding) are counted by reason and left out."""
        for item in items:
            self.read += 1
            if isinstance(item, Rejection):
                self._reject(item.reason, item.detail)
                continue
            problem = check_record(item, self.stream)
            if problem is None:
                yield item
            else:
                self._reject(problem[0], f"record {self.read}: {problem[1]}")

    def observe(self, states: Mapping[str, FeatureState], categories: Mapping[str, Mapping[str, int]]) -> None:
        """Judge each feature from the build's states (and its category counts)."""
        self.features = []
        for f in self.stream.features:
            st = states[f.name]
            m = (st.moments.get() if st.moments is not None else None) or {}
            outside: list[tuple[str, int]] = []
            if f.categories is not None and f.name in categories:
                allowed = set(f.categories)
                bad = Counter({k: v for k, v in categories[f.name].items() if k not in allowed})
                outside = bad.most_common(SHOWN_VALUES)
            self.features.append(FeatureAudit(
                name=f.name, type=f.type, nullable=f.nullable, count=st.count, missing=st.missing,
                type_violations=st.type_violations, out_of_domain=st.out_of_domain,
                format_violations=st.format_violations, min=m.get("min"), max=m.get("max"),
                declared=_declared(f), pattern=f.pattern, outside=outside))

    @property
    def findings(self) -> list[FeatureAudit]:
        """The features whose reference values break the spec."""
        return [f for f in self.features if f.problems]

    def excluded_text(self) -> str:
        """``missing_id 3, malformed_json 1`` (most frequent first)."""
        return ", ".join(f"{reason} {n:,}" for reason, n in self.rejected.most_common())

    def summary_lines(self) -> list[str]:
        """A readable report: what was read and excluded (per reason, with an example), and each finding."""
        lines = [f"reference input: {self.read:,} records read, {self.profiled:,} profiled, "
                 f"{self.excluded:,} excluded (the worker would dead-letter them)"]
        width = max((len(r) for r in self.rejected), default=0)
        for reason, n in self.rejected.most_common():
            lines.append(f"  {reason:<{width}}  {n:>9,}  {REASONS.get(reason, reason)}; "
                         f"first: {self.examples[reason][:160]}")
        findings = self.findings
        if findings:
            lines.append(f"{len(findings)} feature(s) whose reference data breaks the spec:")
            for fa in findings:
                for problem in fa.problems:
                    lines.append(f"  {fa.name}: {problem}")
        else:
            lines.append("every feature's reference data is within the spec (range, categories, pattern, "
                         "types; none mostly missing)")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"read": self.read, "profiled": self.profiled, "excluded": dict(self.rejected),
                "examples": dict(self.examples), "features": [f.to_dict() for f in self.features]}
