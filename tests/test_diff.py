"""``dj-observe diff``, ``report --baseline`` and the drift alert, on real runs of one pipeline.

Five real jobs of the demo config (``dj-observe run``, 2000 rows in 5 partitions): pipeline
``nightly`` runs twice with text_length_filter's ``min_len: 20`` and then with ``min_len: 200``;
pipeline ``steady`` runs twice with the same config. ``diff`` must name the changed filter with
both retentions, and a real Prometheus scraping ``serve``'s exporter must fire
``DjOpRetentionShift`` for nightly's newest job and stay silent for steady.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import Prometheus, demo_config, ev, free_port, run_cli, wait_until, write_log

from dj_observe.serve import JobsExporter

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]
ROWS_ONLY = ("--duration-floor", "3600")
"""These runs differ in their rows only: their timings, on a machine the other tests load,
are noise, so durations are left out of the drift these tests expect."""
FILTER = "text_length_filter"
RUNS = {  # job id -> (pipeline, min_len of the filter), in the order they run
    "n1": ("nightly", 20),
    "n2": ("nightly", 20),
    "n3": ("nightly", 200),
    "s1": ("steady", 20),
    "s2": ("steady", 20),
}


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The diff's tables take the terminal's width; these tests read one row an op."""
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory, ray_runtime: Any) -> Path:
    root = tmp_path_factory.mktemp("drift") / "outputs"
    for job_id, (pipeline, min_len) in RUNS.items():
        config = demo_config(
            root.parent / f"{job_id}.yaml", root / pipeline, rows=2000, project_name=pipeline
        )
        document = yaml.safe_load(config.read_text())
        for op in document["process"]:
            if FILTER in op:
                op[FILTER]["min_len"] = min_len
        config.write_text(yaml.safe_dump(document, sort_keys=False))
        code, out, err = run_cli("run", str(config), "--job-id", job_id)
        assert code == 0, out + err
    return root


def job(outputs: Path, job_id: str) -> str:
    return str(outputs / RUNS[job_id][0] / job_id)


def snapshot_rows(job_dir: str, op: str) -> tuple[int, int]:
    """(rows in, rows out) of ``op``'s completed runs, from the snapshot document."""
    code, out, err = run_cli("snapshot", job_dir)
    assert code == 0, err
    runs = [
        entry
        for entry in json.loads(out)["operation_progress"].values()
        if entry["operation_name"] == op and entry["status"] == "completed"
    ]
    return sum(r["input_rows"] for r in runs), sum(r["output_rows"] for r in runs)


