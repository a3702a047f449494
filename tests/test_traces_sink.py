"""Spans job -> partition -> op, received by a loopback OTLP/HTTP receiver (protobuf)."""

from __future__ import annotations

import json

import pytest
from support import (
    OPS,
    T0,
    OtlpReceiver,
    SpanView,
    by_id,
    drive_job,
    read_events,
    read_traces_file,
)

from dj_observe.hook import ObservabilityHook
from dj_observe.ids import job_span_id, op_span_id, partition_span_id, trace_id_hex
from dj_observe.sinks.traces import MAX_MESSAGE_CHARS

CLEAN, LENGTH = OPS
LONG_ERROR = "ValueError: " + "x" * 9988  # 10,000 characters
ERROR = 2  # OTLP STATUS_CODE_ERROR
TRACES_ONLY = {"metrics": {"enabled": False}}


def otlp_config(receiver: OtlpReceiver, **tracing) -> dict:
    return {
        **TRACES_ONLY,
        "tracing": {"exporter": "otlp", "endpoint": receiver.url + "/v1/traces", **tracing},
    }


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


def hexid(span_id: int) -> str:
    return f"{span_id:016x}"


class Run:
    """A driven job's spans as received, and its event log."""

    def __init__(self, spans: list[SpanView], events: list[dict]) -> None:
        self.spans = spans
        self.events = events

    def named(self, name: str) -> SpanView:
        [span] = [span for span in self.spans if span.name == name]
        return span

    def op(self, partition: int, name: str) -> SpanView:
        [span] = [
            span
            for span in self.spans
            if span.name == name and span.attributes.get("dj.partition.id") == partition
        ]
        return span

    def event_time(self, kind: str, partition: int | None = None, op: str | None = None):
        [ts] = [
            event["timestamp"]
            for event in self.events
            if event["event_type"] == kind
            and (partition is None or event.get("partition_id") == partition)
            and (op is None or event.get("operation_name") == op)
        ]
        return ts


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> Run:
    """Three partitions, two ops; partition 1 fails at its second op with a 10,000-char error."""
    work_dir = tmp_path_factory.mktemp("traces") / "job1"
    with OtlpReceiver() as receiver:
        with ObservabilityHook(
            otlp_config(receiver), work_dir=work_dir, job_id="job1", pipeline="demo"
        ) as hook:
            drive_job(hook, partitions=3, failed={1: 1}, error=LONG_ERROR)
        spans = receiver.wait_for_spans(10)
    return Run(spans, read_events(work_dir))


def test_the_receiver_gets_every_span_once(failed_run):
    assert len(failed_run.spans) == 10  # 1 job + 3 partitions + 6 ops
    assert len(by_id(failed_run.spans)) == 10


def test_span_names(failed_run):
    assert sorted(span.name for span in failed_run.spans) == sorted(
        ["job job1", "partition 0", "partition 1", "partition 2", *OPS * 3]
    )


def test_all_spans_share_the_trace_id_derived_from_the_job_id(failed_run):
    assert {span.trace_id for span in failed_run.spans} == {trace_id_hex("job1")}


def test_one_job_span_without_parent(failed_run):
    roots = [span for span in failed_run.spans if not span.parent_span_id]

    assert [(span.name, span.span_id) for span in roots] == [
        ("job job1", hexid(job_span_id("job1", 0)))
    ]


def test_partition_spans_are_children_of_the_job_span(failed_run):
    job = failed_run.named("job job1")
    for pid in range(3):
        span = failed_run.named(f"partition {pid}")
        assert span.span_id == hexid(partition_span_id("job1", pid, 1))
        assert span.parent_span_id == job.span_id


def test_op_spans_are_children_of_their_partition_span(failed_run):
    for pid in range(3):
        partition = failed_run.named(f"partition {pid}")
        for idx, name in enumerate(OPS):
            span = failed_run.op(pid, name)
            assert span.span_id == hexid(op_span_id("job1", pid, idx, 1))
            assert span.parent_span_id == partition.span_id


