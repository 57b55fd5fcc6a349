"""What the committed dashboards and alerts ask Prometheus for."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# PromQL words that are not metric names.
_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "irate", "histogram_quantile",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "time", "label_values", "offset", "bool", "topk", "bottomk",
}  # fmt: skip


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in DASHBOARDS]


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def expressions() -> list[str]:
    """Every PromQL expression of every panel, variable and alert."""
    found = [
        target["expr"]
        for board in dashboards()
        for panel in board["panels"]
        for target in panel["targets"]
    ]
    found += [
        variable["query"]["query"]
        for board in dashboards()
        for variable in board["templating"]["list"]
        if variable["type"] == "query"
    ]
    return found + [rule["expr"] for rule in alert_rules()]


def metric_names(expression: str) -> set[str]:
    """The metric names an expression reads (label matchers, groupings, ranges and strings
    removed first)."""
    text = re.sub(r'"[^"]*"', "", expression)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    text = re.sub(r"label_values\(\s*([a-z_:][a-z0-9_:]*)\s*,[^)]*\)", r"\1", text)
    names = set(re.findall(r"\b[a-z_:][a-z0-9_:]*\b", text))
    return {n for n in names if n not in _WORDS and not re.fullmatch(r"\d.*", n)}
