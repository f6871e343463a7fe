"""``streamdq worker SPEC``: load the spec and references, create topics, run Faust."""

from __future__ import annotations

import atexit
import gc
import logging
from pathlib import Path

import faust

from agents.kafka.topics import changelog_topics, ensure_topics, internal_topics, spec_topics
from agents.settings import Settings
from agents.worker.app import create_app
from monitor.columns import compiled
from monitor.errors import ConfigError
from monitor.reference import load_references
from monitor.spec import load_spec

__all__ = ["GC_THRESHOLD", "run_worker", "tune_gc"]


#: Generation-0 threshold of the garbage collector in workers (CPython's default is 700). Every
#: decoded record allocates ~25 objects, so the default runs a collection every ~30 records;
#: this value keeps collections rare without letting garbage grow unbounded.
GC_THRESHOLD = (100_000, 50, 100)


def tune_gc() -> None:
    """Move start-up objects out of the collector's view and raise the gen-0 threshold.

    Frozen objects are never collected, not even when the interpreter exits, so they are
    unfrozen at exit: the engine built at start-up (the app, agents and context refer to one
    another, a cycle) holds DataSketches HLL sketches, and a sketch still alive when its
    extension module is torn down makes nanobind print "leaked N instances" and a line for
    each of the module's ~600 types and functions.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    atexit.register(_release_frozen)


def _release_frozen() -> None:
    """At exit (before modules are torn down): hand the frozen objects back to the collector, collect."""
    gc.unfreeze()
    gc.collect()


def run_worker(spec_path: str | Path, settings: Settings) -> None:
    """Run one worker until SIGINT/SIGTERM. Does not return normally (Faust exits)."""
    spec = load_spec(spec_path)
    references = load_references(spec)
    if not settings.bootstrap:
        raise ConfigError("no Kafka cluster: set KAFKA_BOOTSTRAP or pass --bootstrap "
                          "(or run `streamdq kafka start` for a local one)")
    log = logging.getLogger("streamdq.topics").info
    ensure_topics(settings.bootstrap, spec_topics(spec), log=log, security=settings.kafka)
    ensure_topics(settings.bootstrap, changelog_topics(spec), log=log, compacted=True, security=settings.kafka)
    ensure_topics(settings.bootstrap, internal_topics(spec), log=log, security=settings.kafka)
    app, ctx = create_app(spec, settings, references=references)
    ctx.notifier.check_secrets()  # a missing secret is a configuration error (exit 2), found before consuming
    if not compiled():
        logging.getLogger("streamdq.worker").warning(
            "the engine's compiled kernels (monitor/_kernels.pyx) are not built: running the pure-Python "
            "path (same results, slower); reinstall with a C compiler present to build them")
    tune_gc()
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
