"""Progress of long commands (``reference build``, ``replay``) and consoles that do not wrap piped output.

On a terminal :class:`RecordProgress` draws a rich progress bar (records done of the total, percent,
records/s, elapsed, ETA) on stderr. When stderr is not a terminal (a log file, CI) it writes a plain
line at most every ``interval`` seconds and one at the end, never redrawn or wrapped; with ``json_lines``
it writes JSON lines to stdout instead (``{"event": "progress", ...}``) for scripts.

The total comes from :func:`count_records` (lines of a JSONL file, rows of a CSV or Parquet file), read
before the work starts; ``None`` (a Kafka topic range, an unknown format) shows count and rate without
a bar or ETA. A JSONL line holding an array (several records) can make the count pass the total: the
total is then dropped rather than shown wrong.

Examples
--------
>>> import io
>>> clock = iter([0.0, 1.0, 2.0, 3.0, 3.0]).__next__
>>> out = io.StringIO()
>>> with RecordProgress("replaying", total=3000, stream=out, interval=1.5, clock=clock) as progress:
...     progress(1000)
...     progress(2000)
...     progress(3000)
>>> print(out.getvalue(), end="")
replaying: 2,000 of 3,000 records (67%), 1,000 records/s, ETA 1s
replaying: 3,000 of 3,000 records (100%) in 3s, 1,000 records/s
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson
from rich.console import Console

__all__ = ["RecordProgress", "count_records", "out_console"]

_CHUNK = 1 << 20


def out_console(*, stderr: bool = False) -> Console:
    """A console for a command's output: on a terminal as wide as it is; piped (a log file), text is never
    wrapped and tables get 200 columns (not the 80 rich assumes without a terminal)."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, soft_wrap=True, width=200)


def count_records(path: str | Path) -> int | None:
    """Records in an input file as :func:`monitor.reference.read_records` reads it, without parsing: the
    lines of JSONL (one record each, usually), the rows of CSV (lines after the header; a quoted value spanning lines
    counts more) and Parquet (its metadata). ``None`` when unknown."""
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix in {".jsonl", ".ndjson", ".json", ".csv"}:
            lines = 0
            with open(p, "rb") as fh:
                last = b"\n"
                while chunk := fh.read(_CHUNK):
                    lines += chunk.count(b"\n")
                    last = chunk[-1:]
                if last != b"\n":
                    lines += 1  # a last line without its newline
            return max(lines - 1, 0) if suffix == ".csv" else lines
        if suffix in {".parquet", ".pq"}:
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(p).metadata.num_rows)
    except (OSError, ImportError, ValueError):
        return None
    return None


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class RecordProgress:
    """A progress callback (``progress(n)``: ``n`` records done so far) shown as a bar, plain lines or JSON
    lines; use as a context manager (the last line is written on exit).

    ``stream`` is where the plain lines go (default stderr; also decides "is this a terminal");
    ``json_lines`` writes JSON lines to ``json_stream`` (default stdout) instead. ``clock`` is monotonic
    seconds (tests pass a fake one).
    """

    def __init__(self, what: str, *, total: int | None, json_lines: bool = False, stream: IO[str] | None = None,
                 json_stream: IO[str] | None = None, interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.total = total if total else None
        self.json_lines = json_lines
        self.stream = stream if stream is not None else sys.stderr
        self.json_stream = json_stream if json_stream is not None else sys.stdout
        self.interval = interval
        self.clock = clock
        self.done = 0
        self._bar: Any = None
        self._task: Any = None
        self._start = 0.0
        self._last_line = 0.0

    def __enter__(self) -> RecordProgress:
        self._start = self._last_line = self.clock()
        if not self.json_lines and self.stream.isatty():
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(),
                TextColumn("{task.completed:,.0f}" + (" of {task.total:,.0f}" if self.total else "") + " records"),
                TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), console=Console(file=self.stream), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=self.total, rate="")
        return self

    def __call__(self, n: int) -> None:
        self.done = n
        if self.total is not None and n > self.total:
            self.total = None  # the count was lines, and lines held several records: no honest total left
        now = self.clock()
        if self._bar is not None:
            self._bar.update(self._task, completed=n, total=self.total, rate=f"{self._rate(now):,.0f} records/s")
            return
        if now - self._last_line >= self.interval and (self.total is None or n < self.total):  # else: the last line
            self._last_line = now
            self._emit(now, final=False)

    def finish(self, n: int) -> None:
        """The final count (the work calls back only every so many records): shown by the last line."""
        self.done = n
        if self.total is not None and n > self.total:
            self.total = None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        now = self.clock()
        if self._bar is not None:
            if exc_type is None:
                self._bar.update(self._task, completed=self.done, total=self.total or self.done or None,
                                 rate=f"{self._rate(now):,.0f} records/s")
            self._bar.stop()
            return
        if exc_type is None:
            self._emit(now, final=True)

    def _rate(self, now: float) -> float:
        elapsed = now - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def _emit(self, now: float, *, final: bool) -> None:
        rate = self._rate(now)
        total = self.total if self.total is not None else (self.done if final else None)
        eta = (total - self.done) / rate if total is not None and rate > 0 and not final else None
        if self.json_lines:
            doc = {"event": "progress", "what": self.what, "records": self.done, "total": total,
                   "elapsed_seconds": round(now - self._start, 3), "records_per_second": round(rate, 1),
                   "eta_seconds": None if eta is None else round(eta, 1), "done": final}
            self.json_stream.write(orjson.dumps(doc).decode() + "\n")
            self.json_stream.flush()
            return
        of = f" of {total:,}" if total is not None else ""
        pct = f" ({self.done / total:.0%})" if total else ""
        if final:
            took = _duration(now - self._start)
            line = f"{self.what}: {self.done:,}{of} records{pct} in {took}, {rate:,.0f} records/s"
        else:
            line = f"{self.what}: {self.done:,}{of} records{pct}, {rate:,.0f} records/s" + (
                f", ETA {_duration(eta)}" if eta is not None else "")
        self.stream.write(line + "\n")
        self.stream.flush()
