"""A real Data-Juicer (``dj-process``, ``ray_partitioned``) observed end to end.

Three real runs, once per session (about 40 s): a job whose ops run in checkpoint
groups of two, a job one of whose partitions fails, and that job resumed from a
half-written checkpoint.  Each runs under ``dj-observe instrument`` with its
/metrics endpoint and OTLP export on loopback; the tests check what was scraped,
the spans received, the snapshot, ``watch`` and the report (in Chromium).
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from data_juicer_job import (
    FAIL_OP_INDEX,
    FAIL_PARTITION,
    FAIL_ROW,
    OPS,
    PARTITIONS,
    ROWS,
    Observed,
    any_sample,
    dj_command,
    job_status,
    observe,
    write_config,
)
from support import (
    chromium,
    page_errors,
    partition_groups,
    promtool_check_metrics,
    run_chromium,
    sample,
    samples,
)

from dj_observe.cli import main
from dj_observe.integrations import data_juicer as adapter

pytest.importorskip("data_juicer", reason="pip install 'dj-observe[data-juicer]'")


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Observed]:
    root = tmp_path_factory.mktemp("data-juicer")
    grouped = write_config(root, "grouped", "every_n_ops", n_ops=2)
    every_op = write_config(root, "every-op", "every_op")
    seen = {
        "grouped": observe(
            root, grouped, "grouped1", lambda found: job_status(found, "grouped1") == "completed"
        ),
        "failed": observe(
            root,
            every_op,
            "failing1",
            lambda found: (
                any_sample(found, "dj_partitions", job_id="failing1", state="failed") == 1
                and any_sample(found, "dj_partitions", job_id="failing1", state="running") == 0
            ),
            DJX_FAIL_IDS=str(FAIL_ROW),
        ),
    }
    # A crash while writing the next checkpoint leaves a directory Data-Juicer cannot
    # read; on resume it takes it for the latest checkpoint and never runs the op before.
    checkpoints = root / "outputs" / "failing1" / "checkpoints"
    half_written = f"checkpoint_op_{FAIL_OP_INDEX + 1:04d}_partition_{FAIL_PARTITION:04d}.parquet"
    (checkpoints / half_written).mkdir()
    seen["resumed"] = observe(
        root,
        every_op,
        "failing1",
        lambda found: job_status(found, "failing1") == "completed",
        resume=True,
    )
    return seen


def _output_rows(job_dir: Path) -> int:
    return sum(
        1
        for shard in (job_dir / "results" / "processed.jsonl").iterdir()
        for line in shard.read_text().splitlines()
        if line.strip()
    )


# -- a job that completes ------------------------------------------------------------


def test_metrics_of_a_real_job(jobs):
    job = jobs["grouped"]
    assert job.returncode == 0, job.log[-3000:]  # SIGTERM ended the linger, quietly
    assert "Traceback" not in job.log, job.log[-3000:]
    found = samples(job.metrics)
    labels = {"job_id": "grouped1", "pipeline": "grouped"}
    assert sample(found, "dj_job_status", state="completed", **labels) == 1
    assert sample(found, "dj_partitions", state="completed", **labels) == PARTITIONS
    assert sample(found, "dj_partitions_completed_total", **labels) == PARTITIONS
    assert sample(found, "dj_op_rows_in_total", op=OPS[0], **labels) == ROWS
    assert sample(found, "dj_op_rows_out_total", op=OPS[-1], **labels) == _output_rows(job.job_dir)
    for op in OPS:
        assert sample(found, "dj_ops_completed_total", op=op, **labels) == PARTITIONS
    # Ops run in checkpoint groups are measured in the workers: each has its own numbers.
    for op, after in itertools.pairwise(OPS):
        rows_out = sample(found, "dj_op_rows_out_total", op=op, **labels)
        assert rows_out == sample(found, "dj_op_rows_in_total", op=after, **labels)
    for op in OPS:
        assert sample(found, "dj_op_duration_seconds_count", op=op, **labels) == PARTITIONS
        assert sample(found, "dj_ops_running", op=op, **labels) == 0
    assert sample(found, "dj_events_total", event_type="job_start", **labels) == 2
    assert sample(found, "dj_observe_sink_errors_total", sink="data_juicer_adapter") in (None, 0)
    lint = promtool_check_metrics(job.metrics)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_instrument_says_where_metrics_and_traces_go(jobs):
    log = jobs["grouped"].log
    assert re.search(
        r"dj-observe: observing Data-Juicer job grouped1: /metrics at "
        r"http://127\.0\.0\.1:\d+/metrics; traces to \S+traces\.otlp\.jsonl; "
        r"traces over OTLP to http://127\.0\.0\.1:\d+/v1/traces",
        log,
    ), log[:3000]
    assert re.search(r"dj-observe: keeping http://127\.0\.0\.1:\d+/metrics up 60 s", log)


def test_spans_of_a_real_job(jobs):
    spans = jobs["grouped"].spans
    jobs_spans = [span for span in spans if span.name.startswith("job ")]
    partitions = [span for span in spans if span.name.startswith("partition ")]
    ops = [span for span in spans if span.attributes.get("dj.op.name")]
    assert len(jobs_spans) == 1 and len(partitions) == PARTITIONS
    assert len(ops) == PARTITIONS * len(OPS)
    (root,) = jobs_spans
    assert {span.trace_id for span in spans} == {root.trace_id}
    assert {span.parent_span_id for span in partitions} == {root.span_id}
    partition_ids = {span.span_id for span in partitions}
    assert all(span.parent_span_id in partition_ids for span in ops)
    assert all(span.status_code != 2 for span in spans)  # no ERROR
    assert {span.attributes["dj.op.name"] for span in ops} == set(OPS)
    grouped = {span.attributes["dj.op.name"] for span in ops if "dj.op.timing" in span.attributes}
    assert grouped == set()  # measured: no span stands for its checkpoint group


def test_snapshot_of_a_real_job(jobs):
    job = jobs["grouped"]
    doc = job.snapshot
    assert doc["overall_status"] == "completed"
    summary = doc["progress_summary"]
    assert summary["total_partitions"] == summary["completed_partitions"] == PARTITIONS
    assert summary["total_operations"] == summary["completed_operations"] == PARTITIONS * len(OPS)
    assert doc["metadata"]["group_timed_operations"] == 0
    assert doc["metadata"]["skipped_operations"] == {}
    for pid in range(PARTITIONS):
        entry = doc["partition_progress"][str(pid)]
        assert entry["completed_operations"] == OPS and entry["progress_percentage"] == 100.0
        for idx, op in enumerate(OPS):
            run_ = doc["operation_progress"][f"p{pid}_op{idx}_{op}"]
            assert run_["status"] == "completed"
            assert run_["duration"] > 0
            if idx:
                before = doc["operation_progress"][f"p{pid}_op{idx - 1}_{OPS[idx - 1]}"]
                assert run_["input_rows"] == before["output_rows"]
    kept = sum(
        doc["operation_progress"][f"p{pid}_op4_{OPS[4]}"]["output_rows"]
        for pid in range(PARTITIONS)
    )
    assert kept == _output_rows(job.job_dir)


def test_data_juicer_own_snapshot_cannot_read_the_directory(jobs):
    """The upstream analyzer misses every partition of a ``ray_partitioned`` job."""
    from data_juicer.utils.job.snapshot import ProcessingSnapshotAnalyzer

    theirs = ProcessingSnapshotAnalyzer(str(jobs["grouped"].job_dir)).generate_snapshot()
    assert theirs.total_partitions == 0
    assert jobs["grouped"].snapshot["progress_summary"]["total_partitions"] == PARTITIONS


# -- a job with a failing partition, then resumed from a half-written checkpoint -----


def test_a_failing_partition_fails_the_job_in_metrics_spans_and_snapshot(jobs):
    job = jobs["failed"]
    assert job.returncode != 0
    found = samples(job.metrics)
    labels = {"job_id": "failing1", "pipeline": "every-op"}
    assert sample(found, "dj_partitions", state="failed", **labels) == 1
    assert sample(found, "dj_partitions", state="completed", **labels) == PARTITIONS - 1
    info = sample(
        found,
        "dj_partition_failed_info",
        partition=str(FAIL_PARTITION),
        op=OPS[FAIL_OP_INDEX],
        error_type="RuntimeError",
        **labels,
    )
    assert info == 1
    failed = [span for span in job.spans if span.status_code == 2]
    names = {span.name for span in failed}
    assert f"partition {FAIL_PARTITION}" in names and any(n.startswith("job ") for n in names)
    assert any(span.attributes.get("dj.op.name") == OPS[FAIL_OP_INDEX] for span in failed)


def test_snapshot_of_the_failed_run(jobs):
    doc = jobs["failed"].snapshot  # taken before the resume
    assert doc["overall_status"] == "failed"
    assert doc["progress_summary"]["failed_partitions"] == 1
    entry = doc["partition_progress"][str(FAIL_PARTITION)]
    assert entry["status"] == "failed"
    assert entry["failed_operations"] == [OPS[FAIL_OP_INDEX]]
    assert "RuntimeError: injected failure" in entry["error_message"]
    assert "\x1b" not in entry["error_message"]
    assert doc["job_info"]["resumption_command"].startswith("dj-process --config ")


def test_resume_from_a_half_written_checkpoint_shows_the_op_that_never_ran(jobs):
    job = jobs["resumed"]
    assert job.returncode == 0, job.log[-3000:]
    assert "Failed to load checkpoint" in job.log  # Data-Juicer's warning, no event
    doc = job.snapshot
    assert doc["overall_status"] == "completed"
    logs = [Path(name).name for name in doc["metadata"]["event_log_files"]]
    assert len(logs) == 4 and sum(name.endswith(".measured.jsonl") for name in logs) == 2
    assert doc["metadata"]["resumed_runs"] == 1
    skipped = OPS[FAIL_OP_INDEX]
    assert doc["metadata"]["skipped_operations"] == {str(FAIL_PARTITION): [skipped]}
    entry = doc["partition_progress"][str(FAIL_PARTITION)]
    assert entry["status"] == "completed"
    assert entry["failed_operations"] == [skipped]
    assert entry["progress_percentage"] < 100.0
    run_ = doc["operation_progress"][f"p{FAIL_PARTITION}_op{FAIL_OP_INDEX}_{skipped}"]
    assert run_["status"] == "failed" and "skipped on resume" in run_["error_message"]
    human = StringIO()
    assert main(["snapshot", str(job.job_dir), "--human-readable"], stdout=human) == 0
    assert f"Partition {FAIL_PARTITION} completed without running {skipped}" in " ".join(
        human.getvalue().split()
    )


# -- watch and report on the real directories ----------------------------------------


@pytest.mark.parametrize(("name", "code"), [("grouped", 0), ("resumed", 0)])
def test_watch_a_real_job_directory(jobs, name, code):
    out = StringIO()
    assert main(["watch", str(jobs[name].job_dir), "--interval", "0.1"], stdout=out) == code
    assert f"partitions {PARTITIONS}/{PARTITIONS}" in out.getvalue()


def test_report_of_a_real_job_in_chromium(jobs, tmp_path):
    chromium()
    page = tmp_path / "report.html"
    assert main(["report", str(jobs["resumed"].job_dir), "-o", str(page)]) == 0
    dom = run_chromium(page, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert partition_groups(dom.stdout) == list(range(PARTITIONS))
    assert page_errors(dom.stderr) == []
    assert f"partition {FAIL_PARTITION}: {OPS[FAIL_OP_INDEX]}" in dom.stdout  # skipped on resume
    grouped = tmp_path / "grouped.html"
    assert main(["report", str(jobs["grouped"].job_dir), "-o", str(grouped)]) == 0
    assert "op runs timed only" not in grouped.read_text()


# -- the adapter in-process ------------------------------------------------------------


def test_instrument_is_idempotent_and_undone():
    from data_juicer.core.executor import event_logging_mixin as module

    original = module.EventLogger.log_event
    adapter.instrument({"metrics": {"enabled": False}, "tracing": {"enabled": False}})
    adapter.instrument()
    patched = module.EventLogger.log_event
    assert patched is not original and patched.__dj_observe_original__ is original
    adapter.uninstrument()
    assert module.EventLogger.log_event is original


def test_autoload_constants_match_the_adapter():
    text = (adapter.AUTOLOAD_DIR / "sitecustomize.py").read_text()
    assert f'MODULE = "{adapter.MODULE}"' in text
    assert f'ENABLE_VARIABLE = "{adapter.ENABLE_VARIABLE}"' in text


def test_instrument_command_needs_a_command():
    err = StringIO()
    assert main(["instrument"], stderr=err) == 2
    assert "needs a command" in err.getvalue()


def test_a_forwarding_error_never_reaches_data_juicer(tmp_path):
    """A broken hook is counted; Data-Juicer's own log line is still written."""
    from data_juicer.core.executor.event_logging_mixin import Event, EventLogger, EventType

    adapter.instrument({"metrics": {"enabled": True}, "tracing": {"enabled": False}})
    try:
        logger = EventLogger(str(tmp_path / "logs"), job_id="j1", work_dir=str(tmp_path))
        hook = adapter._adapter.hook_for(logger)
        hook.observe = _raise  # type: ignore[method-assign]
        logger.log_event(Event(event_type=EventType.JOB_START, timestamp=1.0, message="go"))
        assert json.loads(logger.jsonl_file.read_text())["event_type"] == "job_start"
        assert hook.stats.sink_errors.get("data_juicer_adapter") == 1
    finally:
        adapter.uninstrument()


def _raise(*args, **kwargs):
    raise RuntimeError("broken sink")


def test_instrumented_process_without_data_juicer_runs_normally():
    result = subprocess.run(
        [*dj_command(Path("x"), "j")[:3], sys.executable, "-c", "print('fine')"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.strip() == "fine", result.stderr


def test_a_resumed_jobs_duration_spans_its_runs_live_and_offline(jobs):
    """The live metric of the resumed run and the snapshot of both runs: one duration,
    from the first run's start."""
    resumed, first = jobs["resumed"], jobs["failed"]
    timing = resumed.snapshot["timing"]
    assert timing["start_time"] == first.snapshot["timing"]["start_time"]
    live = any_sample(samples(resumed.metrics), "dj_job_duration_seconds", job_id="failing1")
    assert live is not None and live == timing["duration_seconds"]
    assert timing["end_time"] - timing["start_time"] == live
