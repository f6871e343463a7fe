"""The report's reading of replay folders and its page, without a browser (tests/integration renders it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from agents.report import load_run, render_report
from monitor.errors import ConfigError
from monitor.spec import parse_spec


def _window(index: int, *, partial: bool = False) -> dict[str, object]:
    return {"name": "w10", "kind": "count", "index": index, "start": f"2024-01-01T00:00:{index:02d}.000Z",
            "end": f"2024-01-01T00:00:{index:02d}.900Z", "partial": partial}


def _write(folder: Path, windows: list[dict[str, object]], alerts: Sequence[dict[str, object]] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "windows.jsonl").write_bytes(b"".join(orjson.dumps(w) + b"\n" for w in windows))
    (folder / "alerts.jsonl").write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in alerts))
    return folder


def _lines(i: int) -> list[dict[str, object]]:
    base = {"schema_version": 1, "stream": "s", "window": _window(i), "count": 10, "reference_version": None}
    quality = {"feature": "x", "count": 10, "missing": i, "missing_ratio": i / 10, "type_violation_ratio": 0.0,
               "histogram": None, "histogram_labels": None}
    drift = {"psi": {"method": "psi", "statistic": 0.05 * i, "threshold": 0.1, "sample_size": 10,
                     "drifted": 0.05 * i >= 0.1, "p_value": None, "effect_size": None}}
    return [{**base, "feature": None, "records": {"duplicate_ratio": 0.0}, "alerts": [], "events": []},
            {**base, "feature": "x", "quality": quality, "drift": drift, "changes": [], "alerts": []}]


def test_a_folder_without_windows_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"holds no windows\.jsonl"):
        load_run(tmp_path)


def test_a_malformed_line_names_its_file_and_line(tmp_path: Path) -> None:
    folder = _write(tmp_path / "bt", _lines(0))
    with (folder / "windows.jsonl").open("ab") as fh:
        fh.write(b"{not json\n")
    with pytest.raises(ConfigError, match=r"windows\.jsonl: line 3 is not JSON"):
        load_run(folder)


def test_page_holds_one_plot_per_stream_and_feature_and_no_timeline_without_alerts(tmp_path: Path) -> None:
    folder = _write(tmp_path / "bt", [line for i in range(4) for line in _lines(i)])
    run = load_run(folder)
    assert run.stream_names() == ["s"] and run.feature_names("s") == ["x"] and len(run.features) == 4
    spec = parse_spec({"version": 1, "name": "t", "streams": [
        {"name": "s", "windows": [{"name": "w10", "kind": "count", "size": 10}],
         "features": [{"name": "x", "type": "numeric"}]}]})
    page = render_report(run, spec=spec)
    assert page.plots == ("stream-0", "feature-0-0")
    assert "No alert fired in this replay." in page.html
    assert page.html.count('class="plot"') == 2
    assert "missing_ratio 0.05" in page.html  # the spec's default warning level is drawn
    out = page.write(tmp_path / "r.html")
    assert out.read_text(encoding="utf-8") == page.html


def test_alert_events_make_the_timeline(tmp_path: Path) -> None:
    alert = {"schema_version": 1, "alert_id": "a", "fingerprint": "f1", "status": "firing", "severity": "warning",
             "stream": "s", "feature": "x", "check": "psi", "model": None, "value": 0.15, "threshold": 0.1,
             "sample_size": 10, "window": _window(3), "summary": "s.x drifted"}
    folder = _write(tmp_path / "bt", [line for i in range(4) for line in _lines(i)], [alert])
    page = render_report(load_run(folder))
    assert page.plots[0] == "alert-timeline"
    assert "s.x drifted" in page.html
