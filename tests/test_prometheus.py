"""The Prometheus assets in ``prometheus/``: conventions, promtool, and a real Prometheus.

The live tests run two real jobs with the reference executor on Ray (one completes, one has a
failed partition), serve them with ``dj-observe serve``'s exporter (the failed job's events
appended while Prometheus scrapes every second), start a real ``prometheus`` on loopback
loading the repository's rule files, and then query recording rules, alerts and every Grafana
panel's query through the HTTP API.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import RECORDING_RULES

from dj_observe.runner.config import parse_config
from dj_observe.runner.executor import FAIL_ENV, run_job
from dj_observe.serve import JobsExporter
from dj_observe.synthetic import DEFAULT_OPS

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
DASHBOARDS = REPO / "grafana" / "dashboards"
REPO_URL = "https://github.com/dj-observe/dj-observe/blob/main/"
RUNBOOKS_URL = REPO_URL + "docs/runbooks.md"

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package prometheus)"
)


WAIT = 60.0
"""Upper bound of every wait on a process or endpoint."""
POLL = 0.25

FAILED_JOB = "live_failed"
COMPLETED_JOB = "live_completed"
PIPELINE = "demo"
FAILED_PARTITION, FAILED_OP_INDEX = 2, 3


def rules(kind: str) -> list[dict[str, Any]]:
    """Every rule of ``kind`` ("alert" or "record") in the rule files."""
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [rule for rule in group["rules"] if kind in rule]
    return found


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=WAIT,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"


# -------------------------------------------------------------------- conventions, no binaries


def test_recording_rules_are_the_ones_the_dashboards_use() -> None:
    assert {rule["record"] for rule in rules("record")} == RECORDING_RULES


def test_alerts_follow_the_mixin_conventions() -> None:
    """CamelCase with the Dj prefix, a severity, summary, description and a runbook."""
    alerts = rules("alert")
    assert len(alerts) == 7
    for rule in alerts:
        name = rule["alert"]
        assert re.fullmatch(r"Dj(?:[A-Z][a-z0-9]+)+", name), name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
        assert rule["annotations"]["runbook_url"] == f"{RUNBOOKS_URL}#runbook-{name.lower()}"


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    cases: dict[str, set[bool]] = {}
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    for rule in rules("alert"):
        assert cases.get(rule["alert"]) == {True, False}, rule["alert"]


# -------------------------------------------------------------------- promtool


@needs_promtool
def test_prometheus_config_is_valid() -> None:
    assert_ok(promtool("check", "config", str(CONFIG.relative_to(REPO))))


@needs_promtool
def test_rule_files_are_valid() -> None:
    assert_ok(promtool("check", "rules", *(str(p.relative_to(REPO)) for p in RULE_FILES)))


@needs_promtool
def test_rule_unit_tests_pass() -> None:
    """``promtool test rules``; rule_files in the tests are relative to the test files."""
    assert RULE_TESTS
    result = promtool("test", "rules", *(str(p.relative_to(REPO)) for p in RULE_TESTS))
    assert_ok(result)
    assert "FAILED" not in result.stdout + result.stderr


# -------------------------------------------------------------------- a real Prometheus


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError) as exc:  # not up yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(POLL)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def run_real_job(staging: Path, job_id: str, rows: int, fail: str | None = None) -> Path:
    """A job run by the reference executor on Ray (``fail``: ``DJ_OBSERVE_FAIL``)."""
    config = parse_config(
        {
            "project_name": PIPELINE,
            "dataset_path": f"demo://{rows}",
            "partition": {"size": 500},
            "export_path": str(staging / job_id / "result.jsonl"),
            "work_dir": str(staging),
            "on_partition_failure": "continue",
            "process": [
                {name: {"min_len": 5} if name == "text_length_filter" else {}}
                for name in DEFAULT_OPS
            ],
        }
    )
    previous = os.environ.pop(FAIL_ENV, None)
    if fail:
        os.environ[FAIL_ENV] = fail
    try:
        return run_job(config, job_id=job_id).job_dir
    finally:
        os.environ.pop(FAIL_ENV, None)
        if previous is not None:
            os.environ[FAIL_ENV] = previous


def write_jobs(root: Path, staging: Path) -> tuple[Path, list[bytes]]:
    """A completed job, and a job with a failed partition whose events are still to come.

    Both are real runs of the reference executor (``dj-observe run``) on Ray. Returns the
    failed job's directory under ``root``, holding only its first event, and the rest of
    its event lines in the order they are to be appended, as if it were running.
    """
    completed = run_real_job(staging, COMPLETED_JOB, rows=2000)
    shutil.copytree(completed, root / COMPLETED_JOB)
    failed = run_real_job(
        staging, FAILED_JOB, rows=3000, fail=f"{FAILED_PARTITION}:{FAILED_OP_INDEX}"
    )
    lines = (failed / "events.jsonl").read_bytes().splitlines(keepends=True)
    assert json.loads(lines[0])["event_type"] == "job_start"
    job_dir = shutil.copytree(failed, root / FAILED_JOB)
    (job_dir / "events.jsonl").write_bytes(lines[0])
    return job_dir, lines[1:]


def feed(job_dir: Path, lines: list[bytes], batches: int = 12, pause: float = 0.4) -> None:
    """Append ``lines`` to the job's log in ``batches`` whole-line writes, like a running job."""
    size = math.ceil(len(lines) / batches)
    with (job_dir / "events.jsonl").open("ab") as log:
        for start in range(0, len(lines), size):
            log.write(b"".join(lines[start : start + size]))
            log.flush()
            time.sleep(pause)


