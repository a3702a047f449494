"""Live equals replay: an event log replayed through the same sinks gives the same metrics
and the same spans; and the ``dj-observe replay`` command line."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from support import (
    OPS,
    T0,
    drive_job,
    free_port,
    read_traces_file,
    samples,
    scrape,
    wait_until,
    without_created,
)

from dj_observe.cli import main
from dj_observe.dispatch import HookStats
from dj_observe.hook import ObservabilityHook
from dj_observe.replay import replay
from dj_observe.sinks.metrics import MetricsSink
from dj_observe.sinks.traces import OtlpJsonFileExporter, TraceSink
from dj_observe.snapshot import create_snapshot
from dj_observe.tracker import JobDirectoryError

CLEAN, LENGTH = OPS
LIVE = {"metrics": {"port": 0}, "tracing": {"exporter": "file"}}


class Live:
    """What a live run produced: its job directory, scraped metrics and spans (by id)."""

    def __init__(self, job_dir: Path, metrics: dict, spans: dict, events: int) -> None:
        self.job_dir = job_dir
        self.metrics = metrics
        self.spans = spans
        self.events = events


def spans_by_id(path: Path) -> dict:
    return {span.span_id: span.comparable() for span in read_traces_file(path)}


def run_live(job_dir: Path, *, resumed: bool = False) -> Live:
    with ObservabilityHook(LIVE, work_dir=job_dir, job_id="job1") as hook:
        drive_job(hook, partitions=3, failed={1: 1})
        if resumed:
            restart = T0 + 200
            hook.emit("job_restart", timestamp=restart)
            hook.partition_start(1, timestamp=restart + 1)
            hook.checkpoint_load(1, CLEAN, 0, "/ckpt/p1_op0.parquet", timestamp=restart + 1.5)
            hook.op_start(1, LENGTH, 1, timestamp=restart + 2)
            hook.op_complete(
                1, LENGTH, 1, timestamp=restart + 3, duration=1.0, input_rows=90, output_rows=80
            )
            hook.checkpoint_save(1, LENGTH, 1, "/ckpt/p1_op1.parquet", timestamp=restart + 3.5)
            hook.partition_complete(1, timestamp=restart + 4)
            hook.job_complete(timestamp=restart + 5)
        hook.flush()
        metrics = without_created(samples(scrape(hook.metrics_url)))
        events = hook.stats.events_handled
    return Live(job_dir, metrics, spans_by_id(job_dir / "traces.otlp.jsonl"), events)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Live:
    """A live run of a job whose partition 1 fails (read-only)."""
    return run_live(tmp_path_factory.mktemp("live") / "job1")


@pytest.fixture(scope="module")
def live_resumed(tmp_path_factory) -> Live:
    """A live run that fails, restarts and re-runs the failed partition (read-only)."""
    return run_live(tmp_path_factory.mktemp("live_resumed") / "job1", resumed=True)


def replay_api(job_dir: Path, traces: Path) -> dict:
    stats = HookStats()
    metrics = MetricsSink(stats=stats)
    trace_sink = TraceSink([OtlpJsonFileExporter(traces)], stats=stats)
    result = replay(job_dir, [metrics, trace_sink], stats)
    trace_sink.close()
    assert result.job_id == "job1"
    return without_created(samples(generate_latest(metrics.registry).decode()))


# -- the API -------------------------------------------------------------------------------------


@pytest.mark.parametrize("run", ["live", "live_resumed"])
def test_replayed_metrics_equal_the_live_ones(run, request, tmp_path):
    live = request.getfixturevalue(run)

    replayed = replay_api(live.job_dir, tmp_path / "spans.jsonl")

    assert replayed == live.metrics


@pytest.mark.parametrize("run", ["live", "live_resumed"])
def test_replayed_spans_equal_the_live_ones(run, request, tmp_path):
    live = request.getfixturevalue(run)

    replay_api(live.job_dir, tmp_path / "spans.jsonl")

    replayed = spans_by_id(tmp_path / "spans.jsonl")
    assert set(replayed) == set(live.spans)
    assert replayed == live.spans


def test_replay_reports_what_it_read(live, tmp_path):
    stats = HookStats()
    result = replay(live.job_dir, [MetricsSink(stats=stats)], stats)

    assert (result.job_id, result.events, result.stats.skipped_lines) == ("job1", live.events, 0)
    assert stats.events_handled == live.events


def test_replay_of_a_missing_directory_raises(tmp_path):
    with pytest.raises(JobDirectoryError):
        replay(tmp_path / "nope", [MetricsSink()])


def test_replay_of_a_directory_without_a_log_raises(tmp_path):
    with pytest.raises(JobDirectoryError, match="no event log"):
        replay(tmp_path, [MetricsSink()])


@pytest.mark.parametrize("style", ["spec", "data_juicer"])
def test_replay_gives_metrics_to_a_job_that_ran_without_the_hook(make_job, style):
    job_dir = make_job(
        job_id="nohook", partitions=6, failed_partitions={4: 5}, style=style, summary=False
    )
    metrics = MetricsSink()

    replay(job_dir, [metrics])

    snapshot = create_snapshot(job_dir)
    value = metrics.registry.get_sample_value
    labels = {"job_id": "nohook", "pipeline": ""}
    assert value("dj_partitions", {**labels, "state": "completed"}) == 5
    assert value("dj_partitions", {**labels, "state": "failed"}) == 1
    assert value("dj_job_status", {**labels, "state": "failed"}) == 1
    assert snapshot.completed_partitions == 5
    assert value("dj_partitions_failed_total", labels) == 1


# -- the command line ----------------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str, str]:
    stdout, stderr = StringIO(), StringIO()
    code = main(["replay", *argv], stdout=stdout, stderr=stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def test_cli_prints_the_metrics_exposition(live):
    code, out, err = run_cli(str(live.job_dir))

    assert code == 0
    assert without_created(samples(out)) == live.metrics
    assert f"replayed {live.events} events of job job1" in err


def test_cli_traces_file_gets_the_live_spans(live, tmp_path):
    traces = tmp_path / "replayed.jsonl"

    code, _, _ = run_cli(str(live.job_dir), "--traces-file", str(traces))

    assert code == 0
    assert spans_by_id(traces) == live.spans


def test_cli_sends_the_live_spans_to_an_otlp_endpoint(live, otlp_receiver):
    code, _, err = run_cli(
        str(live.job_dir), "--otlp-endpoint", otlp_receiver.url + "/v1/traces", "--timeout", "5"
    )

    assert code == 0, err
    received = {span.span_id: span.comparable() for span in otlp_receiver.wait_for_spans(10)}
    assert received == live.spans


def test_cli_pushes_the_metrics_to_a_pushgateway(tmp_path, pushgateway):
    job_dir = tmp_path / "replay_push"
    with ObservabilityHook(
        {"tracing": {"enabled": False}}, work_dir=job_dir, job_id="replay_push"
    ) as hook:
        drive_job(hook, partitions=2)

    code, out, err = run_cli(str(job_dir), "--pushgateway", pushgateway.url)

    assert code == 0, err
    assert out == ""
    found = wait_until(
        lambda: {
            dict(labels)["state"]: value
            for (name, labels), value in pushgateway.samples().items()
            if name == "dj_job_status" and dict(labels).get("job_id") == "replay_push"
        }
    )
    assert found == {"pending": 0, "running": 0, "completed": 1, "failed": 0}


def test_cli_with_a_pushgateway_down_exits_3_and_counts_the_failures(live):
    code, _, err = run_cli(
        str(live.job_dir), "--pushgateway", f"http://127.0.0.1:{free_port()}", "--timeout", "2"
    )

    assert code == 3
    assert re.search(r"export failures: [1-9][0-9]*$", err.strip())


def test_cli_missing_directory_exits_2_with_one_line(tmp_path):
    code, out, err = run_cli(str(tmp_path / "missing"))

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("dj-observe: error: ")


def test_cli_directory_without_a_log_exits_2(tmp_path):
    code, _, err = run_cli(str(tmp_path))

    assert code == 2
    assert err.startswith("dj-observe: error: ")


def test_a_replay_carries_the_pipeline_the_hook_was_given(tmp_path):
    """``ObservabilityHook(pipeline=...)`` labels the live metrics; the log says so too."""
    job_dir = tmp_path / "job"
    with ObservabilityHook({}, work_dir=job_dir, job_id="job1", pipeline="nightly") as hook:
        hook.job_start()
        hook.job_complete(duration=1.0)
    out = StringIO()
    assert main(["replay", str(job_dir)], stdout=out, stderr=StringIO()) == 0
    assert 'dj_job_status{job_id="job1",pipeline="nightly",state="completed"} 1.0' in out.getvalue()
