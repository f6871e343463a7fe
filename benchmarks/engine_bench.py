"""Engine benchmark: records/s, latency and memory of the streamdq engine alone.

Records have 20 features (15 numeric, 5 categorical) plus an id and an ISO-8601
event time; the spec keeps every default check on (duplicates, schema, lateness,
freshness, quality ratios, drift with auto methods, multiple-testing control)
with a count window of 5,000 records and a 60 s event-time window.

Measured, in one process and run:

* batch path: ``Monitor.process`` on batches of 1,000 records, alone and with the
  decoding of the JSON-array message (orjson + envelope checks, as the worker does);
* columnar messages (``{"columns": {...}}``): decoding + engine;
* single records: ``Monitor.process_one`` per record (micro-batched internally), with the
  compiled kernels and on the pure-Python path (what an install without a C compiler runs);
* the yardstick: a plain River per-record pipeline (``Mean``, ``Var``,
  ``Quantile(0.5)`` per numeric feature) over the same records;
* resident memory after 1M and 5M records (must not grow with stream length).

Usage: ``python benchmarks/engine_bench.py [--records 5000000] [--out benchmarks/results/engine.json]``.
Writes JSON and a Markdown table next to it (``.md``). Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import monitor.columns as columns_module
from monitor.engine import Monitor
from monitor.records import decode_message
from monitor.reference import build_profile
from monitor.spec import MonitorSpec

NUMERIC = [f"n{i:02d}" for i in range(15)]
CATEGORICAL = [f"c{i}" for i in range(5)]
CATS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
BATCH = 1000
POOL = 100  # distinct batches generated once and cycled (ids and times re-stamped)


def spec() -> MonitorSpec:
    return MonitorSpec.model_validate({
        "version": 1, "name": "bench",
        "streams": [{
            "name": "bench",
            "windows": [{"name": "w5000", "kind": "count", "size": 5000},
                        {"name": "t60s", "kind": "time", "seconds": 60}],
            "features": [{"name": n, "type": "numeric", "range": {"min": -10, "max": 10}} for n in NUMERIC]
            + [{"name": c, "type": "categorical", "categories": CATS} for c in CATEGORICAL],
        }],
    })


def make_record(rng: random.Random) -> dict[str, Any]:
    rec: dict[str, Any] = {"record_id": 0, "event_time": ""}
    for n in NUMERIC:
        rec[n] = None if rng.random() < 0.01 else round(rng.gauss(0.0, 1.0), 4)
    for c in CATEGORICAL:
        rec[c] = CATS[min(int(rng.expovariate(0.7)), len(CATS) - 1)]
    return rec


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Stamper:
    """Gives every record a new id and an event time advancing 1 ms per record."""

    def __init__(self) -> None:
        self.n = 0
        self.t0 = 1_700_000_000.0

    def stamp(self, batch: list[dict[str, Any]]) -> None:
        for rec in batch:
            self.n += 1
            rec["record_id"] = self.n
            rec["event_time"] = datetime.fromtimestamp(self.t0 + self.n / 1000, tz=UTC).isoformat(
                timespec="milliseconds")


def river_yardstick(pool: list[list[dict[str, Any]]], n_records: int) -> dict[str, float]:
    from river import stats

    models = {n: (stats.Mean(), stats.Var(), stats.Quantile(0.5)) for n in NUMERIC}
    done, elapsed = 0, 0.0
    while done < n_records:
        batch = pool[(done // BATCH) % len(pool)]
        start = time.perf_counter()
        for rec in batch:
            for name, (mean, var, quant) in models.items():
                x = rec[name]
                if x is not None:
                    mean.update(x)
                    var.update(x)
                    quant.update(x)
        elapsed += time.perf_counter() - start
        done += len(batch)
    return {"records": done, "seconds": elapsed, "records_per_second": done / elapsed}


def run(n_records: int, out: Path) -> dict[str, Any]:
    # The same collector settings as a worker (agents.worker.tune_gc), so the figures match production.
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    rng = random.Random(42)
    pool = [[make_record(rng) for _ in range(BATCH)] for _ in range(POOL)]
    s = spec()
    stream = s.streams[0]
    stamper = Stamper()
    ref_records = [dict(r) for batch in pool[:20] for r in batch]
    stamper.stamp(ref_records)
    reference = build_profile(s.streams[0], lambda: ref_records, source={"kind": "benchmark"})
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "records_per_batch": BATCH, "features": {"numeric": len(NUMERIC), "categorical": len(CATEGORICAL)},
    }

    clock_now = [stamper.t0]

    def stamped_batches(n: int) -> Iterator[list[dict[str, Any]]]:
        """The pool's batches, cycled for ``n`` records, each given fresh ids and times (the engine clock follows)."""
        for start in range(0, n, BATCH):
            batch = pool[(start // BATCH) % POOL]
            stamper.stamp(batch)
            clock_now[0] = stamper.t0 + stamper.n / 1000
            yield batch

    # Batch path, engine alone and with the JSON parse of each batch message.
    engine = Monitor(s, references={"bench": reference}, clock=lambda: clock_now[0])
    engine_s = parse_s = 0.0
    latencies: list[float] = []
    memory: dict[str, int] = {}
    done = 0
    gc.collect()
    rss_start = rss_bytes()
    for batch in stamped_batches(n_records):
        message = orjson.dumps(batch)
        t0 = time.perf_counter()
        records, rejected = decode_message(message, stream)
        t1 = time.perf_counter()
        engine.process("bench", records)
        t2 = time.perf_counter()
        parse_s += t1 - t0
        engine_s += t2 - t1
        latencies.append(t2 - t1)
        done += BATCH
        if done in (1_000_000, 5_000_000) or done == n_records:
            memory[str(done)] = rss_bytes()
    lat = np.asarray(latencies) * 1000
    assert not rejected
    results["batch"] = {
        "records": done,
        "engine_records_per_second": done / engine_s,
        "engine_plus_parse_records_per_second": done / (engine_s + parse_s),
        "batch_latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                             "max": float(lat.max())},
        "rss_bytes_at_start": rss_start,
        "rss_bytes_after": memory,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }

    # Columnar messages ({"columns": {...}}): decode (orjson + envelope checks) + engine.
    n_col = min(n_records, 1_000_000)
    engine = Monitor(s, references={"bench": reference}, clock=lambda: clock_now[0])
    col_s, done = 0.0, 0
    for batch in stamped_batches(n_col):
        message = orjson.dumps({"columns": {k: [r[k] for r in batch] for k in batch[0]}})
        t0 = time.perf_counter()
        columns, rejected = decode_message(message, stream)
        engine.process("bench", columns)
        col_s += time.perf_counter() - t0
        done += BATCH
    assert not rejected
    results["columnar"] = {"records": done, "decode_plus_engine_records_per_second": done / col_s}

    def single_records(n: int) -> dict[str, float]:
        """Records/s of ``Monitor.process_one`` per record (micro-batched inside the engine) on a new engine."""
        engine = Monitor(s, references={"bench": reference}, clock=lambda: clock_now[0])
        seconds, done = 0.0, 0
        for batch in stamped_batches(n):
            t0 = time.perf_counter()
            for rec in batch:
                engine.process_one("bench", rec)
            seconds += time.perf_counter() - t0
            done += BATCH
        return {"records": done, "records_per_second": done / seconds}

    results["single"] = single_records(min(n_records, 500_000))
    # The same without the compiled kernels (monitor/_kernels.pyx): what an install without a C
    # compiler gets (monitor.columns falls back to its pure-Python path, with the same results).
    kernels, columns_module._kernels = columns_module._kernels, None
    try:
        results["single_pure_python"] = single_records(min(n_records, 200_000))
    finally:
        columns_module._kernels = kernels
    results["compiled_kernels"] = columns_module.compiled()
    results["river_yardstick"] = river_yardstick(pool, min(n_records, 200_000))
    river = results["river_yardstick"]["records_per_second"]
    results["single_vs_river"] = results["single"]["records_per_second"] / river

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    return results


def markdown(r: dict[str, Any]) -> str:
    b, mem = r["batch"], r["batch"]["rss_bytes_after"]
    rows = [
        ("engine, batches of 1,000 (column path)", f"{b['engine_records_per_second']:,.0f} records/s"),
        ("decode (orjson + envelope checks) + engine, JSON-array messages",
         f"{b['engine_plus_parse_records_per_second']:,.0f} records/s"),
        ("decode + engine, columnar messages (`{\"columns\": ...}`)",
         f"{r['columnar']['decode_plus_engine_records_per_second']:,.0f} records/s"),
        ("batch latency p50 / p99 / max", f"{b['batch_latency_ms']['p50']:.1f} / {b['batch_latency_ms']['p99']:.1f}"
                                          f" / {b['batch_latency_ms']['max']:.1f} ms"),
        ("engine, single records (process_one)", f"{r['single']['records_per_second']:,.0f} records/s"),
        ("engine, single records, pure-Python path (no compiled kernels)",
         f"{r['single_pure_python']['records_per_second']:,.0f} records/s"),
        ("River yardstick (Mean, Var, Quantile per numeric feature)",
         f"{r['river_yardstick']['records_per_second']:,.0f} records/s"),
        ("single records vs River yardstick", f"{r['single_vs_river']:.2f}x"),
        *[(f"resident memory after {int(k):,} records", f"{v / 2**20:.0f} MiB") for k, v in mem.items()],
        ("peak resident memory", f"{b['peak_rss_bytes'] / 2**20:.0f} MiB"),
    ]
    lines = [f"# Engine benchmark ({r['when']}, Python {r['machine']['python']}, {r['machine']['cpus']} CPUs)", "",
             "20 features (15 numeric, 5 categorical), every default check on, count window 5,000 + "
             "60 s event-time window. One core. Produced by `python benchmarks/engine_bench.py`. "
             + ("Compiled kernels (monitor/_kernels.pyx) in use, except on the pure-Python line."
                if r["compiled_kernels"] else "The compiled kernels were NOT built: all is the pure-Python path."),
             "",
             "| measure | value |", "|---|---|", *[f"| {a} | {v} |" for a, v in rows], ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=5_000_000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "engine.json")
    args = ap.parse_args()
    r = run(args.records, args.out)
    print(markdown(r))


if __name__ == "__main__":
    main()
