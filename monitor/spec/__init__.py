"""The monitor spec: a team's written definition of clean data, as a typed model.

A spec is one YAML file. :func:`load_spec` parses and validates it once and
either returns a :class:`MonitorSpec` or raises :class:`~monitor.errors.ConfigError`
listing every problem with the dotted path of the bad key, e.g.::

    streams[0].features[2].type: Input should be 'numeric', 'categorical' or 'boolean'

Examples
--------
>>> spec = MonitorSpec.model_validate({
...     "version": 1, "name": "shop",
...     "streams": [{"name": "features",
...                  "windows": [{"name": "w1k", "kind": "count", "size": 1000}],
...                  "features": [{"name": "age", "type": "numeric"}]}]})
>>> spec.streams[0].topic
'features'
>>> spec.threshold_for(spec.streams[0], spec.streams[0].features[0], "psi").critical
0.25
"""

from monitor.names import FEATURE_CHECKS, MODEL_CHECKS, RECORD_CHECKS
from monitor.spec.base import (
    CATEGORICAL_METHODS,
    CHECKS,
    DEFAULT_THRESHOLDS,
    MODEL_DEFAULT_THRESHOLDS,
    NUMERIC_METHODS,
    Threshold,
)
from monitor.spec.document import (
    AlertFilter,
    AlertingSpec,
    MonitorSpec,
    OutputsSpec,
    SubscriptionSpec,
    format_loc,
    load_spec,
    parse_spec,
)
from monitor.spec.streams import (
    DriftSpec,
    DuplicatesSpec,
    FeatureSpec,
    JoinSpec,
    ModelSpec,
    Range,
    StreamSpec,
    TimeSpec,
    VolumeSpec,
    WindowSpec,
)

__all__ = [
    "CATEGORICAL_METHODS",
    "CHECKS",
    "DEFAULT_THRESHOLDS",
    "FEATURE_CHECKS",
    "MODEL_CHECKS",
    "MODEL_DEFAULT_THRESHOLDS",
    "NUMERIC_METHODS",
    "RECORD_CHECKS",
    "AlertFilter",
    "AlertingSpec",
    "DriftSpec",
    "DuplicatesSpec",
    "FeatureSpec",
    "JoinSpec",
    "ModelSpec",
    "MonitorSpec",
    "OutputsSpec",
    "Range",
    "StreamSpec",
    "SubscriptionSpec",
    "Threshold",
    "TimeSpec",
    "VolumeSpec",
    "WindowSpec",
    "format_loc",
    "load_spec",
    "parse_spec",
]
