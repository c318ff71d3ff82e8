"""docs/grafana/bridge.json queries only metrics bridge declares (bridge/metrics.py), and
shows every one; docs/operations.md's "Metrics" table lists exactly the declared metrics,
with their type and labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bridge.metrics import Spec, declared

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "bridge.json"
OPERATIONS = ROOT / "docs" / "operations.md"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# PromQL words that are neither functions nor metrics
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
            "or", "unless", "offset", "inf", "nan"}  # fmt: skip


def metric_names(expr: str, histograms: set[str]) -> set[str]:
    """The metrics an expression reads: strings, label matchers, ranges, grouping
    clauses and function names removed; a histogram's `_bucket`/`_sum`/`_count` series
    named by the histogram."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings (label values, regexes)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, [5m] or [$__rate_interval]
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # grouping clauses: label names
    names = set()
    for match in re.finditer(r"(?<![\w$.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in histograms:
                name = name.removesuffix(suffix)
        names.add(name)
    return names


def specs() -> dict[str, Spec]:
    return {spec.name: spec for spec in declared()}


def histograms() -> set[str]:
    return {name for name, spec in specs().items() if spec.kind == "histogram"}


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [
        target["expr"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def test_the_extractor_strips_functions_matchers_and_histogram_suffixes():
    expr = (
        "histogram_quantile(0.99, sum by (le, origin) (rate(bridge_apply_lag_seconds_bucket"
        '{instance=~"$instance",outcome="x"}[$__rate_interval]))) / on(instance) '
        "bridge_other_count + bridge_apply_lag_seconds_sum"
    )
    assert metric_names(expr, {"bridge_apply_lag_seconds"}) == {
        "bridge_apply_lag_seconds",
        "bridge_other_count",  # not a histogram: its name as it is
    }


def test_declared_metrics_follow_the_conventions():
    found = specs()
    assert len(found) == len(declared())  # no name twice
    for name, spec in found.items():
        assert name.startswith("bridge_"), name
        assert name.endswith("_total") == (spec.kind == "counter"), name
    assert {"bridge_apply_lag_seconds", "bridge_echo_round_trip_seconds"} <= histograms()


def test_dashboard_queries_only_declared_metrics_and_shows_them_all():
    board = json.loads(DASHBOARD.read_text())
    names = {"site", "instance"} & {v["name"] for v in board["templating"]["list"]}
    assert names == {"site", "instance"}
    exprs = dashboard_exprs()
    assert exprs
    used: set[str] = set()
    for expr in exprs:
        found = metric_names(expr, histograms())
        assert found, f"no metric in {expr!r}"
        unknown = found - set(specs())
        assert not unknown, f"{expr!r} reads metrics bridge does not declare: {unknown}"
        used |= found
    assert set(specs()) - used == set(), "declared metrics the dashboard does not show"


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    text = OPERATIONS.read_text()
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`bridge_"):
            labels = tuple(re.findall(r"`(\w+)`", cells[2]))
            rows[cells[0].strip("`")] = (cells[1], labels)
    return rows


def test_operations_documents_exactly_the_declared_metrics():
    docs = documented()
    declared_rows = {name: (s.kind, s.labels) for name, s in specs().items()}
    assert set(docs) - set(declared_rows) == set(), "documented, not declared"
    assert set(declared_rows) - set(docs) == set(), "declared, not documented"
    assert docs == declared_rows  # type and labels


def test_every_metric_named_in_the_docs_exists() -> None:
    """A `bridge_...` name in the docs that is not one of bridge's tables, functions or
    other names in its code or templates must be a declared metric (a histogram's series
    by its histogram): a runbook pointing at a misspelled metric is caught here."""
    known = {spec.name for spec in declared()}
    code = " ".join(
        p.read_text()
        for folder in ("bridge", "sql_templates")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and p.suffix in (".py", ".j2") and p.name != "metrics.py"
    )
    wrong = set()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for name in re.findall(r"\bbridge_[a-z0-9_]+", doc.read_text()):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name not in known and base not in known and name not in code:
                wrong.add(f"{doc.name}: {name}")
    assert sorted(wrong) == []
