"""``streamdq report``: a replay's windows and alerts as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from agents.cli.errors import friendly
from monitor.errors import ConfigError

__all__ = ["report"]


@click.command("report")
@click.argument("directories", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
              help="The replayed spec: its thresholds are drawn and its reference profiles give the reference "
                   "distributions (without it: the windows and alerts only).")
@click.option("-o", "--out", default="report.html", show_default=True, type=click.Path(dir_okay=False),
              help="HTML file to write.")
@click.option("--window", default=None, help="Window spec drawn over time (default: each stream's first).")
@click.option("--title", default=None, help="Page title (default: 'streamdq report: <spec name>').")
@friendly
def report(directories: tuple[str, ...], spec_path: str | None, out: str, window: str | None,
           title: str | None) -> None:
    """Write an HTML report of one or more replay output folders (streamdq replay --out DIR): per feature
    the reference and current distributions, drift and quality ratios over windows with their thresholds;
    records per window; the alert timeline; a model's realised and estimated performance.

    The page is self-contained (plotly.js inlined: opens offline, attaches to a ticket)."""
    try:
        from agents.report import load_run, render_report
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] != "plotly":
            raise
        raise ConfigError("streamdq report needs plotly: pip install 'streamdq[report]'") from None
    from monitor.reference import ReferenceProfile
    from monitor.spec import MonitorSpec, load_spec

    run = load_run(*directories)
    spec: MonitorSpec | None = None
    references: dict[str, ReferenceProfile] = {}
    notes: list[str] = []
    if spec_path is not None:
        spec = load_spec(spec_path)
        for st in spec.streams:
            if st.name not in run.stream_names() or st.reference is None:
                continue
            if not Path(st.reference).is_file():
                notes.append(f"stream {st.name!r}: reference profile {st.reference} not found; "
                             "its reference distributions are left out")
                continue
            references[st.name] = ReferenceProfile.load(st.reference)
    page = render_report(run, spec=spec, references=references, window=window, title=title)
    for note in notes:
        click.secho(f"note: {note}", fg="yellow", err=True)
    path = page.write(out)
    click.secho(f"wrote {path}: {len(page.plots)} plots, {len(run.alerts)} alert events, "
                f"{len(run.streams)} stream windows ({len(page.html) / 1e6:.1f} MB, self-contained)", fg="green")
