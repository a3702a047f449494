"""Every Data-Juicer executor, with the real numbers of each op (``dj-process`` for real).

One pipeline whose rows are known op by op (600 -> 600 -> 600 -> 600 -> 500 -> 450),
run under ``dj-observe instrument`` with the ``default``, ``ray`` and ``ray_partitioned``
executors (checkpoint groups of two ops), then once more each with an op that
raises.  Each run is scraped live and its spans received over OTLP; the tests
check each op's rows and measured duration in the snapshot, on /metrics and on
the op spans, and the failure in each.
"""

from __future__ import annotations

import json
import threading
from io import StringIO
from pathlib import Path

import pytest
from data_juicer_job import (
    KNOWN_FAIL_ROW,
    KNOWN_OPS,
    KNOWN_ROWS,
    Observed,
    any_sample,
    job_status,
    observe,
    write_executor_config,
)
from support import read_traces_file, sample, samples, snapshot_doc

from dj_observe.cli import main
from dj_observe.snapshot import ProcessingSnapshotAnalyzer

pytest.importorskip("data_juicer", reason="pip install 'dj-observe[data-juicer]'")

EXECUTORS = ["default", "ray", "ray_partitioned"]
PARTITIONS = {"default": 1, "ray": 1, "ray_partitioned": 2}
SLOW_OP = "djx_fail_on_ids_mapper"
SLOW_SECONDS = 3.0  # the default run's slow op, long enough to be scraped while it runs


def _ended(job_id: str):
    return lambda found: job_status(found, job_id) in ("completed", "failed")


