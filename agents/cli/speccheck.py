"""Warnings about specs that are valid but will not do what they seem to ask (``streamdq validate``).

Kept out of the spec model: these are not errors (exit 0), and the model stays about what is allowed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["drift_features", "spec_warnings"]


def drift_features(stream: Any) -> list[str]:
    """The features of ``stream`` (a :class:`~monitor.spec.StreamSpec`) the engine would drift-test
    against a reference: every non-string feature with at least one drift method (its own
    ``drift_methods``, else the stream's ``drift.methods``; ``auto`` always has some).

    >>> from monitor.spec import StreamSpec
    >>> s = StreamSpec.model_validate({"name": "s", "windows": [{"name": "w", "kind": "count", "size": 10}],
    ...     "features": [{"name": "a", "type": "numeric"}, {"name": "t", "type": "string"}]})
    >>> drift_features(s)
    ['a']
    """
    stream_methods = stream.drift.methods
    return [f.name for f in stream.features
            if f.type != "string" and (f.drift_methods or stream_methods == "auto" or stream_methods)]


def spec_warnings(spec: Any) -> list[str]:
    """One line per stream whose drift configuration cannot run: features that would be drift-tested
    (or drift methods configured) but no ``reference:`` profile to test them against.

    >>> from monitor.spec import parse_spec
    >>> spec = parse_spec({"version": 1, "name": "m", "streams": [{"name": "s", "features": [
    ...     {"name": "a", "type": "numeric"}], "windows": [{"name": "w", "kind": "count", "size": 10}]}]})
    >>> print(spec_warnings(spec)[0])  # doctest: +NORMALIZE_WHITESPACE
    stream 's' has no reference: profile, so drift is never measured for its 1 drift-tested feature(s) (a;
    methods: auto); build one (streamdq reference build SPEC --stream s ...) and set reference:, or set
    rolling_reference: N to compare recent windows with each other
    """
    out = []
    for s in spec.streams:
        if s.reference is not None:
            continue
        names = drift_features(s)
        if not names:
            continue
        shown = ", ".join(names[:6]) + (f", ... ({len(names) - 6} more)" if len(names) > 6 else "")
        methods = s.drift.methods if s.drift.methods == "auto" else ", ".join(s.drift.methods) or "per feature"
        what = f"{len(names)} drift-tested feature(s) ({shown}; methods: {methods})"
        if s.rolling_reference:
            out.append(f"stream {s.name!r} has no reference: profile, so its {what} are only compared with the "
                       f"previous {s.rolling_reference} window(s) (rolling_reference), never with training data")
        else:
            out.append(f"stream {s.name!r} has no reference: profile, so drift is never measured for its {what}; "
                       f"build one (streamdq reference build SPEC --stream {s.name} ...) and set reference:, "
                       "or set rolling_reference: N to compare recent windows with each other")
    return out
