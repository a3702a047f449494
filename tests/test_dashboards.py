"""Grafana dashboards (dj_observe.dashboards), their provisioning and the docker-compose stack."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import RECORDING_RULES

from dj_observe.dashboards import (
    DASHBOARDS,
    FLEET,
    GRID_COLUMNS,
    JOB_OVERVIEW,
    Dashboard,
    Panel,
    Target,
    all_queries,
    layout,
    main,
    render,
)
from dj_observe.runner.config import load_config

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "grafana" / "dashboards"
PROVISIONING = ROOT / "grafana" / "provisioning"
COMPOSE = ROOT / "docker-compose.yml"

PROMQL_WORDS = frozenset(
    re.findall(
        r"\w+",
        """
        sum min max avg count group stddev stdvar topk bottomk quantile count_values
        by without on ignoring group_left group_right bool offset and or unless
        abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month
        day_of_week days_in_month delta deriv exp floor histogram_quantile hour idelta
        increase irate label_join label_replace ln log2 log10 minute month predict_linear
        rate resets round scalar sgn sort sort_desc sqrt time timestamp vector year
        avg_over_time min_over_time max_over_time sum_over_time count_over_time
        quantile_over_time stddev_over_time stdvar_over_time last_over_time present_over_time
        """,
    )
)
"""PromQL's aggregations, keywords and functions: identifiers that are not metrics."""
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?")


def documented_metrics() -> dict[str, str]:
    """``{name: type}`` from the Metrics table of ``docs/metrics.md`` (rows starting ``| `dj_``)."""
    metrics = {}
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        if line.startswith("| `dj_"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            metrics[cells[0].strip("`")] = cells[1]
    return metrics


def metric_names(expr: str) -> set[str]:
    """Metric-looking identifiers of a PromQL expression, PromQL's own words left out."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    stripped = re.sub(r"\{[^}]*\}", "", stripped)  # label matchers
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)  # range selectors
    stripped = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", stripped)  # label lists
    return {name for name in IDENTIFIER.findall(stripped) if name not in PROMQL_WORDS}


def documented(name: str, metrics: dict[str, str]) -> bool:
    if name in metrics or name in RECORDING_RULES:
        return True
    return any(
        name.endswith(suffix) and metrics.get(name.removesuffix(suffix)) == "histogram"
        for suffix in HISTOGRAM_SUFFIXES
    )


def selectors(expr: str) -> list[tuple[str, str]]:
    """``(metric, "{matchers}")`` for every metric selector in ``expr``."""
    names = metric_names(expr)
    return [(m[1], m[2] or "") for m in SELECTOR.finditer(expr) if m[1] in names]


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d.uid)
def test_committed_json_equals_generated(dashboard: Dashboard, tmp_path: Path) -> None:
    """Regenerate into a temp dir with the module's CLI: the committed files must be identical."""
    assert main(["--out", str(tmp_path)]) == 0
    name = f"{dashboard.uid}.json"
    generated = (tmp_path / name).read_text()
    assert (COMMITTED / name).read_text() == generated, (
        f"grafana/dashboards/{name} is stale: run python -m dj_observe.dashboards"
    )
    assert generated.endswith("}\n")
    assert generated == json.dumps(json.loads(generated), indent=2, sort_keys=True) + "\n"


def test_no_stray_committed_dashboards() -> None:
    assert sorted(p.name for p in COMMITTED.glob("*.json")) == sorted(
        f"{d.uid}.json" for d in DASHBOARDS
    )


def test_module_entry_point(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dj_observe.dashboards", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dj-fleet.json", "dj-job-overview.json"]
    assert "dj-job-overview.json" in done.stdout


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d.uid)
def test_header(dashboard: Dashboard) -> None:
    data = render(dashboard)
    assert data["schemaVersion"] == 39
    assert data["uid"] == dashboard.uid in {"dj-job-overview", "dj-fleet"}
    assert data["title"] and data["panels"]


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d.uid)
def test_panel_ids_unique_and_every_target_has_a_query(dashboard: Dashboard) -> None:
    panels = render(dashboard)["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))


def test_duplicate_panel_ids_are_refused_at_build_time() -> None:
    panel = Panel(title="a", kind="stat", targets=(Target("vector(1)"),), id=1)
    with pytest.raises(ValueError, match="duplicate panel ids"):
        Dashboard(uid="x", title="x", panels=(panel, panel), variables=())


def test_panels_without_a_query_or_too_wide_are_refused() -> None:
    with pytest.raises(ValueError, match="no query"):
        Dashboard("x", "x", (Panel("a", "stat", (Target(" "),), id=1),), ())
    with pytest.raises(ValueError, match="does not fit"):
        Dashboard("x", "x", (Panel("a", "stat", (Target("1"),), width=25, id=1),), ())


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d.uid)
def test_grid_has_no_overlaps_and_fits_24_columns(dashboard: Dashboard) -> None:
    boxes = [panel["gridPos"] for panel in render(dashboard)["panels"]]
    for box in boxes:
        assert 0 < box["w"] <= GRID_COLUMNS
        assert box["x"] >= 0 and box["x"] + box["w"] <= GRID_COLUMNS
    for a, b in itertools.combinations(boxes, 2):
        apart = (
            a["x"] + a["w"] <= b["x"]
            or b["x"] + b["w"] <= a["x"]
            or a["y"] + a["h"] <= b["y"]
            or b["y"] + b["h"] <= a["y"]
        )
        assert apart, (a, b)


