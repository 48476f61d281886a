"""docs/OPERATIONS.md's alert rules and the Grafana dashboard: they parse, and every metric they
name is one the logger or the board exports (so a renamed metric cannot leave a dead alert)."""

from __future__ import annotations

import json
import queue
import re
import threading
from pathlib import Path

import yaml

from broker.board.live import SiteState
from broker.board.metrics import BoardMetrics
from broker.logger.metrics import LoggerMetrics
from broker.ops.metrics import CertExpiry, PkiExpiry

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "OPERATIONS.md"
DASHBOARD = ROOT / "docs" / "grafana" / "roomctl-dashboard.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported_names() -> set[str]:
    logger = LoggerMetrics("s1", queue.Queue(), threading.Event(), threading.Event())
    board = BoardMetrics("s1", SiteState("s1"), lambda: 0, lambda: True)
    names: set[str] = set()
    for registry in (logger.registry, board.registry):
        for family in registry.collect():
            names.update(family.name + s for s in _SUFFIXES.get(family.type, ("",)))
    for collector in (CertExpiry("s1", []), PkiExpiry("s1", Path("/nonexistent"))):
        names.update(family.name for family in collector.collect())
    return names


def named_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\broomctl_[a-z0-9_]+", expr))


def alert_rules() -> list[dict[str, object]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    (rules_block,) = [b for b in blocks if b.startswith("groups:")]
    doc = yaml.safe_load(rules_block)
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_alert_rules_parse_and_name_exported_metrics() -> None:
    rules = alert_rules()
    known = exported_names()
    names = {str(r["alert"]) for r in rules}
    # what a clinic should start with (issue 19)
    assert {"RoomOffline", "MonitorSilentDuringSession", "LoggerLag", "QuarantineRate",
            "CertificateExpiry"} <= names  # fmt: skip
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("critical", "warning")  # type: ignore[index]
        assert "summary" in rule["annotations"]  # type: ignore[operator]
        used = named_metrics(str(rule["expr"]))
        assert used, rule
        assert used <= known, (rule["alert"], used - known)


def test_grafana_dashboard_is_json_with_known_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    known = exported_names()
    panels = dashboard["panels"]
    assert dashboard["uid"] and dashboard["title"] and panels
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        for target in panel["targets"]:
            used = named_metrics(target["expr"])
            assert used and used <= known, (panel["title"], used - known)
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"


def test_every_exported_metric_is_documented() -> None:
    text = DOC.read_text()
    for name in exported_names():
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        assert base in text or name in text, name