def test_op_span_times_are_the_events_timestamps(failed_run):
    for pid, name, end_kind in [(0, CLEAN, "op_complete"), (1, LENGTH, "op_failed")]:
        span = failed_run.op(pid, name)
        assert span.start == ns(failed_run.event_time("op_start", pid, name))
        assert span.end == ns(failed_run.event_time(end_kind, pid, name))


def test_partition_span_times_are_the_events_timestamps(failed_run):
    for pid, end_kind in [(0, "partition_complete"), (1, "partition_failed")]:
        span = failed_run.named(f"partition {pid}")
        assert span.start == ns(failed_run.event_time("partition_start", pid))
        assert span.end == ns(failed_run.event_time(end_kind, pid))


def test_job_span_starts_at_job_start(failed_run):
    assert failed_run.named("job job1").start == ns(failed_run.event_time("job_start"))


def test_job_span_ends_at_the_jobs_terminal_event(failed_run):
    """job_failed comes 11 s after the last partition ended; the span ends with it."""
    assert failed_run.named("job job1").end == ns(failed_run.event_time("job_failed"))


def test_failed_job_span_carries_the_jobs_error_message(failed_run):
    span = failed_run.named("job job1")
    [(_, _, attributes)] = [event for event in span.events if event[0] == "exception"]

    assert dict(attributes)["exception.message"] == "1 partition(s) failed"


def test_op_span_attributes(failed_run):
    assert failed_run.op(0, CLEAN).attributes == {
        "dj.job.id": "job1",
        "dj.pipeline": "demo",
        "dj.partition.id": 0,
        "dj.op.name": CLEAN,
        "dj.op.index": 0,
        "dj.attempt": 1,
        "dj.rows.in": 100,
        "dj.rows.out": 90,
        "cicd.pipeline.result": "success",
    }


def test_failed_op_span_attributes(failed_run):
    attributes = failed_run.op(1, LENGTH).attributes

    assert attributes["cicd.pipeline.result"] == "failure"
    assert (attributes["dj.partition.id"], attributes["dj.op.index"]) == (1, 1)


def test_partition_span_attributes(failed_run):
    attributes = failed_run.named("partition 2").attributes

    assert {key: attributes[key] for key in attributes if key != "dj.partition.samples"} == {
        "dj.job.id": "job1",
        "dj.pipeline": "demo",
        "dj.partition.id": 2,
        "dj.attempt": 1,
        "cicd.pipeline.result": "success",
    }


def test_job_span_attributes(failed_run):
    attributes = failed_run.named("job job1").attributes

    assert {key: attributes[key] for key in ("dj.job.id", "dj.pipeline", "dj.attempt")} == {
        "dj.job.id": "job1",
        "dj.pipeline": "demo",
        "dj.attempt": 0,
    }
    assert attributes["cicd.pipeline.result"] == "failure"


def test_successful_spans_are_not_in_error(failed_run):
    assert failed_run.op(0, CLEAN).status_code != ERROR
    assert failed_run.named("partition 0").status_code != ERROR


@pytest.mark.parametrize("which", ["op", "partition", "job"])
def test_failed_spans_have_status_error(failed_run, which):
    span = {
        "op": lambda: failed_run.op(1, LENGTH),
        "partition": lambda: failed_run.named("partition 1"),
        "job": lambda: failed_run.named("job job1"),
    }[which]()

    assert span.status_code == ERROR


def test_failed_op_span_has_an_exception_event_with_a_bounded_message(failed_run):
    span = failed_run.op(1, LENGTH)
    [(_, time, attributes)] = [event for event in span.events if event[0] == "exception"]
    attributes = dict(attributes)

    assert len(attributes["exception.message"]) <= MAX_MESSAGE_CHARS <= 4096
    assert LONG_ERROR.startswith(attributes["exception.message"])
    assert len(attributes["exception.message"]) >= 1000
    assert attributes["exception.type"] == "ValueError"
    assert time == span.end


