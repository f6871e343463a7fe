"""``streamdq report``: a replay's windows and alerts as one self-contained HTML page of plotly figures.

:func:`~agents.report.run.load_run` reads a replay's output directory, :func:`~agents.report.page.render_report`
draws it (reference vs current distributions, drift and quality ratios over windows with their thresholds,
the alert timeline, a model's realised and estimated performance). plotly is an optional extra
(``pip install 'streamdq[report]'``); importing this package needs it.
"""

from agents.report.page import RenderedReport, render_report
from agents.report.run import ReplayRun, load_run

__all__ = ["RenderedReport", "ReplayRun", "load_run", "render_report"]