LIVE: list[tuple[float, dict]] = []
"""The default run's scrapes while its slow op ran, each with a snapshot taken then."""
WATCHED = StringIO()
"""What ``dj-observe watch`` printed (piped) while the default run ran."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Observed]:
    root = tmp_path_factory.mktemp("executors")
    seen: dict[tuple[str, str], Observed] = {}
    for executor in EXECUTORS:
        config = write_executor_config(root, executor)
        job_id = f"{executor}-ok"

        watching: list[threading.Thread] = []

        def during(found, job_id=job_id, executor=executor, watching=watching):
            running = any_sample(found, "dj_ops_running", job_id=job_id, op=SLOW_OP)
            if executor != "default":
                return
            job_dir = root / "outputs" / job_id
            if not watching and job_dir.is_dir():
                argv = ["watch", str(job_dir), "--interval", "0.2"]
                watching.append(threading.Thread(target=main, args=(argv, WATCHED)))
                watching[0].start()
            if running and len(LIVE) < 3:  # the slow op runs now: the snapshot says so too
                LIVE.append((running, snapshot_doc(job_dir)))

        slow = {"DJX_SLEEP": str(SLOW_SECONDS)} if executor == "default" else {}
        seen[(executor, "ok")] = observe(
            root, config, job_id, _ended(job_id), during=during, **slow
        )
        for thread in watching:
            thread.join(60)
        job_id = f"{executor}-fail"
        seen[(executor, "fail")] = observe(
            root, config, job_id, _ended(job_id), DJX_FAIL_IDS=str(KNOWN_FAIL_ROW)
        )
    return seen


def _runs_by_op(doc: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for run in doc["operation_progress"].values():
        found.setdefault(run["operation_name"], []).append(run)
    return found


@pytest.mark.parametrize("executor", EXECUTORS)
def test_every_op_has_its_own_rows_and_duration_in_the_snapshot(runs, executor):
    job = runs[(executor, "ok")]
    assert job.returncode == 0, job.log[-3000:]
    doc = job.snapshot
    assert doc["overall_status"] == "completed"
    assert doc["progress_summary"]["total_partitions"] == PARTITIONS[executor]
    assert doc["metadata"]["group_timed_operations"] == 0
    by_op = _runs_by_op(doc)
    for op, (rows_in, rows_out) in zip(KNOWN_OPS, KNOWN_ROWS, strict=True):
        op_runs = by_op[op]
        assert len(op_runs) == PARTITIONS[executor]
        assert sum(run["input_rows"] for run in op_runs) == rows_in, op
        assert sum(run["output_rows"] for run in op_runs) == rows_out, op
        assert all(run["status"] == "completed" and run["duration"] > 0 for run in op_runs), op
    state = ProcessingSnapshotAnalyzer(job.job_dir).generate_snapshot().state
    measured = [run for part in state.partitions.values() for run in state.op_runs(part)]
    assert all(run.cpu_seconds is not None and run.peak_rss_bytes > 0 for run in measured)
    if executor == "default":
        (slow,) = by_op[SLOW_OP]
        assert slow["duration"] >= SLOW_SECONDS


@pytest.mark.parametrize("executor", EXECUTORS)
def test_every_op_has_its_own_rows_and_duration_on_metrics(runs, executor):
    job = runs[(executor, "ok")]
    found = samples(job.metrics)
    labels = {"job_id": f"{executor}-ok", "pipeline": f"known-{executor}"}
    for op, (rows_in, rows_out) in zip(KNOWN_OPS, KNOWN_ROWS, strict=True):
        assert sample(found, "dj_op_rows_in_total", op=op, **labels) == rows_in, op
        assert sample(found, "dj_op_rows_out_total", op=op, **labels) == rows_out, op
        count = sample(found, "dj_op_duration_seconds_count", op=op, **labels)
        assert count == PARTITIONS[executor], op
        assert sample(found, "dj_op_duration_seconds_sum", op=op, **labels) > 0, op
    assert sample(found, "dj_observe_sink_errors_total", sink="data_juicer_adapter") in (None, 0)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_every_op_span_has_its_own_duration(runs, executor):
    job = runs[(executor, "ok")]
    ops = [span for span in job.spans if span.attributes.get("dj.op.name")]
    assert {span.attributes["dj.op.name"] for span in ops} == set(KNOWN_OPS)
    assert len(ops) == len(KNOWN_OPS) * PARTITIONS[executor]
    assert not [span for span in ops if "dj.op.timing" in span.attributes]  # none group-timed
    assert all(span.end > span.start for span in ops)
    offline = read_traces_file(job.job_dir / "traces.otlp.jsonl")
    assert {span.span_id for span in offline} >= {span.span_id for span in ops}


def test_a_long_op_is_seen_running_while_it_runs(runs):
    assert LIVE, "the slow op was never scraped while it ran"
    running, doc = LIVE[0]
    assert running == 1
    (slow,) = _runs_by_op(doc)[SLOW_OP]
    assert slow["status"] == doc["overall_status"] == "in_progress"
    assert f"running p0:{SLOW_OP}" in WATCHED.getvalue()
    assert "partitions 1/1" in WATCHED.getvalue().splitlines()[-1]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_op_that_raises_fails_in_events_metrics_and_spans(runs, executor):
    job = runs[(executor, "fail")]
    assert job.returncode != 0
    job_id, failing = f"{executor}-fail", KNOWN_OPS.index(SLOW_OP)
    measured = "\n".join(path.read_text() for path in job.job_dir.glob("*.measured.jsonl"))
    assert '"op_failed"' in measured and "injected failure on row id=350" in measured
    assert "Traceback (most recent call last)" in measured  # the stack trace, from the op
    found = samples(job.metrics)
    partition = "1" if executor == "ray_partitioned" else "0"
    info = any_sample(
        found,
        "dj_partition_failed_info",
        job_id=job_id,
        partition=partition,
        op=SLOW_OP,
        error_type="RuntimeError",
    )
    assert info == 1, job.metrics
    failed = [span for span in job.spans if span.status_code == 2]
    assert any(span.attributes.get("dj.op.name") == SLOW_OP for span in failed)
    run = job.snapshot["operation_progress"][f"p{partition}_op{failing}_{SLOW_OP}"]
    assert run["status"] == "failed" and "injected failure" in run["error_message"]


def test_measured_events_are_kept_beside_data_juicers_own(runs):
    """Data-Juicer's file is untouched: every measured event is in the ``.measured`` file."""
    job = runs[("ray", "ok")]
    (theirs,) = [p for p in job.job_dir.glob("events_*.jsonl") if ".measured" not in p.name]
    (ours,) = job.job_dir.glob("events_*.measured.jsonl")
    assert '"measured"' not in theirs.read_text()
    assert all('"measured":' in line for line in ours.read_text().splitlines())
    assert not (job.job_dir / ".dj_observe_measures").exists()  # the workers' tallies: gone
    read = [Path(name).name for name in job.snapshot["metadata"]["event_log_files"]]
    assert sorted(read) == sorted([theirs.name, ours.name])  # the snapshot reads both


