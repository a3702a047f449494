"""The reference executor on a real (shared, local) Ray runtime, end to end."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dj_observe.cli import main
from dj_observe.config import ConfigError
from dj_observe.runner.config import load_config, parse_config
from dj_observe.runner.executor import FAIL_ENV, run_job
from dj_observe.snapshot import ProcessingSnapshotAnalyzer
from dj_observe.tracker import JobTracker

pytestmark = pytest.mark.timeout(240)

PHASES = ("ray_start", "dataset_load", "partitioning", "export")
OPS = [
    {"clean_links_mapper": {}},
    {"clean_email_mapper": {}},
    {"text_length_filter": {"min_len": 20}},
    {"document_deduplicator": {}},
]


def _config(tmp_path: Path, **overrides):
    data = {
        "project_name": "test",
        "dataset_path": "demo://2000",
        "export_path": str(tmp_path / "out" / "result.jsonl"),
        "work_dir": str(tmp_path / "jobs"),
        "partition": {"size": 500},
        "process": OPS,
        **overrides,
    }
    return parse_config(data)


def _snapshot(job_dir: Path) -> dict:
    analyzer = ProcessingSnapshotAnalyzer(job_dir, workers=1)
    return analyzer.to_json_dict(analyzer.generate_snapshot())


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_config_rejects_an_unknown_key_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"^partition\.sise: unknown key"):
        _config(tmp_path, partition={"sise": 10})


def test_config_rejects_a_wrong_type_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"^np:"):
        _config(tmp_path, np="two")


def test_config_rejects_an_unknown_op_argument(tmp_path):
    with pytest.raises(ConfigError, match=r"^process\[0\]: text_length_filter: .*min_length"):
        _config(tmp_path, process=[{"text_length_filter": {"min_length": 3}}])


def test_config_rejects_an_unknown_op(tmp_path):
    with pytest.raises(ConfigError, match=r"^process\[1\]: unknown op 'nope'"):
        _config(tmp_path, process=[{"clean_links_mapper": {}}, {"nope": {}}])


def test_config_rejects_a_missing_dataset(tmp_path):
    with pytest.raises(ConfigError, match=r"^dataset_path: .* does not exist"):
        _config(tmp_path, dataset_path=str(tmp_path / "missing.jsonl"))


def test_the_demo_config_loads():
    config = load_config(Path(__file__).parent.parent / "configs" / "demo.yaml")
    assert config.demo_rows == 40000
    assert [name for name, _ in config.ops][-1] == "document_deduplicator"


def test_run_cli_reports_a_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset_path: demo://10\nexport_path: x.jsonl\nprocess: []\nnope: 1\n")
    err = StringIO()
    assert main(["run", str(bad)], stdout=StringIO(), stderr=err) == 2
    assert err.getvalue().count("\n") == 1 and "nope: unknown key" in err.getvalue()


def test_a_job_runs_end_to_end_and_its_snapshot_is_right(tmp_path, ray_runtime):
    result = run_job(_config(tmp_path), job_id="job1")
    assert result.status == "completed"
    doc = _snapshot(result.job_dir)
    assert doc["overall_status"] == "completed"
    assert doc["progress_summary"]["total_partitions"] == 4
    assert doc["progress_summary"]["completed_operations"] == 16
    assert doc["checkpointing"]["checkpointed_operations_count"] == 16
    op = doc["operation_progress"]["p0_op2_text_length_filter"]
    assert op["input_rows"] == 500 and op["output_rows"] < 500
    exported = _rows(result.export_path)
    texts = [row["text"] for row in exported]
    assert len(texts) == len(set(texts))  # the global dedup ran across partitions
    assert all("https://" not in text and "@example.org" not in text for text in texts)
    assert (result.job_dir / "job_summary.json").exists()
    plan = json.loads((result.job_dir / "dag_execution_plan.json").read_text())
    assert [node["operation_name"] for node in plan["nodes"].values()] == [
        next(iter(op)) for op in OPS
    ]
    assert plan["parallel_groups"][-1] == ["op_004_document_deduplicator"]
    assert doc["metadata"]["dag_plan_loaded"] is True
    assert (result.job_dir / "traces.otlp.jsonl").stat().st_size > 0


def test_rows_are_measured_where_the_op_ran(tmp_path, ray_runtime):
    result = run_job(_config(tmp_path), job_id="rows")
    doc = _snapshot(result.job_dir)
    total_out = sum(
        entry["output_rows"]
        for key, entry in doc["operation_progress"].items()
        if entry["operation_name"] == "document_deduplicator"
    )
    assert total_out == len(_rows(result.export_path))


def test_a_failing_partition_is_reported_and_the_others_continue(
    tmp_path, ray_runtime, monkeypatch
):
    monkeypatch.setenv(FAIL_ENV, "2:1")
    config = _config(tmp_path, on_partition_failure="continue", retries=0)
    result = run_job(config, job_id="fails")
    assert result.status == "failed" and result.failed_partitions == [2]
    doc = _snapshot(result.job_dir)
    assert doc["overall_status"] == "failed"
    assert doc["partition_progress"]["2"]["status"] == "failed"
    assert "injected failure" in doc["partition_progress"]["2"]["error_message"]
    assert doc["operation_progress"]["p2_op1_clean_email_mapper"]["status"] == "failed"
    assert doc["progress_summary"]["completed_partitions"] == 3
    assert result.export_path is not None and len(_rows(result.export_path)) > 0


def test_a_retry_recovers_a_partition_from_its_checkpoint(tmp_path, ray_runtime, monkeypatch):
    monkeypatch.setenv(FAIL_ENV, "1:2:1")  # fail once at op 2, then succeed
    result = run_job(_config(tmp_path, retries=1), job_id="retry")
    assert result.status == "completed"
    doc = _snapshot(result.job_dir)
    assert doc["partition_progress"]["1"]["status"] == "completed"
    events = _rows(result.job_dir / "events.jsonl")
    kinds = [event["event_type"] for event in events if event.get("partition_id") == 1]
    assert "op_failed" in kinds and "partition_resume" in kinds


def test_a_resumed_job_matches_an_uninterrupted_run(tmp_path, ray_runtime, monkeypatch):
    reference = run_job(_config(tmp_path / "ref"), job_id="ref")
    monkeypatch.setenv(FAIL_ENV, "3:2")
    config = _config(tmp_path / "resumed", on_partition_failure="fail", retries=0)
    first = run_job(config, job_id="resumed")
    assert first.status == "failed"
    monkeypatch.delenv(FAIL_ENV)
    second = run_job(config, job_id="resumed")
    assert second.status == "completed" and second.resumed
    assert _rows(second.export_path) == _rows(reference.export_path)
    doc = _snapshot(second.job_dir)
    assert doc["overall_status"] == "completed"
    assert doc["metadata"]["resumed_runs"] >= 1
    assert doc["progress_summary"]["completed_partitions"] == 4
    # the job's time runs from its first start, in the summary, the events and the result
    events = _rows(second.job_dir / "events.jsonl")
    began = next(e for e in events if e["event_type"] == "job_start")["timestamp"]
    ended = [e for e in events if e["event_type"] == "job_complete"][-1]
    summary = json.loads((second.job_dir / "job_summary.json").read_text())
    assert summary["start_time"] == doc["timing"]["start_time"] == began
    assert summary["duration"] == ended["duration"] == second.duration > first.duration
    assert ended["timestamp"] - began == second.duration


def test_run_cli_prints_the_summary_and_where_things_are(tmp_path, ray_runtime):
    config = tmp_path / "job.yaml"
    config.write_text(
        "project_name: cli\n"
        "dataset_path: demo://1000\n"
        f"export_path: {tmp_path / 'result.parquet'}\n"
        f"work_dir: {tmp_path / 'jobs'}\n"
        "partition: {size: 250}\n"
        "process:\n  - clean_links_mapper: {}\n  - text_length_filter: {min_len: 20}\n"
    )
    out, err = StringIO(), StringIO()
    assert main(["run", str(config), "--job-id", "cli1"], stdout=out, stderr=err) == 0
    text = out.getvalue()
    assert "Job cli1 completed" in text and "traces.otlp.jsonl" in text
    assert pq.read_table(tmp_path / "result.parquet").num_rows > 0
    _every_view_tells_one_duration(tmp_path, tmp_path / "jobs" / "cli1")
    _the_time_outside_the_ops_is_labelled(tmp_path, tmp_path / "jobs" / "cli1")


def _the_time_outside_the_ops_is_labelled(tmp_path: Path, job: Path) -> None:
    """Ray's start, the load, the partitioning and the export are phases of the job."""
    state = JobTracker(job, workers=1).refresh()
    phases = [(phase.name, phase.partition_id) for phase in state.phases]
    assert phases == [(name, None) for name in PHASES], phases
    first_op = min(
        run.start_time
        for part in state.partitions.values()
        for run in state.op_runs(part)
        if run.start_time is not None
    )
    loaded = state.phases[1]
    assert state.start_time == state.phases[0].start_time
    assert loaded.end_time is not None and loaded.end_time <= first_op
    html = (tmp_path / "r.html").read_text()
    assert all(f'data-phase="{name}"' in html for name in PHASES)


