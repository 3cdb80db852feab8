"""``deploy/grafana/ksaga.json`` queries only metrics a replica exports, and shows all of them.

Every ``ksaga_*`` series a panel or variable queries must come from a family that
``orchestrator.metrics.Metrics`` registers (with the sample suffixes prometheus-client adds),
or from ``COMING``: the families another piece of work is adding (step latency, saga duration,
consumer lag, timers pending). Once those are registered the list can shrink; a name in neither
place is a dashboard panel that would stay empty forever. Label names used in selectors and
``by (...)`` must be the metric's own or ones Prometheus attaches to every scraped series.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from orchestrator.metrics import Metrics
from tests.deploy.conftest import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "ksaga.json"

# Families announced but not yet registered by orchestrator/metrics.py: name -> type.
COMING = {
    "ksaga_step_latency_seconds": "histogram",
    "ksaga_saga_duration_seconds": "histogram",
    "ksaga_consumer_lag": "gauge",
    "ksaga_timers_pending": "gauge",
}
# Labels a Kubernetes scrape (pod or service discovery) adds to every series, and `le`.
TARGET_LABELS = frozenset({"namespace", "pod", "instance", "job", "container", "le"})
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gauge": ("",),
}
METRIC = re.compile(r"\bksaga_[a-z0-9_]+\b")
SELECTOR = re.compile(r"\b(ksaga_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def registered() -> dict[str, tuple[str, frozenset[str]]]:
    """Family name -> (type, label names) of everything Metrics() registers."""
    families: dict[str, tuple[str, frozenset[str]]] = {}
    for value in vars(Metrics()).values():
        if isinstance(value, MetricWrapperBase):
            labels: tuple[str, ...] = value._labelnames  # no public accessor in prometheus-client
            families[value._name] = (str(value._type), frozenset(labels))
    return families


def series_names(families: dict[str, str]) -> dict[str, str]:
    """Sample name -> family name."""
    return {name + s: name for name, kind in families.items() for s in SUFFIXES[kind]}


def queries(node: Any) -> Iterator[str]:
    """Every PromQL expression in panels (rows included) and variable queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, dict) and "query" in value:
                yield value["query"]
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from queries(item)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_every_queried_metric_is_registered_or_coming(dashboard: dict[str, Any]) -> None:
    ours = registered()
    known = series_names({**COMING, **{n: kind for n, (kind, _) in ours.items()}})
    used = {m for expr in queries(dashboard) for m in METRIC.findall(expr)}
    assert used, "the dashboard queries nothing"
    assert used - set(known) == set(), "queried but exported by nobody"
    families = {known[m] for m in used}
    assert set(ours) - families == set(), "registered metrics without a panel"
    assert set(COMING) - families == set(), "announced metrics without a panel"


def test_label_names_exist_on_the_metrics_they_filter(dashboard: dict[str, Any]) -> None:
    ours = registered()
    known = series_names({**COMING, **{n: kind for n, (kind, _) in ours.items()}})

    def labels_of(series: str) -> frozenset[str]:
        family = known[series]
        own = ours[family][1] if family in ours else frozenset()  # coming: target labels only
        return own | TARGET_LABELS

    for expr in queries(dashboard):
        for series, matchers in SELECTOR.findall(expr):
            assert set(MATCHER.findall(matchers)) <= labels_of(series), expr
        allowed = frozenset().union(*(labels_of(s) for s in METRIC.findall(expr)))
        for group in GROUPING.findall(expr):
            names = {n.strip() for n in group.split(",") if n.strip()}
            assert names <= allowed, expr


def test_the_dashboard_is_well_formed(dashboard: dict[str, Any]) -> None:
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "namespace", "pod"}
    for panel in panels:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in panel["targets"]]
        assert refs
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert '{namespace=~"$namespace", pod=~"$pod"' in target["expr"], panel["title"]
