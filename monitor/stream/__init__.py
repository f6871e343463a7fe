"""The feature stage: per stream, windows of mergeable quality and drift states, evaluated when they close."""

from monitor.stream.engine import EVENT_CLOCK, MICRO_BATCH, SNAPSHOT_VERSION, FeatureEngine

__all__ = ["EVENT_CLOCK", "MICRO_BATCH", "SNAPSHOT_VERSION", "FeatureEngine"]