@dataclass
class LivePrometheus:
    url: str
    metrics_url: str
    log: Path

    def api(self, path: str, **params: str) -> dict[str, Any]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            body = http_get(f"{self.url}/api/v1/{path}{query}")
        except urllib.error.HTTPError as exc:  # 400/422: the error is in the JSON body
            body = exc.read()
        return json.loads(body)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant query's result; raises ``AssertionError`` with Prometheus' error."""
        answer = self.api("query", query=expr)
        assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
        result = answer["data"]["result"]
        return result if isinstance(result, list) else [result]

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, ray_runtime: Any) -> Iterator[LivePrometheus]:
    if PROMETHEUS is None or PROMTOOL is None:
        pytest.skip("prometheus/promtool not installed (Debian package prometheus)")
    tmp = tmp_path_factory.mktemp("live-prometheus")
    root = tmp / "outputs"
    root.mkdir()
    failed_dir, pending = write_jobs(root, tmp / "staging")

    exporter = JobsExporter(root)
    exporter_port = free_port()
    serving = threading.Thread(
        target=exporter.serve_forever,
        args=("127.0.0.1", exporter_port, 0.2),
        name="test-jobs-exporter",
        daemon=True,
    )
    metrics_url = f"http://127.0.0.1:{exporter_port}/metrics"

    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(PROMETHEUS_DIR / "rules" / "*.yml")],
        "scrape_configs": [
            {
                "job_name": "dj-observe-serve",
                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
            }
        ],
    }
    config_file = tmp / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    log = tmp / "prometheus.log"
    prometheus = LivePrometheus(f"http://127.0.0.1:{port}", metrics_url, log)
    process: subprocess.Popen[bytes] | None = None
    serving.start()
    try:
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: b"dj_job_status" in http_get(metrics_url), "the exporter's /metrics")

        def target_up() -> bool:
            if process.poll() is not None:  # a bad config or a port in use: say why
                pytest.fail(f"prometheus exited {process.returncode}:\n{prometheus.log_tail()}")
            targets = prometheus.api("targets")["data"]["activeTargets"]
            return any(target["health"] == "up" for target in targets)

        wait_for(target_up, "the scrape target to be up in /api/v1/targets")
        feed(failed_dir, pending)
        ended = f'dj_job_status{{job_id="{FAILED_JOB}",state="failed"}} == 1'
        wait_for(lambda: prometheus.query(ended), "Prometheus to scrape the job's end")
        yield prometheus
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        exporter.stop()
        serving.join(timeout=10)


def values(result: list[dict[str, Any]], job_id: str) -> list[float]:
    return [float(r["value"][1]) for r in result if r["metric"].get("job_id") == job_id]


def test_live_recording_rules_return_data(live: LivePrometheus) -> None:
    results = {
        name: wait_for(lambda name=name: live.query(name), f"data for {name}", timeout=30)
        for name in sorted(RECORDING_RULES)
    }
    assert {r["metric"].get("pipeline") for r in results["dj_job:partition_progress:ratio"]} == {
        PIPELINE
    }

    def progress() -> bool:  # 5 completed + 1 failed of 6, once the rule saw the last scrape
        return values(live.query("dj_job:partition_progress:ratio"), FAILED_JOB) == [1.0]

    wait_for(progress, "the failed job's progress to reach 1", timeout=30)
    # The failed job's rows were appended while Prometheus scraped: a real rate and latencies.
    assert values(results["dj_job:rows_out:rate1m"], FAILED_JOB)[0] > 0
    p50 = values(results["dj_op:duration_seconds:p50"], FAILED_JOB)
    assert any(math.isfinite(v) and v > 0 for v in p50), p50

    def every_op() -> list[float]:  # the last ops show up once the last scrapes are in
        ratios = values(live.query("dj_op:rows_retention:ratio"), FAILED_JOB)
        return ratios if len(ratios) == len(DEFAULT_OPS) else []

    retention = wait_for(every_op, "retention for every op", timeout=30)
    assert all(0 < v <= 1 for v in retention), retention
    assert 0 <= values(results["dj_job:seconds_since_last_event"], FAILED_JOB)[0] < 600


def firing(live: LivePrometheus) -> list[dict[str, Any]]:
    alerts = live.api("alerts")["data"]["alerts"]
    return [alert for alert in alerts if alert["state"] == "firing"]


def test_live_partition_failed_alert_fires(live: LivePrometheus) -> None:
    def partition_failed() -> list[dict[str, Any]]:
        return [
            a
            for a in firing(live)
            if a["labels"]["alertname"] == "DjPartitionFailed"
            and a["labels"]["job_id"] == FAILED_JOB
        ]

    alerts = wait_for(partition_failed, "DjPartitionFailed firing in /api/v1/alerts", timeout=30)
    assert len(alerts) == 1, alerts
    labels, annotations = alerts[0]["labels"], alerts[0]["annotations"]
    assert labels["partition"] == str(FAILED_PARTITION)
    assert labels["op"] == DEFAULT_OPS[FAILED_OP_INDEX]
    assert labels["error_type"] == "RuntimeError"
    assert labels["severity"] == "critical"
    assert labels["pipeline"] == PIPELINE
    assert annotations["description"] == (
        f'Job {FAILED_JOB} (pipeline "{PIPELINE}"): partition {FAILED_PARTITION} failed in op '
        f"{DEFAULT_OPS[FAILED_OP_INDEX]} with RuntimeError."
    )
    assert annotations["runbook_url"] == f"{RUNBOOKS_URL}#runbook-djpartitionfailed"


def test_live_job_failed_alert_fires_for_the_failed_job_only(live: LivePrometheus) -> None:
    def job_failed() -> set[str]:
        return {
            a["labels"]["job_id"] for a in firing(live) if a["labels"]["alertname"] == "DjJobFailed"
        }

    assert wait_for(job_failed, "DjJobFailed firing in /api/v1/alerts", timeout=30) == {FAILED_JOB}


def test_live_scrape_passes_promtool_check_metrics(live: LivePrometheus) -> None:
    scrape = http_get(live.metrics_url)
    assert b"dj_partition_failed_info{" in scrape
    assert_ok(promtool("check", "metrics", stdin=scrape))


# Grafana variables in panel queries: the job and pipeline selectors become "all" (the
# dashboards' allValue), the interval macros a fixed window. ${datasource} is not in queries.
TEMPLATE_VARIABLES = re.compile(
    r"\$\{(job_id|pipeline)(?::\w+)?\}|\$(job_id|pipeline)\b|\[\[(job_id|pipeline)\]\]"
)
INTERVALS = re.compile(r"\$\{?__(rate_interval|interval|range)\}?(?![A-Za-z_])")
INTERVAL_VALUES = {"rate_interval": "1m", "interval": "1m", "range": "1h"}
LEFT_OVER_VARIABLE = re.compile(r"\$\{?[A-Za-z_]\w*|\[\[\w+\]\]")


def substitute(expr: str) -> str:
    expr = TEMPLATE_VARIABLES.sub(".*", expr)
    return INTERVALS.sub(lambda m: INTERVAL_VALUES[m.group(1)], expr)


def panel_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title and refId, expr) of every Prometheus target, rows' nested panels too."""
    for panel in dashboard.get("panels", []):
        yield from panel_queries(panel)
        for target in panel.get("targets", []):
            if target.get("expr"):
                title = f"{panel.get('title') or panel.get('id')} [{target.get('refId', '?')}]"
                yield title, target["expr"]


