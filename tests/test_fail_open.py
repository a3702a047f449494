"""Fail-open: a sink that fails never raises into the job nor stalls it; it is counted and
logged once, and the other sinks go on.  Every test bounds the time it lets the hook take."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from support import LOOPBACK, drive_job, finishes_within, free_port, read_events

from dj_observe.hook import ObservabilityHook
from dj_observe.sinks.memory import InMemorySink
from dj_observe.state import Status

EXPORT_TIMEOUT = 1.0
"""Seconds an OTLP export may take in these tests."""
CLOSE_BOUND = 2 * EXPORT_TIMEOUT + 2
"""How long close() may take when the collector is down or stuck: the export timeout, twice
(one export in flight, one final), plus slack for a loaded machine."""


def otlp_down_config(endpoint: str) -> dict:
    return {
        "metrics": {"enabled": False},
        "tracing": {"exporter": "otlp", "endpoint": endpoint, "export_timeout": EXPORT_TIMEOUT},
    }


def trace_errors(hook) -> int:
    """Failures counted for trace exporters (keys ``traces:<exporter>``)."""
    return sum(n for sink, n in hook.stats.sink_errors.items() if sink.startswith("traces:"))


class ExplodingSink:
    """A custom sink that raises on every event."""

    name = "exploding"

    def on_change(self, change, feed):
        raise RuntimeError("sink bug")

    def flush(self, timeout=None):
        raise RuntimeError("flush bug")

    def close(self):
        raise RuntimeError("close bug")


# -- metrics endpoint ---------------------------------------------------------------------------


@pytest.fixture
def taken_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen(1)
        yield holder.getsockname()[1]


def test_metrics_port_in_use_is_counted_and_the_hook_works(job_dir, taken_port):
    with ObservabilityHook(
        {"metrics": {"port": taken_port}, "tracing": {"enabled": False}, "background": False},
        work_dir=job_dir,
        job_id="job1",
    ) as hook:
        drive_job(hook, partitions=2)

    assert hook.stats.sink_errors == {"metrics_endpoint": 1}
    assert hook.metrics_url is None
    assert len(read_events(job_dir)) == 18
    labels = {"job_id": "job1", "pipeline": "", "state": "completed"}
    assert hook.metrics.registry.get_sample_value("dj_job_status", labels) == 1


# -- OTLP collector down, broken or stuck ---------------------------------------------------------


def test_collector_down_the_job_completes_and_close_is_bounded(job_dir):
    hook = ObservabilityHook(
        otlp_down_config(f"http://{LOOPBACK}:{free_port()}/v1/traces"),
        work_dir=job_dir,
        job_id="job1",
    )

    assert finishes_within(5, lambda: drive_job(hook, partitions=3))
    assert finishes_within(CLOSE_BOUND, hook.close)
    assert hook.feed().job_status == Status.COMPLETED
    assert trace_errors(hook) > 0


def test_collector_answering_500_is_counted(job_dir, make_receiver):
    receiver = make_receiver(status=500)
    hook = ObservabilityHook(
        otlp_down_config(receiver.url + "/v1/traces"), work_dir=job_dir, job_id="job1"
    )
    drive_job(hook, partitions=2)

    assert finishes_within(CLOSE_BOUND, hook.close)
    assert len(receiver.requests) >= 1
    assert trace_errors(hook) >= 1


@pytest.mark.parametrize("background", [True, False])
def test_stuck_collector_never_blocks_emit(job_dir, make_receiver, background):
    receiver = make_receiver(hang=30)
    hook = ObservabilityHook(
        {**otlp_down_config(receiver.url + "/v1/traces"), "background": background},
        work_dir=job_dir,
        job_id="job1",
    )

    def thousand_emits() -> None:
        hook.job_start()
        for pid in range(499):
            hook.partition_start(pid)
            hook.partition_complete(pid)
        hook.job_complete()

    try:
        assert finishes_within(5, thousand_emits)
    finally:
        assert finishes_within(CLOSE_BOUND, hook.close)
    assert len(read_events(job_dir)) == 1000


def test_stuck_collector_close_is_bounded_by_the_export_timeout(job_dir, make_receiver):
    """Thousands of spans still queued when the collector hangs: close() gives up on them
    after about the export timeout, it does not wait export_timeout per batch."""
    receiver = make_receiver(hang=30)
    hook = ObservabilityHook(
        otlp_down_config(receiver.url + "/v1/traces"), work_dir=job_dir, job_id="job1"
    )
    assert finishes_within(10, lambda: drive_job(hook, partitions=3000, ops=(), end=True))

    assert finishes_within(CLOSE_BOUND, hook.close)
    assert trace_errors(hook) >= 1


def test_stuck_collector_flush_honours_its_timeout(job_dir, make_receiver):
    """flush(timeout) runs on the executor's thread: it must not wait out every queued batch."""
    receiver = make_receiver(hang=30)
    hook = ObservabilityHook(
        otlp_down_config(receiver.url + "/v1/traces"), work_dir=job_dir, job_id="job1"
    )
    try:
        assert finishes_within(10, lambda: drive_job(hook, partitions=3000, ops=(), end=True))

        assert finishes_within(CLOSE_BOUND, lambda: hook.flush(timeout=EXPORT_TIMEOUT))
    finally:
        finishes_within(CLOSE_BOUND, hook.close)


