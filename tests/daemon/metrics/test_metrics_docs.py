"""Every metric is documented, and the example dashboard and alert rules use exactly the
endpoint's names (issue 14 item 8): checked against a live endpoint over a real socket."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from daemon.metrics.prometheus import Metrics

REPO = Path(__file__).resolve().parents[3]
NAME = re.compile(r"\bcarbond_[a-z0-9_]+")


@pytest.fixture(scope="module")
def families() -> list[Metric]:
    """The metric families of a live endpoint after one of each observation, so every
    labelled family has a sample."""
    now = datetime(2026, 3, 2, tzinfo=UTC)
    with Metrics(clock=lambda: now) as metrics:
        port = metrics.start(0)
        metrics.observe_queue({"queued": 1})
        metrics.observe_past_deadline(1)
        metrics.observe_decision("carbon-window", "start", 1.0, 2.0)
        metrics.observe_outcome("a", "succeeded", 1.0, 3600.0)
        metrics.observe_intensity("CA-QC", 31.0, 60.0)
        metrics.observe_source("chain")
        metrics.observe_step("plan", 0.1, failed=True)
        metrics.observe_totals({"jobs": 1, "energy_j": 10.0, "measured_energy_j": 5.0,
                                "total_g": 1.0, "saved_g": 0.5})  # fmt: skip
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=(3, 10)).text
    return list(text_string_to_metric_families(text))


def _documented(families: list[Metric]) -> dict[str, tuple[str, set[str]]]:
    """Each metric by its name as documented (counters with ``_total``; not prometheus_client's
    ``_created`` times): (type, label names)."""
    found = {}
    for family in families:
        if family.name.endswith("_created"):
            continue
        counter = family.type == "counter" and not family.name.endswith("_total")
        labels = {label for s in family.samples for label in s.labels} - {"quantile"}
        found[family.name + "_total" if counter else family.name] = (family.type, labels)
    return found


@pytest.fixture(scope="module")
def endpoint(families: list[Metric]) -> tuple[set[str], set[str]]:
    """(sample names, metric names as documented)."""
    return {s.name for f in families for s in f.samples}, set(_documented(families))


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((REPO / "examples/grafana/carbond-dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _rule_exprs(rules: str) -> list[str]:
    """Each rule's ``expr``: inline, or a block scalar (``>-``: its more-indented lines)."""
    block = r"^( +)expr: >-\n((?:\1 +\S.*\n)+)"
    folded = [" ".join(m.group(2).split()) for m in re.finditer(block, rules, re.M)]
    inline = re.findall(r"^ +expr: (?!>-$)(.+)$", rules, re.M)
    return folded + inline


def test_every_metric_is_documented_and_nothing_else(endpoint: tuple[set[str], set[str]]) -> None:
    _, names = endpoint
    page = (REPO / "docs/metrics.md").read_text()
    table = {m.group(1) for m in re.finditer(r"^\| `(carbond_[a-z0-9_]+)`", page, re.M)}
    assert table == names


def test_the_dashboard_uses_exactly_the_endpoint_names(endpoint: tuple[set[str], set[str]]) -> None:
    """... and has a panel for every metric (``carbond_intensity_rung`` had none: an operator
    could not see a zone fall back to its static average)."""
    samples, names = endpoint
    used = {n for expr in _dashboard_exprs() for n in NAME.findall(expr)}
    assert used and used <= samples, sorted(used - samples)
    bases = {n.removesuffix("_sum").removesuffix("_count") for n in used}
    assert bases >= {"carbond_ledger_emissions_grams", "carbond_ledger_saved_grams",
                     "carbond_intensity_age_seconds"}  # fmt: skip
    assert names - bases == set(), "metrics without a panel"


def test_the_alert_rules_use_endpoint_names(endpoint: tuple[set[str], set[str]]) -> None:
    samples, _ = endpoint
    rules = (REPO / "examples/prometheus/carbond-alerts.yml").read_text()
    exprs = _rule_exprs(rules)
    assert all(NAME.search(e) for e in exprs), exprs
    alerts = re.findall(r"^\s+- alert: (\w+)$", rules, re.M)
    assert {"CarbondDown", "CarbondSignalStale", "CarbondDeadlineMissed"} <= set(alerts)
    used = {n for expr in exprs for n in NAME.findall(expr)}
    assert used and used <= samples, sorted(used - samples)


def test_every_metric_s_type_and_labels_are_the_documented_ones(families: list[Metric]) -> None:
    """The table's Type and Labels columns: a relabelled family (``zone`` to ``region``) or a
    gauge turned counter must change the page that alert rules are written from."""
    page = (REPO / "docs/metrics.md").read_text()
    rows = re.findall(r"^\| `(carbond_[a-z0-9_]+)` \| (\w+) \|([^|]*)\|", page, re.M)
    documented = {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}
    assert len(documented) == len(rows) > 15
    assert documented == _documented(families)


def test_the_alert_table_shows_each_rule_as_the_file_has_it() -> None:
    """docs/metrics.md's table of the example alerts: the same alerts, each with the file's
    expression and ``for`` (``5m`` as ``for 5 min``), so what an operator reads is what fires."""
    rules = (REPO / "examples/prometheus/carbond-alerts.yml").read_text()
    in_file = {}
    for chunk in re.split(r"^\s+- alert: ", rules, flags=re.M)[1:]:
        name = chunk.split("\n", 1)[0].strip()
        (expr,) = _rule_exprs(chunk)
        wait = re.search(r"^\s+for: (\d+)m$", chunk, re.M)
        in_file[name] = (" ".join(expr.split()), f"{wait.group(1)} min" if wait else None)
    page = (REPO / "docs/metrics.md").read_text()
    rows = re.findall(r"^\| `(Carbond\w+)` \| `(.+?)`(?: for (\d+ min))? \|", page, re.M)
    assert {name: (" ".join(expr.split()), wait or None) for name, expr, wait in rows} == in_file
    assert len(in_file) >= 5