def test_failed_partition_span_has_an_exception_event(failed_run):
    span = failed_run.named("partition 1")
    [(_, _, attributes)] = [event for event in span.events if event[0] == "exception"]

    assert LONG_ERROR.startswith(dict(attributes)["exception.message"])


def test_op_running_when_its_partition_fails_gets_an_error_span(job_dir, otlp_receiver):
    """Data-Juicer writes no op_failed: the running op's span ends, in error, with its partition."""
    with ObservabilityHook(otlp_config(otlp_receiver), work_dir=job_dir, job_id="job1") as hook:
        hook.job_start(timestamp=T0)
        hook.partition_start(0, timestamp=T0 + 1)
        hook.op_start(0, CLEAN, 0, timestamp=T0 + 2)
        hook.partition_failed(0, "KeyError: 'text'", timestamp=T0 + 3)
        hook.job_failed("partition 0 failed", timestamp=T0 + 4)
    run = Run(otlp_receiver.wait_for_spans(3), read_events(job_dir))

    span = run.op(0, CLEAN)
    assert (span.start, span.end, span.status_code) == (ns(T0 + 2), ns(T0 + 3), ERROR)
    assert span.parent_span_id == run.named("partition 0").span_id
    assert span.attributes["cicd.pipeline.result"] == "failure"


def test_checkpoint_saves_are_events_on_the_partition_span(failed_run):
    span = failed_run.named("partition 0")
    saves = [event for event in span.events if event[0] == "checkpoint_save"]

    assert saves == [
        (
            "checkpoint_save",
            ns(failed_run.event_time("checkpoint_save", 0, name)),
            (("dj.op.index", idx), ("dj.op.name", name)),
        )
        for idx, name in enumerate(OPS)
    ]


def test_service_name_is_on_the_resource(failed_run):
    assert {span.service_name for span in failed_run.spans} == {"dj-observe"}


def test_service_name_is_configurable(job_dir, otlp_receiver):
    with ObservabilityHook(
        otlp_config(otlp_receiver, service_name="my-pipeline"), work_dir=job_dir, job_id="job1"
    ) as hook:
        drive_job(hook, partitions=1)

    assert {span.service_name for span in otlp_receiver.wait_for_spans(4)} == {"my-pipeline"}


def resume_failed_partition(hook) -> None:
    """After ``drive_job(failed={1: 1})``: restart the job, reload partition 1's checkpoint,
    re-run its failed op and finish the job."""
    restart = T0 + 200
    hook.emit("job_restart", timestamp=restart)
    hook.partition_start(1, timestamp=restart + 1)
    hook.checkpoint_load(1, CLEAN, 0, "/ckpt/p1_op0.parquet", timestamp=restart + 1.5)
    hook.op_start(1, LENGTH, 1, timestamp=restart + 2)
    hook.op_complete(
        1, LENGTH, 1, timestamp=restart + 3, duration=1.0, input_rows=90, output_rows=80
    )
    hook.partition_complete(1, timestamp=restart + 4)
    hook.job_complete(timestamp=restart + 5)


@pytest.fixture
def resumed_run(job_dir, otlp_receiver) -> Run:
    with ObservabilityHook(
        otlp_config(otlp_receiver), work_dir=job_dir, job_id="job1", pipeline="demo"
    ) as hook:
        drive_job(hook, partitions=3, failed={1: 1})
        resume_failed_partition(hook)
    return Run(otlp_receiver.wait_for_spans(13), read_events(job_dir))


def test_a_resumed_job_adds_spans_for_its_new_attempt_only(resumed_run):
    assert len(resumed_run.spans) == 13  # the first run's 10 + job, partition 1, its op
    assert len(by_id(resumed_run.spans)) == 13


