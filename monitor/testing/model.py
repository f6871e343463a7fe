"""A seeded synthetic binary classifier with delayed labels, for tests and the demo.

:func:`generate` draws ``n`` predictions of a model that is *calibrated* before any injected
problem: each prediction's score ``p`` (from ``Beta(score_beta, score_beta)``, accuracy about 0.85
at the default 0.35) is the true probability that its label is 1. Labels come later (exponential
delays after an optional minimum), for a share of the predictions only, and sorted by their own
event time, so they arrive out of order relative to the predictions. Two problems can be switched on:

* **concept drift** (``concept_drift_at``): from that prediction on, each label is flipped with
  probability ``drift_flip``; the scores look as before, only the labels reveal it;
* **score shift** (``score_shift_at``): from that prediction on, the true probabilities move
  towards 0.5 (``p -> 0.5 + (p - 0.5) * shift_factor``) and the scores with them; the model stays
  calibrated but is less confident, so the label-free (CBPE) estimate drops before any label of the
  shifted period arrives.

:func:`merged` interleaves both record lists by event time (how they would arrive),
:func:`expected_accuracy` is the known accuracy of a calibrated model, :func:`labelled` joins
predictions to their labels (reference rows) and :func:`model_spec_dict` returns a valid monitor
spec with a ``predictions`` and a ``labels`` stream.

Examples
--------
>>> preds, labels = generate(ModelScenario(n=1000, label_share=0.5), seed=7)
>>> len(preds), sorted(preds[0])
(1000, ['event_time', 'model', 'model_version', 'record_id', 'score'])
>>> preds[0]["record_id"], preds[0]["event_time"], preds[1]["event_time"]
('p000000001', 1700000000.0, 1700000000.01)
>>> 400 < len(labels) < 600, sorted(labels[0]), {lab["label"] for lab in labels}
(True, ['event_time', 'label', 'record_id'], {0, 1})
>>> generate(ModelScenario(n=1000, label_share=0.5), seed=7) == (preds, labels)
True
>>> stream = merged(preds, labels)
>>> [kind for kind, _ in stream[:2]], len(stream) == len(preds) + len(labels)
(['predictions', 'predictions'], True)
>>> round(expected_accuracy([0.9, 0.2, 0.5]), 4)  # (0.9 + 0.8 + 0.5) / 3
0.7333
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ModelScenario", "expected_accuracy", "generate", "labelled", "merged", "model_spec_dict"]


@dataclass(frozen=True, slots=True)
class ModelScenario:
    """What :func:`generate` draws.

    Parameters
    ----------
    n
        Number of predictions.
    start
        Event time of the first prediction (epoch seconds).
    rate
        Predictions per second (evenly spaced event times).
    label_share
        Probability that a prediction is ever labelled.
    label_delay_mean
        Mean label delay in seconds beyond ``label_delay_min`` (exponential).
    label_delay_min
        Every label comes at least this many seconds after its prediction.
    concept_drift_at
        Index of the first prediction whose label disagrees with its score: flipped with probability
        ``drift_flip`` (``None``: never).
    drift_flip
        Flip probability of a drifted label.
    score_shift_at
        Index of the first prediction whose true probability (and score) moves towards 0.5
        (``None``: never).
    shift_factor
        ``p -> 0.5 + (p - 0.5) * shift_factor`` after ``score_shift_at`` (1: no shift, 0: all 0.5).
    score_beta
        Scores come from ``Beta(score_beta, score_beta)``: smaller is more confident (0.35: accuracy about 0.85).
    model, version
        The model name and version the prediction records carry.
    id_prefix
        Record ids are ``id_prefix`` and the 1-based index in 9 digits (``p000000001``); give each version
        generated separately its own prefix.
    """

    n: int = 10_000
    start: float = 1_700_000_000.0
    rate: float = 100.0
    label_share: float = 1.0
    label_delay_mean: float = 30.0
    label_delay_min: float = 0.0
    concept_drift_at: int | None = None
    drift_flip: float = 0.3
    score_shift_at: int | None = None
    shift_factor: float = 0.4
    score_beta: float = 0.35
    model: str = "churn"
    version: str = "v1"
    id_prefix: str = "p"

    def __post_init__(self) -> None:
        if self.n < 0 or self.rate <= 0 or self.score_beta <= 0 or self.label_delay_mean < 0 \
                or self.label_delay_min < 0:
            raise ValueError("n must be >= 0, rate and score_beta > 0 and the label delays >= 0")
        for name in ("label_share", "drift_flip", "shift_factor"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")


def generate(scenario: ModelScenario, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Prediction records (by event time) and label records (sorted by their own event time).

    Predictions: ``{"record_id": "p000000001", "event_time": float, "model", "model_version",
    "score"}``; labels: ``{"record_id", "event_time": prediction time + delay, "label": 0 or 1}``.
    Deterministic for a given ``scenario`` and ``seed``.
    """
    s = scenario
    rng = np.random.default_rng(seed)
    n = s.n
    idx = np.arange(n)
    p = rng.beta(s.score_beta, s.score_beta, size=n)
    if s.score_shift_at is not None:
        shifted = idx >= s.score_shift_at
        p = np.where(shifted, 0.5 + (p - 0.5) * s.shift_factor, p)
    p = np.clip(p, 0.0, 1.0)
    y = (rng.random(n) < p).astype(np.int64)
    if s.concept_drift_at is not None:
        flip = (idx >= s.concept_drift_at) & (rng.random(n) < s.drift_flip)
        y = np.where(flip, 1 - y, y)
    has_label = rng.random(n) < s.label_share
    delay = s.label_delay_min + (rng.exponential(s.label_delay_mean, size=n) if s.label_delay_mean > 0
                                 else np.zeros(n))
    times = s.start + idx / s.rate
    ids = [f"{s.id_prefix}{i + 1:09d}" for i in range(n)]
    predictions: list[dict[str, Any]] = [
        {"record_id": ids[i], "event_time": float(times[i]), "model": s.model, "model_version": s.version,
         "score": float(p[i])} for i in range(n)]
    labels: list[dict[str, Any]] = [
        {"record_id": ids[i], "event_time": float(times[i] + delay[i]), "label": int(y[i])}
        for i in np.flatnonzero(has_label).tolist()]
    labels.sort(key=lambda r: r["event_time"])
    return predictions, labels