def test_layout_wraps_to_a_new_row_below_the_tallest() -> None:
    panels = [
        Panel("a", "stat", (Target("1"),), width=16, height=4, id=1),
        Panel("b", "stat", (Target("1"),), width=8, height=6, id=2),
        Panel("c", "stat", (Target("1"),), width=12, height=4, id=3),
    ]
    assert [(p["x"], p["y"]) for p in layout(panels)] == [(0, 0), (16, 0), (0, 6)]


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d.uid)
def test_every_metric_is_documented_or_a_recording_rule(dashboard: Dashboard) -> None:
    metrics = documented_metrics()
    assert "dj_op_duration_seconds" in metrics  # the table was parsed
    variables = [("variable " + v.name, v.query) for v in dashboard.variables if v.query]
    queries = [*all_queries(dashboard), *variables]
    for title, expr in queries:
        expr = re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", expr)  # its series selector
        unknown = {name for name in metric_names(expr) if not documented(name, metrics)}
        assert not unknown, f"{title}: {expr!r} uses {unknown}"


def test_job_overview_queries_filter_by_job_and_pipeline() -> None:
    for title, expr in all_queries(JOB_OVERVIEW):
        found = selectors(expr)
        assert found, f"{title}: no metric in {expr!r}"
        for name, matchers in found:
            assert 'job_id=~"$job_id"' in matchers, f"{title}: {name} unfiltered"
            assert 'pipeline=~"$pipeline"' in matchers, f"{title}: {name} unfiltered"


def test_fleet_queries_filter_by_pipeline() -> None:
    for title, expr in all_queries(FLEET):
        for name, matchers in selectors(expr):
            assert 'pipeline=~"$pipeline"' in matchers, f"{title}: {name} unfiltered"