def test_a_resumed_job_has_a_second_job_span_linked_to_the_first(resumed_run):
    jobs = sorted(
        (span for span in resumed_run.spans if not span.parent_span_id),
        key=lambda span: span.attributes["dj.attempt"],
    )

    assert [span.span_id for span in jobs] == [
        hexid(job_span_id("job1", 0)),
        hexid(job_span_id("job1", 1)),
    ]
    assert jobs[1].links == (
        (trace_id_hex("job1"), jobs[0].span_id, (("dj.link", "previous_attempt"),)),
    )
    assert jobs[1].attributes["cicd.pipeline.result"] == "success"
    assert {span.trace_id for span in resumed_run.spans} == {trace_id_hex("job1")}


def test_the_rerun_partition_span_belongs_to_the_second_job_span(resumed_run):
    reruns = [
        span
        for span in resumed_run.spans
        if span.name == "partition 1" and span.attributes["dj.attempt"] == 2
    ]

    assert [(span.span_id, span.parent_span_id) for span in reruns] == [
        (hexid(partition_span_id("job1", 1, 2)), hexid(job_span_id("job1", 1)))
    ]


def test_the_rerun_op_span_is_a_new_attempt(resumed_run):
    runs = sorted(
        (
            span
            for span in resumed_run.spans
            if span.name == LENGTH and span.attributes["dj.partition.id"] == 1
        ),
        key=lambda span: span.attributes["dj.attempt"],
    )

    assert [(span.attributes["dj.attempt"], span.status_code != ERROR) for span in runs] == [
        (1, False),
        (2, True),
    ]
    assert runs[1].span_id == hexid(op_span_id("job1", 1, 1, 2))
    assert runs[1].parent_span_id == hexid(partition_span_id("job1", 1, 2))


def test_checkpoint_loads_are_events_on_the_partition_span(resumed_run):
    [span] = [
        span
        for span in resumed_run.spans
        if span.name == "partition 1" and span.attributes["dj.attempt"] == 2
    ]

    assert [event[0] for event in span.events] == ["checkpoint_load"]


def test_file_exporter_writes_the_same_spans_as_otlp(tmp_path, failed_run):
    work_dir = tmp_path / "job1"
    with ObservabilityHook(
        {**TRACES_ONLY, "tracing": {"exporter": "file"}},
        work_dir=work_dir,
        job_id="job1",
        pipeline="demo",
    ) as hook:
        drive_job(hook, partitions=3, failed={1: 1}, error=LONG_ERROR)

    path = work_dir / "traces.otlp.jsonl"
    assert all(isinstance(json.loads(line), dict) for line in path.read_text().splitlines())
    from_file = {span.span_id: span.comparable() for span in read_traces_file(path)}
    from_otlp = {span.span_id: span.comparable() for span in failed_run.spans}
    assert set(from_file) == set(from_otlp)
    assert from_file == from_otlp


def test_file_exporter_path_is_configurable(tmp_path):
    path = tmp_path / "spans" / "out.jsonl"
    with ObservabilityHook(
        {**TRACES_ONLY, "tracing": {"exporter": "file", "file": str(path)}},
        work_dir=tmp_path / "job1",
        job_id="job1",
    ) as hook:
        drive_job(hook, partitions=1)

    assert len(read_traces_file(path)) == 4
    assert not (tmp_path / "job1" / "traces.otlp.jsonl").exists()


def test_console_exporter_writes_spans_to_stderr(job_dir, capsys):
    with ObservabilityHook(
        {**TRACES_ONLY, "tracing": {"exporter": "console"}}, work_dir=job_dir, job_id="job1"
    ) as hook:
        drive_job(hook, partitions=1)

    captured = capsys.readouterr()
    assert '"name": "job job1"' in captured.err
    assert f"0x{trace_id_hex('job1')}" in captured.err
    assert "job job1" not in captured.out


def test_tracing_none_exports_nothing(job_dir):
    with ObservabilityHook(
        {**TRACES_ONLY, "tracing": {"exporter": "none"}}, work_dir=job_dir, job_id="job1"
    ) as hook:
        drive_job(hook, partitions=1)

    assert not (job_dir / "traces.otlp.jsonl").exists()
    assert [sink.name for sink in hook.dispatcher.sinks] == []