def test_live_every_dashboard_query_returns_data(live: LivePrometheus) -> None:
    files = sorted(DASHBOARDS.glob("*.json")) if DASHBOARDS.is_dir() else []
    if not files:
        pytest.skip(f"no Grafana dashboards in {DASHBOARDS.relative_to(REPO)} yet")
    queries = []
    for path in files:
        dashboard = json.loads(path.read_text())
        name = dashboard.get("title") or path.name
        queries += [(f"{name}: {title}", expr) for title, expr in panel_queries(dashboard)]
    assert queries, f"no panel queries in {[p.name for p in files]}"

    failures: dict[int, str] = {}
    pending = range(len(queries))
    deadline = time.monotonic() + 30
    while True:  # a query over a rate window may need a few more scrapes: retry until deadline
        failures = {}
        for index in pending:
            query = substitute(queries[index][1])
            if LEFT_OVER_VARIABLE.search(query):
                failures[index] = f"unsubstituted variable in {query!r}"
                continue
            try:
                if not live.query(query):
                    failures[index] = f"no data for {query!r}"
            except AssertionError as exc:
                failures[index] = f"query error: {exc}"
        pending = sorted(failures)
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not failures, f"{len(failures)} of {len(queries)} panel queries failed:\n" + "\n".join(
        f"- {queries[index][0]}: {why}" for index, why in failures.items()
    )


def markdown_anchors(path: Path) -> set[str]:
    """GitHub's anchors of the headings of a Markdown file (code blocks left out)."""
    anchors, fenced = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif line.startswith("#") and not fenced:
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 -]", "", title).replace(" ", "-"))
    return anchors


def test_every_runbook_url_points_at_a_heading_of_the_runbooks():
    """Each alert's runbook_url is a file of this repository and the anchor of one of its
    headings, followed into the file the URL names."""
    alerts = rules("alert")
    assert alerts
    for alert in alerts:
        url, anchor = alert["annotations"]["runbook_url"].rsplit("#", 1)
        assert url.startswith(REPO_URL), url
        page = REPO / url.removeprefix(REPO_URL)
        assert page.is_file(), url
        assert anchor in markdown_anchors(page), (alert["alert"], anchor)