# -- event log on a path that cannot be written ---------------------------------------------------


def test_unopenable_event_log_is_counted_and_the_other_sinks_go_on(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("a regular file")
    sink = InMemorySink()
    with ObservabilityHook(
        {"event_log_path": str(not_a_dir / "events.jsonl"), "tracing": {"enabled": False}},
        job_id="job1",
        sinks=[sink],
    ) as hook:
        assert finishes_within(5, lambda: drive_job(hook, partitions=2))
        hook.flush()

    assert hook.stats.sink_errors["event_log"] == 18
    assert len(sink.events) == 18
    labels = {"job_id": "job1", "pipeline": "", "state": "completed"}
    assert hook.metrics.registry.get_sample_value("dj_job_status", labels) == 1
    assert not_a_dir.read_text() == "a regular file"


def test_full_disk_is_counted_and_the_other_sinks_go_on():
    """/dev/full: opening works, every write fails with ENOSPC."""
    sink = InMemorySink()
    with ObservabilityHook(
        {"event_log_path": "/dev/full", "tracing": {"enabled": False}},
        job_id="job1",
        sinks=[sink],
    ) as hook:
        assert finishes_within(5, lambda: drive_job(hook, partitions=2))
        hook.flush()
        assert hook.stats.sink_errors["event_log"] == 18

    assert len(sink.events) == 18
    labels = {"job_id": "job1", "pipeline": "", "state": "completed"}
    assert hook.metrics.registry.get_sample_value("dj_job_status", labels) == 1


# -- a custom sink that raises --------------------------------------------------------------------


def test_raising_sink_does_not_stop_the_other_sinks(job_dir):
    sink = InMemorySink()
    with ObservabilityHook(
        {"tracing": {"enabled": False}},
        work_dir=job_dir,
        job_id="job1",
        sinks=[ExplodingSink(), sink],
    ) as hook:
        for pid in range(100):
            hook.partition_start(pid)
        hook.flush()

    assert [event.partition_id for event in sink.events] == list(range(100))
    assert len(read_events(job_dir)) == 100
    labels = {"job_id": "job1", "pipeline": "", "state": "running"}
    assert hook.metrics.registry.get_sample_value("dj_partitions", labels) == 100


def test_raising_sink_errors_are_counted(job_dir):
    with ObservabilityHook(
        {"tracing": {"enabled": False}, "background": False},
        work_dir=job_dir,
        job_id="job1",
        sinks=[ExplodingSink()],
    ) as hook:
        for pid in range(100):
            hook.partition_start(pid)

    assert hook.stats.sink_errors["exploding"] == 100 + 1  # every event, and close()


def test_raising_sink_is_logged_once(job_dir, warnings_logged):
    with ObservabilityHook(
        {"tracing": {"enabled": False}, "background": False},
        work_dir=job_dir,
        job_id="job1",
        sinks=[ExplodingSink()],
    ) as hook:
        for pid in range(100):
            hook.partition_start(pid)
        hook.flush()

    about_it = [message for message in warnings_logged if "'exploding'" in message]
    assert len(about_it) == 1
    assert "RuntimeError: sink bug" in about_it[0]


def test_flush_and_close_of_a_raising_sink_do_not_raise(job_dir):
    hook = ObservabilityHook(
        {"tracing": {"enabled": False}}, work_dir=job_dir, job_id="job1", sinks=[ExplodingSink()]
    )
    hook.job_start()
    hook.flush()
    hook.close()

    assert Path(job_dir / "events.jsonl").read_bytes().count(b"\n") == 1