def merged(predictions: Sequence[dict[str, Any]],
           labels: Sequence[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Both record lists as one stream ordered by event time (stable: on a tie predictions first, then
    each list's own order): ``("predictions" | "labels", record)`` pairs, as they would arrive."""
    items = [("predictions", r) for r in predictions] + [("labels", r) for r in labels]
    items.sort(key=lambda item: float(item[1]["event_time"]))
    return items


def expected_accuracy(scores: Iterable[float], threshold: float = 0.5) -> float:
    """The expected accuracy of a calibrated model on ``scores``: a score ``p >= threshold`` predicts 1
    and is right with probability ``p``, a lower one predicts 0 and is right with probability ``1 - p``.

    >>> expected_accuracy([0.3, 0.6], threshold=0.7)  # both predict 0
    0.55
    """
    s = np.fromiter(scores, dtype=np.float64)
    if not s.size:
        raise ValueError("no scores")
    return float(np.where(s >= threshold, s, 1.0 - s).mean())


def labelled(predictions: Iterable[dict[str, Any]], labels: Iterable[dict[str, Any]],
             *, label_field: str = "label") -> list[dict[str, Any]]:
    """The predictions that have a label, each with the label added under ``label_field`` (reference rows
    for :func:`~monitor.reference.build_profile`).

    >>> labelled([{"record_id": "a", "score": 0.9}, {"record_id": "b", "score": 0.1}],
    ...          [{"record_id": "b", "label": 0}])
    [{'record_id': 'b', 'score': 0.1, 'label': 0}]
    """
    by_id = {r["record_id"]: r["label"] for r in labels}
    return [{**r, label_field: by_id[r["record_id"]]} for r in predictions if r["record_id"] in by_id]


def model_spec_dict(*, name: str = "churn", window: int = 2000, min_samples: int = 200,
                    ttl_seconds: float = 3600.0, max_pending: int = 1_000_000, partitions: int = 1,
                    detectors: Sequence[str] = ("ddm", "adwin"),
                    thresholds: Mapping[str, Mapping[str, float]] | None = None,
                    max_versions: int = 8) -> dict[str, Any]:
    """A valid monitor spec (as a dict) for a binary model: a ``predictions`` stream (kind predictions,
    feature ``score`` numeric in [0, 1]; the ``model``/``model_version`` fields need no feature) and a
    ``labels`` stream (kind labels, feature ``label`` categorical ``["0", "1"]``); one model window of
    ``window`` labelled examples / predictions.

    >>> from monitor.spec import parse_spec
    >>> spec = parse_spec(model_spec_dict(window=500, thresholds={"label_expired_ratio": {"warning": 0.5}}))
    >>> m = spec.stream("predictions").model
    >>> m.labels, m.windows[0].size, m.level_for("label_expired_ratio").warning
    ('labels', 500, 0.5)
    """
    stream_window = [{"name": "w1k", "kind": "count", "size": 1000}]
    model: dict[str, Any] = {
        "name": name, "task": "binary", "labels": "labels", "score_field": "score",
        "windows": [{"name": f"perf{window}", "kind": "count", "size": window}],
        "min_samples": min_samples, "detectors": list(detectors), "max_versions": max_versions,
        "join": {"ttl_seconds": ttl_seconds, "max_pending": max_pending},
        "thresholds": {k: dict(v) for k, v in (thresholds or {}).items()},
    }
    return {
        "version": 1, "name": f"{name}-monitor",
        "streams": [
            {"name": "predictions", "kind": "predictions", "partitions": partitions, "windows": stream_window,
             "features": [{"name": "score", "type": "numeric", "range": {"min": 0, "max": 1}}], "model": model},
            {"name": "labels", "kind": "labels", "partitions": partitions, "windows": stream_window,
             "features": [{"name": "label", "type": "categorical", "categories": ["0", "1"]}]},
        ],
    }