EXPECTED_PHASES = {
    "default": {"dataset_load", "export"},
    "ray": {"dataset_load", "export"},
    "ray_partitioned": {"dataset_load", "partitioning", "checkpoint_write", "export"},
}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_the_phases_outside_the_ops_are_spans_and_in_the_report(runs, executor, tmp_path):
    job = runs[(executor, "ok")]
    phases = {
        span.attributes["dj.phase"]: span for span in job.spans if "dj.phase" in span.attributes
    }
    assert set(phases) >= EXPECTED_PHASES[executor]
    (root,) = [span for span in job.spans if span.name.startswith("job ")]
    assert phases["dataset_load"].parent_span_id == root.span_id
    assert phases["dataset_load"].end > phases["dataset_load"].start
    page = tmp_path / "report.html"
    assert main(["report", str(job.job_dir), "-o", str(page)]) == 0
    html = page.read_text()
    for phase in EXPECTED_PHASES[executor]:
        assert f'data-phase="{phase}"' in html, phase


@pytest.mark.parametrize("executor", EXECUTORS)
def test_what_data_juicer_knows_of_the_job_reaches_the_views(runs, executor, tmp_path):
    job = runs[(executor, "ok")]
    assert job.snapshot["job_info"]["executor_type"] == executor
    if executor == "ray_partitioned":
        assert job.snapshot["checkpointing"]["strategy"] == "every_n_ops"
    page = tmp_path / "report.html"
    assert main(["report", str(job.job_dir), "-o", str(page)]) == 0
    assert f"<td>known-{executor}</td>" in page.read_text()


def test_data_juicers_own_monitor_figures_come_with_each_op(runs):
    """``open_monitor`` samples the machine while each op runs: kept with the op's end."""
    job = runs[("default", "ok")]
    (ours,) = job.job_dir.glob("events_*.measured.jsonl")
    ends = [json.loads(line) for line in ours.read_text().splitlines() if '"op_complete"' in line]
    assert len(ends) == len(KNOWN_OPS)
    for end in ends:
        figures = end["metadata"]["monitor"]
        assert 0 <= figures["cpu_utilization_avg"] <= figures["cpu_utilization_max"] <= 1
        assert 0 < figures["memory_utilization_max"] <= 1


OP_SERIES = ("dj_op_rows_in_total", "dj_op_rows_out_total", "dj_ops_completed_total")


@pytest.mark.parametrize("executor", EXECUTORS)
def test_replay_of_the_directory_gives_the_live_op_numbers(runs, executor):
    """Data-Juicer's log and the measured one together, counted once: as the job showed."""
    job = runs[(executor, "ok")]
    out = StringIO()
    assert main(["replay", str(job.job_dir)], stdout=out) == 0
    replayed, live = samples(out.getvalue()), samples(job.metrics)
    labels = {"job_id": f"{executor}-ok", "pipeline": f"known-{executor}"}
    for name in OP_SERIES:
        for op in KNOWN_OPS:
            assert sample(replayed, name, op=op, **labels) == sample(live, name, op=op, **labels)
    for op in KNOWN_OPS:
        count = "dj_op_duration_seconds_count"
        assert sample(replayed, count, op=op, **labels) == PARTITIONS[executor]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_the_snapshot_adds_each_runs_cpu_and_memory(runs, executor):
    """Additive: the spec's keys first, as documented, then what was measured."""
    for run in runs[(executor, "ok")].snapshot["operation_progress"].values():
        keys = list(run)
        assert keys[-2:] == ["cpu_seconds", "peak_memory_bytes"], keys
        assert run["cpu_seconds"] >= 0 and run["peak_memory_bytes"] > 0
