"""The Grafana dashboard queries only metrics (and labels) that some process of the system exports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "tryon-dashboard.json"
_METRIC = re.compile(r"\btryon_[a-z0-9_]+")
_BY = re.compile(r"\bby \(([^)]*)\)")
_MATCHER = re.compile(r"\{([^}]*)\}")
#: Labels Prometheus adds at scrape time (and the histogram bucket label).
SCRAPE_LABELS = {"instance", "job", "le"}


#: Collects (in a fresh interpreter: the worker's metrics live in the global, multiprocess registry) the
#: metric families of every kind of process: stage servers, gateway, worker -> {sample name: label names}.
_COLLECT = """
import json
from orchestrator import metrics as worker_metrics
from prometheus_client import REGISTRY
from gateway.metrics import GatewayMetrics
from tryon.runtime.metrics import StageMetrics

worker_metrics.metrics()
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
names = {}
for registry in (StageMetrics("segmentation").registry, GatewayMetrics().registry, REGISTRY):
    for collector in list(registry._collector_to_names):
        labels = list(getattr(collector, "_labelnames", ()))
        describe = getattr(collector, "describe", None)  # platform collectors have none
        for family in describe() if describe else ():
            for suffix in SUFFIXES.get(family.type, ("",)):
                names.setdefault(family.name + suffix, []).extend(labels)
print(json.dumps(names))
"""


@cache
def exported() -> dict[str, set[str]]:
    """Sample name -> label names, over every process's registry."""
    out = subprocess.run([sys.executable, "-c", _COLLECT], capture_output=True, text=True, check=True).stdout
    return {name: set(labels) for name, labels in json.loads(out).items()}


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_every_queried_metric_is_exported() -> None:
    available = exported()
    queried = {name for expr in expressions() for name in _METRIC.findall(expr)}
    assert queried, "the dashboard queries no tryon metric"
    missing = sorted(queried - set(available))
    assert not missing, f"queried but exported by no process: {missing}"


def test_every_grouping_and_matcher_label_exists() -> None:
    available = exported()
    for expr in expressions():
        labels = set().union(*(available[name] for name in _METRIC.findall(expr))) | SCRAPE_LABELS
        used = {label.strip() for group in _BY.findall(expr) for label in group.split(",") if label.strip()}
        used |= {re.split(r"[!=~]", matcher)[0].strip() for group in _MATCHER.findall(expr)
                 for matcher in group.split(",") if matcher.strip()}  # fmt: skip
        assert used <= labels, f"{expr}: labels {sorted(used - labels)} are not on its metrics"


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and dashboard["title"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"], panel["title"]
