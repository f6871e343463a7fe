"""Evaluation of a closed window: drift (method choice, statistics, multiple-testing control) and the
threshold rules that turn a window's results into observations and alerts, for feature and model windows."""

from monitor.evaluation.drift import evaluate_drift
from monitor.evaluation.model import observe_model_window
from monitor.evaluation.rules import evaluate_window, observe_window

__all__ = ["evaluate_drift", "evaluate_window", "observe_model_window", "observe_window"]