def diff_json(*argv: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run_cli("diff", *argv, "--json")
    assert code in (0, 1), err
    return code, json.loads(out)


def by_op(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["op"]: entry for entry in document["ops"]}


def test_diff_names_the_changed_filter_with_both_retentions(outputs):
    code, out, err = run_cli("diff", job(outputs, "n2"), job(outputs, "n3"))
    assert code == 0, err  # drift alone does not fail without --fail-on-drift
    before, after = (snapshot_rows(job(outputs, j), FILTER) for j in ("n2", "n3"))
    retentions = [f"{rows_out / rows_in * 100:.1f}%" for rows_in, rows_out in (before, after)]
    line = next(line for line in out.splitlines() if FILTER in line)
    assert f"{retentions[0]} -> {retentions[1]} !" in line, out
    assert out.splitlines()[-1].startswith(f"drift: {FILTER}"), out

    _, document = diff_json(job(outputs, "n2"), job(outputs, "n3"))
    ops = by_op(document)
    assert [name for name, entry in ops.items() if entry["drift"]] == [FILTER]
    changed = ops[FILTER]
    assert (changed["rows_in"]["a"], changed["rows_out"]["a"]) == before
    assert (changed["rows_in"]["b"], changed["rows_out"]["b"]) == after
    assert changed["retention"]["a"] == pytest.approx(before[1] / before[0])
    assert changed["retention"]["b"] == pytest.approx(after[1] / after[0])
    assert changed["retention"]["a"] - changed["retention"]["b"] > 0.2
    assert document["run"]["rows_exported"]["drift"]


def test_fail_on_drift_sets_the_exit_code(outputs):
    same = run_cli("diff", job(outputs, "n1"), job(outputs, "n2"), "--fail-on-drift", *ROWS_ONLY)
    assert same[0] == 0 and same[1].splitlines()[-1] == "no drift", same
    changed = run_cli("diff", job(outputs, "n2"), job(outputs, "n3"), "--fail-on-drift")
    assert changed[0] == 1, changed
    # A loose enough threshold lets the changed filter pass.
    loose = run_cli(
        "diff",
        job(outputs, "n2"),
        job(outputs, "n3"),
        "--fail-on-drift",
        "--threshold",
        "0.9",
        *ROWS_ONLY,
    )
    assert loose[0] == 0, loose


def test_diff_against_the_baseline_of_earlier_jobs(outputs):
    code, document = diff_json(
        job(outputs, "n3"), "--baseline", str(outputs), "--last", "2", "--fail-on-drift", *ROWS_ONLY
    )
    assert code == 1
    assert document["a"]["jobs"] == ["n1", "n2"]  # the jobs of the pipeline before it
    assert document["b"]["label"] == "n3"
    assert [entry["op"] for entry in document["ops"] if entry["drift"]] == [FILTER]
    code, document = diff_json(
        job(outputs, "n2"), "--baseline", str(outputs), "--last", "1", *ROWS_ONLY
    )
    assert code == 0 and document["a"]["jobs"] == ["n1"] and not document["drift"]


def test_report_shows_the_baseline_in_its_ops(outputs, tmp_path):
    page = tmp_path / "report.html"
    code, _, err = run_cli(
        "report", job(outputs, "n3"), "-o", str(page), "--baseline", str(outputs), *ROWS_ONLY
    )
    assert code == 0, err
    html = page.read_text()
    assert "<h2>Against the baseline</h2>" in html
    assert "median of 2 jobs" in html  # n1 and n2 of nightly
    assert f'<tr class="drift" data-op="{FILTER}">' in html
    assert 'class="funnel baseline"' in html
    assert html.count('<tr class="drift"') == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["/nonexistent/a", "/nonexistent/b"], "job directory not found"),
        (["A"], "give a second job directory or --baseline DIR"),
        (["A", "B", "--baseline", "D"], "give a second job directory or --baseline DIR"),
        (["A", "B", "--threshold", "-1"], "--threshold must be a number, 0 or more"),
        (["A", "B", "--threshold", "nan"], "--threshold must be a number, 0 or more"),
        (["A", "--baseline", "D", "--last", "0"], "--last must be at least 1"),
        (["A", "B", "--duration-floor", "-1"], "--duration-floor must be a number of seconds"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message):
    code, out, err = run_cli("diff", *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err


def test_a_slower_op_drifts_past_the_duration_floor_only(tmp_path):
    for job_id, seconds in (("fast", 1.0), ("slow", 8.0)):
        write_log(
            tmp_path / job_id,
            [
                ev("job_start", 1.0, job_id=job_id),
                ev("op_start", 2.0, job_id=job_id, partition_id=0, operation_name="slow_mapper"),
                ev(
                    "op_complete",
                    2.0 + seconds,
                    job_id=job_id,
                    partition_id=0,
                    operation_name="slow_mapper",
                    duration=seconds,
                    input_rows=100,
                    output_rows=100,
                ),
                ev("job_complete", 3.0 + seconds, job_id=job_id),
            ],
        )
    a, b = str(tmp_path / "fast"), str(tmp_path / "slow")
    code, document = diff_json(a, b, "--fail-on-drift")  # 7 s slower: past the 5 s default
    assert code == 1 and document["duration_floor"] == 5
    assert by_op(document)["slow_mapper"]["p50_seconds"]["drift"]
    code, document = diff_json(a, b, "--fail-on-drift", "--duration-floor", "10")
    assert code == 0 and not document["drift"]


def test_an_op_name_with_control_characters_is_escaped(tmp_path):
    name = "evil\x1b[2J\x07_filter"
    for job_id, rows_out in (("x1", 90), ("x2", 30)):
        write_log(
            tmp_path / job_id,
            [
                ev("job_start", 1.0, job_id=job_id),
                ev("op_start", 2.0, job_id=job_id, partition_id=0, operation_name=name),
                ev(
                    "op_complete",
                    3.0,
                    job_id=job_id,
                    partition_id=0,
                    operation_name=name,
                    input_rows=100,
                    output_rows=rows_out,
                ),
                ev("job_complete", 4.0, job_id=job_id),
            ],
        )
    code, out, err = run_cli("diff", str(tmp_path / "x1"), str(tmp_path / "x2"))
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b[2J\\x07_filter" in out
    assert "90.0% -> 30.0% !" in out


# -------------------------------------------------------------------- the alert, in Prometheus


@pytest.fixture
def prometheus(outputs: Path, tmp_path: Path) -> Iterator[Prometheus]:
    """A real Prometheus scraping ``serve``'s exporter of ``outputs`` every second."""
    exporter = JobsExporter(outputs)
    port = free_port()
    thread = threading.Thread(
        target=exporter.serve_forever, args=("127.0.0.1", port, 0.2), daemon=True
    )
    thread.start()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(REPO / "prometheus" / "rules" / "*.yml")],
        "scrape_configs": [
            {"job_name": "dj-observe-serve", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        ],
    }
    try:
        with Prometheus(tmp_path, config) as server:
            yield server
    finally:
        exporter.stop()
        thread.join(10)


def test_the_retention_shift_alert_fires_for_the_changed_pipeline_only(outputs, prometheus):
    def shifted() -> list[dict[str, Any]]:
        return [a for a in prometheus.alerts() if a["labels"]["alertname"] == "DjOpRetentionShift"]

    alerts = wait_until(shifted, 60)
    assert alerts, f"{prometheus.alerts('pending')}\n{prometheus.log_tail()}"
    (alert,) = alerts
    assert {key: alert["labels"][key] for key in ("job_id", "pipeline", "op")} == {
        "job_id": "n3",
        "pipeline": "nightly",
        "op": FILTER,
    }
    rows_in, rows_out = snapshot_rows(job(outputs, "n3"), FILTER)
    assert float(alert["value"]) == pytest.approx(rows_out / rows_in)
    assert "recently it kept" in alert["annotations"]["description"]
    # steady's newest job is compared with its earlier one (the rule has data) and stays silent.
    recent = prometheus.query('dj_pipeline_op:rows_retention:recent{pipeline="steady"}')
    assert len(recent) == len(by_op(diff_json(job(outputs, "s1"), job(outputs, "s2"))[1]))
    assert not [a for a in prometheus.alerts() if a["labels"]["pipeline"] == "steady"]
    assert not [
        a for a in prometheus.alerts("pending") if a["labels"]["alertname"].startswith("DjOp")
    ]