def test_all_queries_keeps_template_variables() -> None:
    queries = all_queries(JOB_OVERVIEW)
    assert len(queries) == sum(len(p.targets) for p in JOB_OVERVIEW.panels)
    progress = 'dj_job:partition_progress:ratio{job_id=~"$job_id", pipeline=~"$pipeline"}'
    assert ("Progress", progress) in queries


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d.uid)
def test_variables_exist_and_datasource_is_the_variable(dashboard: Dashboard) -> None:
    data = render(dashboard)
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == "dj-prometheus"
    assert variables["pipeline"]["query"]["query"] == "label_values(dj_job_status, pipeline)"
    for _, expr in all_queries(dashboard):
        used = set(re.findall(r"\$(\w+)", expr))
        assert used <= set(variables), expr
    for panel in data["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_job_overview_variables() -> None:
    variables = {v["name"]: v for v in render(JOB_OVERVIEW)["templating"]["list"]}
    assert list(variables) == ["datasource", "pipeline", "job_id"]
    assert variables["job_id"]["query"]["query"] == (
        'label_values(dj_job_status{pipeline=~"$pipeline"}, job_id)'
    )


def test_exemplars_on_op_latency() -> None:
    data = render(JOB_OVERVIEW)
    latency = next(p for p in data["panels"] if p["title"].startswith("Op duration"))
    with_exemplars = [t for t in latency["targets"] if t["exemplar"]]
    assert len(with_exemplars) == 1
    # exemplars are stored on the raw histogram's series, not on a recorded quantile
    assert "dj_op_duration_seconds_bucket" in with_exemplars[0]["expr"]
    assert "0.95" in with_exemplars[0]["expr"]


def test_failed_partitions_table() -> None:
    data = render(JOB_OVERVIEW)
    table = next(p for p in data["panels"] if p["title"].startswith("Failed partitions ("))
    assert table["type"] == "table"
    (target,) = table["targets"]
    assert target["instant"] and target["format"] == "table"
    assert "dj_partition_failed_info" in target["expr"] and target["expr"].endswith("== 1")
    kept = table["transformations"][0]["options"]["include"]["names"]
    assert {"partition", "op", "error_type"} <= set(kept)


def test_queries_parse_with_promtool(tmp_path: Path) -> None:
    """Every panel and variable query, variables substituted, is valid PromQL for promtool."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    rules = []
    for dashboard in DASHBOARDS:
        for index, (_, expr) in enumerate(all_queries(dashboard)):
            concrete = expr.replace("$job_id", ".*").replace("$pipeline", ".*")
            rules.append(
                {"record": f"check:{dashboard.uid.replace('-', '_')}:{index}", "expr": concrete}
            )
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_datasource_provisioning() -> None:
    doc = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yml").read_text())
    sources = {source["uid"]: source for source in doc["datasources"]}
    prometheus, jaeger = sources["dj-prometheus"], sources["dj-jaeger"]
    assert prometheus["type"] == "prometheus" and prometheus["isDefault"] is True
    assert prometheus["url"] == "http://prometheus:9090"
    assert prometheus["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": "dj-jaeger"}
    ]
    assert jaeger["type"] == "jaeger" and jaeger["url"] == "http://jaeger:16686"


def test_dashboard_provisioning_loads_the_mounted_directory() -> None:
    doc = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path == "/var/lib/grafana/dashboards"
    grafana = compose()["services"]["grafana"]
    assert f"./grafana/dashboards:{path}:ro" in grafana["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]


def test_docker_compose_config_validates() -> None:
    """``docker-compose config -q`` (v1, the Debian package) accepts the file."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed (Debian package docker-compose)")
    done = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr


def test_compose_is_v1_compatible_and_complete() -> None:
    doc = compose()
    assert "name" not in doc
    assert set(doc["services"]) == {
        "prometheus",
        "alertmanager",
        "grafana",
        "jaeger",
        "pushgateway",
        "demo",
    }
    prometheus = doc["services"]["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert not any("lifecycle" in flag for flag in prometheus["command"])  # no remote shutdown
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert doc["services"]["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"


def test_every_published_port_binds_loopback() -> None:
    published = [
        (name, port)
        for name, service in compose()["services"].items()
        for port in service.get("ports", [])
    ]
    assert published
    for name, port in published:
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)
    jaeger = {port.split(":")[1] for name, port in published if name == "jaeger"}
    assert jaeger == {"16686", "4317", "4318"}


def test_demo_service_runs_the_job_then_serves() -> None:
    demo = compose()["services"]["demo"]
    script = demo["command"][-1]
    assert script.index("dj-observe run ") < script.index("dj-observe serve /app/outputs")
    assert "--host 0.0.0.0 --port 9465" in script
    assert (ROOT / "Dockerfile").is_file()


def test_demo_compose_config_is_demo_yaml_with_observability_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """demo.yaml sets metrics.port and tracing.exporter, which would override the stack's
    environment; demo-compose.yaml is the same job without them, so the env vars take effect."""
    demo = compose()["services"]["demo"]
    config_path = re.search(r"dj-observe run ([\w./-]+\.yaml)", demo["command"][-1]).group(1)
    ours = yaml.safe_load((ROOT / config_path).read_text())
    original = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    original.pop("observability")
    assert "observability" not in ours
    assert ours == original
    for key, value in demo["environment"].items():
        monkeypatch.setenv(key, str(value))
    config = load_config(str(ROOT / config_path))
    resolved = config.observability_config(Path("/app/outputs/demo/j"), "j")
    assert (resolved.metrics.host, resolved.metrics.port) == ("0.0.0.0", 9464)
    assert resolved.metrics.pushgateway == "http://pushgateway:9091"
    assert "otlp" in resolved.tracing.exporter
    assert resolved.tracing.endpoint == "http://jaeger:4318/v1/traces"


def test_grafana_lets_anonymous_visitors_view_only() -> None:
    environment = compose()["services"]["grafana"]["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert environment.get("GF_AUTH_DISABLE_LOGIN_FORM") != "true"  # admins can still log in


def test_the_demo_image_runs_as_an_unprivileged_user() -> None:
    lines = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [words[1] for words in lines if words and words[0] == "USER"]
    assert users and users[-1] not in ("root", "0")
