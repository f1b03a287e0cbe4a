"""What ships for operators is consistent with the catalogue: docs/observability.md's metric
table, configs/prometheus.yml, and every query of configs/grafana/linqra-dashboard.json names a
metric that exists (the catalogue's, or Ray's own; tests/test_prometheus.py runs each query on a
real Prometheus and checks the Ray names there)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from linqra.metrics import CATALOGUE
from linqra.metrics.catalogue import markdown_table

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "configs/grafana/linqra-dashboard.json"
RAY_METRICS = {"ray_node_cpu_utilization", "ray_node_mem_used"}
"""Ray's own metrics the dashboard shows (present on every node whose dashboard agent runs)."""
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset", "inf", "nan"}  # fmt: skip


def dashboard_queries(dashboard: dict[str, Any] | None = None) -> list[str]:
    """Every panel's PromQL, Grafana's variables replaced by values Prometheus accepts."""
    board = dashboard or json.loads(DASHBOARD.read_text())
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            queries.append(expr)
    return queries


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (histogram series under their own name)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)  # label matchers, ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if not call and word.lower() not in _KEYWORDS and not re.fullmatch(r"\d+e\d+", word):
            names.add(word)
    return names


def catalogue_series(name: str) -> bool:
    histograms = {n for n, i in CATALOGUE.items() if i.kind == "histogram"}
    base = re.sub(r"_(bucket|count|sum)$", "", name)
    return name in CATALOGUE or (base != name and base in histograms)


def test_the_metric_table_in_the_docs_is_the_catalogue() -> None:
    doc = (ROOT / "docs/observability.md").read_text()
    found = re.search(r"<!-- metrics:start -->\n(.*?)\n<!-- metrics:end -->", doc, re.S)
    assert found, "docs/observability.md lacks the metrics:start/end markers"
    assert found.group(1) == markdown_table(), (
        "regenerate the table: python -c 'from linqra.metrics.catalogue import markdown_table; "
        "print(markdown_table())'"
    )


def test_the_shipped_prometheus_config_names_rays_metrics_as_the_catalogue_does() -> None:
    config = yaml.safe_load((ROOT / "configs/prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["file_sd_configs"][0]["files"] == ["/tmp/ray/prom_metrics_service_discovery.json"]
    [rename] = job["metric_relabel_configs"]
    pattern = re.compile(rename["regex"])
    for name in CATALOGUE:
        exported = f"ray_{name}"  # how Ray exports it (actors/metrics.py)
        assert pattern.fullmatch(exported)
        assert pattern.sub(rename["replacement"].replace("$1", r"\1"), exported) == name


def test_every_dashboard_query_reads_metrics_that_exist() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 25
    read: set[str] = set()
    for expr in queries:
        names = metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        unknown = {n for n in names if not catalogue_series(n) and n not in RAY_METRICS}
        assert not unknown, f"{expr!r} reads {sorted(unknown)}: not in the catalogue nor Ray's"
        read |= {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}
    assert set(CATALOGUE) <= read, f"no panel shows {sorted(set(CATALOGUE) - read)}"


def test_the_query_parser_finds_the_metrics_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, model) (rate(linqra_x_bucket{a="b c"}[1m]))) '
        "/ ignoring(le) group_left sum(increase(linqra_y_total[1h])) / 1e9 > bool 0"
    )
    assert metric_names(expr) == {"linqra_x_bucket", "linqra_y_total"}