def _every_view_tells_one_duration(tmp_path: Path, job: Path) -> None:
    """The snapshot, its human view, the report, watch and the replayed metric: one number."""
    summary = json.loads((job / "job_summary.json").read_text())
    events = [json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()]
    ends = {e["event_type"]: e for e in events if e["event_type"] in ("job_start", "job_complete")}
    assert ends["job_start"]["timestamp"] == summary["start_time"]  # started with the command
    assert ends["job_complete"]["duration"] == summary["duration"]
    duration = summary["duration"]
    shown = f"{duration:.1f}s"

    def cli(*argv: str) -> str:
        out = StringIO()
        assert main(list(argv), stdout=out, stderr=StringIO()) == 0
        return out.getvalue()

    assert json.loads(cli("snapshot", str(job)))["timing"]["duration_seconds"] == duration
    assert f"Duration: {shown} " in cli("snapshot", str(job), "--human-readable")
    assert cli("watch", str(job)).startswith(f"[{shown}] completed ")
    replayed = cli("replay", str(job))
    assert f'dj_job_duration_seconds{{job_id="cli1",pipeline="cli"}} {duration!r}' in replayed
    cli("report", str(job), "-o", str(tmp_path / "r.html"))
    assert f"<td>Duration</td><td>{shown}</td>" in (tmp_path / "r.html").read_text()


