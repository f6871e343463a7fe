"""What runs around a worker, generated from the monitor spec: Prometheus rules and the Grafana dashboard."""

from agents.ops.dashboard import dashboard_document, render_dashboard
from agents.ops.rules import RULE_GROUPS, render_rules, rules_document

__all__ = ["RULE_GROUPS", "dashboard_document", "render_dashboard", "render_rules", "rules_document"]
