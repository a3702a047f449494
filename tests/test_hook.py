"""The hook's public API: emitting, helpers, completed fields, drops, lifecycle, threads."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support import read_events, scrape

from dj_observe.events import Event, EventType
from dj_observe.hook import ObservabilityHook
from dj_observe.sinks.memory import capture_events
from dj_observe.state import Status

QUIET = {"tracing": {"enabled": False}}
"""Event log and metrics only (no traces file): what most tests here look at."""


@pytest.fixture
def hook(job_dir):
    with ObservabilityHook({**QUIET, "background": False}, work_dir=job_dir, job_id="job1") as hook:
        yield hook


def test_emit_by_type_name_writes_the_fields(hook, job_dir):
    hook.emit("op_start", partition_id=2, operation_name="clean_links_mapper", operation_idx=0)
    hook.close()

    [event] = read_events(job_dir)
    assert event["event_type"] == "op_start"
    assert event["partition_id"] == 2
    assert event["operation_name"] == "clean_links_mapper"
    assert event["operation_idx"] == 0


def test_emit_by_event_type_member(hook, job_dir):
    hook.emit(EventType.PARTITION_START, partition_id=5)
    hook.close()

    [event] = read_events(job_dir)
    assert (event["event_type"], event["partition_id"]) == ("partition_start", 5)


def test_emit_a_mapping(hook, job_dir):
    hook.emit({"event_type": "partition_start", "partition_id": 6}, message="from a dict")
    hook.close()

    [event] = read_events(job_dir)
    assert (event["event_type"], event["partition_id"], event["message"]) == (
        "partition_start",
        6,
        "from a dict",
    )


def test_emit_an_event_object(hook, job_dir):
    hook.emit(Event(event_type="partition_complete", partition_id=3, timestamp=1754712060.25))
    hook.close()

    [event] = read_events(job_dir)
    assert (event["event_type"], event["partition_id"], event["timestamp"]) == (
        "partition_complete",
        3,
        1754712060.25,
    )


def test_emit_an_event_object_with_overriding_fields(hook, job_dir):
    hook.emit(Event(event_type="partition_start", partition_id=3), partition_id=4)
    hook.close()

    [event] = read_events(job_dir)
    assert event["partition_id"] == 4


def test_emit_returns_the_normalised_event(hook):
    event = hook.emit("op_start", partition_id="7", operation_name="a", operation_idx="1")

    assert isinstance(event, Event)
    assert (event.event_type, event.partition_id, event.operation_idx) == ("op_start", 7, 1)


def test_emit_completes_timestamp_ids_process_and_thread(hook, job_dir):
    hook.emit("job_start")
    hook.close()

    [event] = read_events(job_dir)
    assert isinstance(event["timestamp"], float)
    assert event["event_id"].startswith("job_start_")
    assert event["job_id"] == "job1"
    assert event["process_id"] == os.getpid()
    assert event["thread_id"] == threading.get_ident()


def test_given_fields_are_not_overwritten(hook, job_dir):
    hook.emit(
        "job_start", timestamp=1754712053.5, event_id="mine", job_id="other", process_id=12345
    )
    hook.close()

    [event] = read_events(job_dir)
    assert (event["timestamp"], event["event_id"], event["job_id"], event["process_id"]) == (
        1754712053.5,
        "mine",
        "other",
        12345,
    )


def test_event_ids_are_unique(hook, job_dir):
    for _ in range(100):
        hook.emit("op_start", partition_id=0, operation_name="a", operation_idx=0)
    hook.close()

    assert len({event["event_id"] for event in read_events(job_dir)}) == 100


def test_unknown_event_types_are_kept(hook, job_dir):
    hook.emit("my_custom_event", metadata={"k": 1})
    hook.close()

    [event] = read_events(job_dir)
    assert event["event_type"] == "my_custom_event"
    assert event["metadata"] == {"k": 1}


def test_lines_keep_data_juicers_key_order_and_extra_fields_come_after(hook, job_dir):
    hook.emit("op_complete", my_field=1, operation_name="a", partition_id=0, status="success")
    hook.emit("op_complete", status="success", partition_id=1, operation_name="b")
    hook.close()

    first, second = (
        json.loads(line) for line in (job_dir / "events.jsonl").read_bytes().splitlines()
    )
    known = ["event_type", "timestamp", "event_id", "job_id", "partition_id", "operation_name"]
    assert list(first)[:6] == list(second)[:6] == known
    assert list(first)[-1] == "my_field" and "my_field" not in second


def test_values_json_cannot_hold_are_logged_as_text(hook, job_dir):
    hook.emit("job_start", metadata={"output": Path("/data/out")})
    hook.emit("custom", where=Path("/data/in"))
    hook.close()

    start, custom = read_events(job_dir)
    assert start["metadata"]["output"] == "/data/out"
    assert custom["where"] == "/data/in"


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda h: h.job_start(), {"event_type": "job_start"}),
        (
            lambda h: h.job_complete(duration=12.5),
            {"event_type": "job_complete", "status": "completed", "duration": 12.5},
        ),
        (
            lambda h: h.job_failed("boom"),
            {"event_type": "job_failed", "status": "failed", "error_message": "boom"},
        ),
        (lambda h: h.partition_start(3), {"event_type": "partition_start", "partition_id": 3}),
        (
            lambda h: h.partition_complete(3),
            {"event_type": "partition_complete", "partition_id": 3},
        ),
        (
            lambda h: h.partition_failed(3, "ValueError: bad"),
            {
                "event_type": "partition_failed",
                "partition_id": 3,
                "status": "failed",
                "error_message": "ValueError: bad",
            },
        ),
        (
            lambda h: h.op_start(3, "clean_links_mapper", 0),
            {
                "event_type": "op_start",
                "partition_id": 3,
                "operation_name": "clean_links_mapper",
                "operation_idx": 0,
            },
        ),
        (
            lambda h: h.op_complete(
                3, "clean_links_mapper", 0, duration=0.5, input_rows=100, output_rows=97
            ),
            {
                "event_type": "op_complete",
                "partition_id": 3,
                "operation_name": "clean_links_mapper",
                "operation_idx": 0,
                "status": "success",
                "duration": 0.5,
                "input_rows": 100,
                "output_rows": 97,
            },
        ),
        (
            lambda h: h.op_failed(3, "clean_links_mapper", 0, "KeyError: text"),
            {
                "event_type": "op_failed",
                "partition_id": 3,
                "operation_name": "clean_links_mapper",
                "operation_idx": 0,
                "status": "failed",
                "error_message": "KeyError: text",
            },
        ),
        (
            lambda h: h.checkpoint_save(3, "clean_links_mapper", 0, "/ckpt/p3.parquet"),
            {
                "event_type": "checkpoint_save",
                "partition_id": 3,
                "operation_name": "clean_links_mapper",
                "operation_idx": 0,
                "checkpoint_path": "/ckpt/p3.parquet",
            },
        ),
        (
            lambda h: h.checkpoint_load(3, "clean_links_mapper", 0, "/ckpt/p3.parquet"),
            {
                "event_type": "checkpoint_load",
                "partition_id": 3,
                "operation_name": "clean_links_mapper",
                "operation_idx": 0,
                "checkpoint_path": "/ckpt/p3.parquet",
            },
        ),
    ],
    ids=[
        "job_start",
        "job_complete",
        "job_failed",
        "partition_start",
        "partition_complete",
        "partition_failed",
        "op_start",
        "op_complete",
        "op_failed",
        "checkpoint_save",
        "checkpoint_load",
    ],
)
def test_helper_writes_its_event(hook, job_dir, call, expected):
    call(hook)
    hook.close()

    [event] = read_events(job_dir)
    assert {key: event.get(key) for key in expected} == expected
    assert event["message"]


def test_helpers_accept_extra_fields(hook, job_dir):
    hook.partition_start(1, metadata={"sample_count": 500}, message="custom")
    hook.close()

    [event] = read_events(job_dir)
    assert (event["metadata"], event["message"]) == ({"sample_count": 500}, "custom")


def test_event_without_type_is_dropped_counted_and_not_written(hook, job_dir):
    result = hook.emit({"partition_id": 1, "message": "no type"})
    hook.close()

    assert result is None
    assert hook.stats.events_dropped == 1
    assert hook.stats.events_handled == 0
    assert not (job_dir / "events.jsonl").read_bytes()


def test_event_with_empty_type_is_dropped(hook, job_dir):
    assert hook.emit("") is None
    hook.close()

    assert hook.stats.events_dropped == 1
    assert not (job_dir / "events.jsonl").read_bytes()


def test_fold_follows_the_emitted_events(hook):
    hook.job_start(metadata={"num_partitions": 2})
    hook.partition_start(0)
    hook.partition_complete(0)
    hook.partition_start(1)

    feed = hook.feed()
    assert feed.state.job_id == "job1"
    assert feed.counts()[Status.COMPLETED] == 1
    assert feed.counts()[Status.IN_PROGRESS] == 1
    assert feed.job_status == Status.IN_PROGRESS


def test_flush_makes_background_delivery_visible(job_dir):
    with ObservabilityHook(QUIET, work_dir=job_dir, job_id="job1") as hook:
        for pid in range(200):
            hook.partition_start(pid)
        hook.flush()

        assert hook.feed().state.events_applied == 200
        assert hook.stats.events_handled == 200


def test_capture_events_records_what_is_emitted_inside_the_block(hook):
    hook.partition_start(0)
    with capture_events(hook) as sink:
        hook.partition_start(1)
        hook.partition_complete(1)
    hook.partition_complete(0)

    assert [(e.event_type, e.partition_id) for e in sink.events] == [
        ("partition_start", 1),
        ("partition_complete", 1),
    ]


def test_context_manager_closes_the_hook(job_dir):
    with ObservabilityHook(
        {"metrics": {"port": 0}, "tracing": {"exporter": "file"}}, work_dir=job_dir, job_id="job1"
    ) as hook:
        url = hook.metrics_url
        hook.job_start(timestamp=1754712053.5)
        hook.job_complete(timestamp=1754712063.5)
        assert "dj_job_status" in scrape(url)

    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
    assert hook.event_log is not None and hook.event_log.fd is None
    assert (job_dir / "traces.otlp.jsonl").read_text().strip()  # spans flushed on close


def test_close_is_idempotent(job_dir):
    hook = ObservabilityHook({"metrics": {"port": 0}}, work_dir=job_dir, job_id="job1")
    hook.job_start(timestamp=1754712053.5)
    hook.job_complete(timestamp=1754712063.5)
    hook.close()
    traces = (job_dir / "traces.otlp.jsonl").read_text()
    hook.close()

    assert hook.stats.sink_errors == {}
    assert (job_dir / "traces.otlp.jsonl").read_text() == traces
    assert len(read_events(job_dir)) == 2


def test_eight_threads_emitting_500_events_each_lose_nothing(job_dir):
    """Every line whole and parseable, the count exact, and the fold saw every event."""
    threads, per_thread = 8, 500
    with ObservabilityHook(QUIET, work_dir=job_dir, job_id="job1") as hook:
        barrier = threading.Barrier(threads)

        def work(worker: int) -> None:
            barrier.wait(5)
            for i in range(per_thread):
                hook.op_start(worker, f"op_{i % 5}", i % 5, metadata={"worker": worker, "i": i})

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        hook.flush()
        state = hook.feed().state

    data = (job_dir / "events.jsonl").read_bytes()
    assert data.endswith(b"\n")
    lines = data.splitlines()
    assert len(lines) == threads * per_thread
    parsed = [json.loads(line) for line in lines]
    assert {(e["metadata"]["worker"], e["metadata"]["i"]) for e in parsed} == {
        (w, i) for w in range(threads) for i in range(per_thread)
    }
    assert state.events_applied == threads * per_thread
    assert state.event_counts == {"op_start": threads * per_thread}
    assert hook.stats.events_handled == threads * per_thread


def test_a_field_of_the_wrong_type_is_logged_as_given(hook, job_dir):
    """An event the normaliser cannot read whole is still written with every field."""
    hook.emit("op_start", partition_id="not a number", operation_name="a", metadata=[1, 2])
    hook.close()

    [event] = read_events(job_dir)
    assert event["partition_id"] == "not a number" and event["metadata"] == [1, 2]