def test_logs_follow_the_spec_layout(tmp_path, ray_runtime):
    result = run_job(_config(tmp_path), job_id="logs")
    logs = result.job_dir / "logs"
    for name in ("log.txt", "log_DEBUG.txt", "log_WARNING.txt", "log_ERROR.txt", "events.log"):
        assert (logs / name).exists(), name
    lines = (logs / "events.log").read_text().splitlines()
    events = _rows(result.job_dir / "events.jsonl")
    assert len(lines) == len(events)
    assert any("EVENT[op_complete]" in line and "PARTITION[0]" in line for line in lines)


def test_auto_partitioning_records_its_choice(tmp_path, ray_runtime):
    config = _config(tmp_path, partition={"mode": "auto", "max_size_mb": 1})
    result = run_job(config, job_id="auto")
    start = next(
        e for e in _rows(result.job_dir / "events.jsonl") if e["event_type"] == "job_start"
    )
    plan = start["metadata"]["partitioning"]
    assert plan["size"] >= 1 and "partition_size" in plan["reasoning"]
    doc = _snapshot(result.job_dir)
    assert doc["progress_summary"]["total_partitions"] == -(-2000 // plan["size"])


def test_partitions_run_on_both_nodes_of_a_two_node_cluster(tmp_path):
    """A real 2-node Ray cluster on this machine, in its own process (hard timeout)."""
    pytest.importorskip("ray")
    script = Path(__file__).parent / "cluster_job.py"
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=200,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == "completed", report
    assert len(report["nodes"]) == 2, report
    doc = _snapshot(Path(report["job_dir"]))
    assert doc["metadata"]["events_analyzed"] == report["events"]
    assert doc["progress_summary"]["completed_partitions"] == 16


def test_a_job_killed_with_sigkill_resumes_to_the_same_output(tmp_path, ray_runtime):
    """kill -9 the running job at a random point, resume it, compare with a clean run."""
    reference = run_job(_config(tmp_path / "ref", dataset_path="demo://6000"), job_id="ref")
    config = tmp_path / "job.yaml"
    config.write_text(
        "dataset_path: demo://6000\n"
        f"export_path: {tmp_path / 'killed' / 'result.jsonl'}\n"
        f"work_dir: {tmp_path / 'killed' / 'jobs'}\n"
        "partition: {size: 500}\nnp: 1\n"
        "process:\n"
        + "".join(f"  - {name}: {json.dumps(args)}\n" for op in OPS for name, args in op.items())
    )
    log = tmp_path / "killed" / "jobs" / "victim" / "events.jsonl"
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    process = subprocess.Popen(
        [sys.executable, "-m", "dj_observe.cli", "run", str(config), "--job-id", "victim"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    cut = random.Random(os.getpid()).randint(3, 60)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and sum(1 for _ in log.open("rb")) >= cut:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    killed = _snapshot(log.parent)  # the killed job reads as unfinished, not as an error
    assert killed["overall_status"] in ("in_progress", "not_started")
    assert killed["progress_summary"]["completed_partitions"] < 12
    resumed = run_job(load_config(config), job_id="victim")
    assert resumed.status == "completed"
    assert _rows(resumed.export_path) == _rows(reference.export_path)
    doc = _snapshot(resumed.job_dir)
    assert doc["overall_status"] == "completed"
    assert doc["progress_summary"]["completed_partitions"] == 12


def test_a_replayed_run_carries_the_project_as_its_pipeline(tmp_path, ray_runtime):
    result = run_job(_config(tmp_path), job_id="labels")
    out = StringIO()
    assert main(["replay", str(result.job_dir)], stdout=out, stderr=StringIO()) == 0
    assert 'dj_job_status{job_id="labels",pipeline="test",state="completed"} 1.0' in out.getvalue()
