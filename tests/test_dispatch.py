"""The dispatcher: fold each event, hand the change to every sink, isolate failures."""

from __future__ import annotations

import threading

from support import finishes_within

from dj_observe.dispatch import Dispatcher, HookStats, QueuedDelivery
from dj_observe.events import Event
from dj_observe.sinks.memory import InMemorySink
from dj_observe.state import Status

T = 1754712053.5


def event(kind: str, **fields) -> Event:
    return Event(event_type=kind, job_id=fields.pop("job_id", "job1"), **fields)


class Raising:
    name = "raising"

    def on_change(self, change, feed):
        raise ValueError("bad sink")

    def flush(self, timeout=None):
        raise ValueError("bad flush")

    def close(self):
        raise ValueError("bad close")


class Blocking:
    """A sink stuck until ``release`` is set."""

    name = "blocking"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.seen = 0

    def on_change(self, change, feed):
        self.release.wait(10)
        self.seen += 1

    def flush(self, timeout=None):
        pass

    def close(self):
        pass


def test_every_sink_gets_every_change_in_order():
    first, second = InMemorySink(), InMemorySink()
    dispatcher = Dispatcher([first, second])
    for pid in range(5):
        dispatcher.dispatch(event("partition_start", partition_id=pid, timestamp=T + pid), "job1")

    assert [e.partition_id for e in first.events] == [0, 1, 2, 3, 4]
    assert [e.partition_id for e in second.events] == [0, 1, 2, 3, 4]


def test_a_raising_sink_is_isolated_and_counted():
    stats = HookStats()
    sink = InMemorySink()
    dispatcher = Dispatcher([Raising(), sink], stats)
    for pid in range(3):
        dispatcher.dispatch(event("partition_start", partition_id=pid), "job1")
    dispatcher.flush()
    dispatcher.close()

    assert len(sink.events) == 3
    assert stats.sink_errors == {"raising": 5}  # three events, flush and close
    assert stats.events_handled == 3


def test_changes_describe_partition_transitions():
    sink = InMemorySink()
    dispatcher = Dispatcher([sink])
    dispatcher.dispatch(event("job_start", timestamp=T, metadata={"num_partitions": 1}), "job1")
    dispatcher.dispatch(event("partition_start", partition_id=0, timestamp=T + 1), "job1")
    dispatcher.dispatch(event("partition_complete", partition_id=0, timestamp=T + 2), "job1")

    start, running, done = sink.changes
    assert (running.partition_before, running.partition_after) == (
        Status.NOT_STARTED,
        Status.IN_PROGRESS,
    )
    assert (done.partition_before, done.partition_after) == (Status.IN_PROGRESS, Status.COMPLETED)
    assert done.partition_ended and not running.partition_ended
    assert start.job_after == Status.IN_PROGRESS


def test_changes_describe_op_transitions():
    sink = InMemorySink()
    dispatcher = Dispatcher([sink])
    dispatcher.dispatch(event("partition_start", partition_id=0, timestamp=T), "job1")
    op = {"partition_id": 0, "operation_name": "a", "operation_idx": 0}
    dispatcher.dispatch(event("op_start", timestamp=T + 1, **op), "job1")
    dispatcher.dispatch(event("op_failed", timestamp=T + 2, error_message="x", **op), "job1")

    _, started, failed = sink.changes
    assert (started.op_before, started.op_after, started.op_ended) == (
        Status.NOT_STARTED,
        Status.IN_PROGRESS,
        False,
    )
    assert (failed.op_before, failed.op_after, failed.op_ended) == (
        Status.IN_PROGRESS,
        Status.FAILED,
        True,
    )


def test_job_end_is_reported_once():
    sink = InMemorySink()
    dispatcher = Dispatcher([sink])
    dispatcher.dispatch(event("job_start", timestamp=T), "job1")
    dispatcher.dispatch(event("job_complete", timestamp=T + 5), "job1")
    dispatcher.dispatch(event("op_start", timestamp=T + 6), "job1")

    assert [change.job_ended for change in sink.changes] == [False, True, False]


def test_each_job_has_its_own_fold():
    dispatcher = Dispatcher([InMemorySink()])
    dispatcher.dispatch(event("job_start", timestamp=T, job_id="a"), "a")
    dispatcher.dispatch(event("job_start", timestamp=T, job_id="b"), "b")
    dispatcher.dispatch(event("job_complete", timestamp=T + 1, job_id="b"), "b")

    assert dispatcher.feed("a").job_status == Status.IN_PROGRESS
    assert dispatcher.feed("b").job_status == Status.COMPLETED


def test_stats_count_failures_per_sink():
    stats = HookStats()
    stats.sink_failed("a", RuntimeError("x"))
    stats.sink_failed("a", RuntimeError("x"))
    stats.sink_failed("b", RuntimeError("y"))

    assert stats.sink_errors == {"a": 2, "b": 1}


def test_stats_log_each_failing_sink_once_per_interval(warnings_logged):
    stats = HookStats()
    for _ in range(100):
        stats.sink_failed("a", RuntimeError("x"))
    stats.sink_failed("b", RuntimeError("y"))

    assert len([m for m in warnings_logged if "'a'" in m]) == 1
    assert len([m for m in warnings_logged if "'b'" in m]) == 1


def test_queued_delivery_drain_waits_for_every_event():
    sink = InMemorySink()
    delivery = QueuedDelivery(Dispatcher([sink]))
    for pid in range(1000):
        delivery.submit(event("partition_start", partition_id=pid), "job1")

    assert delivery.drain(10)
    assert len(sink.events) == 1000
    delivery.close(5)


def test_queued_delivery_drops_and_counts_when_the_sinks_cannot_keep_up():
    stats = HookStats()
    blocking = Blocking()
    delivery = QueuedDelivery(Dispatcher([blocking], stats), max_pending=10)

    accepted = [delivery.submit(event("op_start", partition_id=0), "job1") for _ in range(50)]
    blocking.release.set()

    assert accepted.count(True) == 10
    assert stats.events_dropped == 40
    assert delivery.drain(10)
    assert blocking.seen == 10
    delivery.close(5)


def test_queued_delivery_submit_never_waits_for_a_stuck_sink():
    blocking = Blocking()
    delivery = QueuedDelivery(Dispatcher([blocking]))

    assert finishes_within(
        5, lambda: [delivery.submit(event("op_start"), "job1") for _ in range(1000)]
    )
    blocking.release.set()
    assert delivery.drain(10)
    delivery.close(5)


def test_queued_delivery_close_dispatches_what_is_pending():
    sink = InMemorySink()
    delivery = QueuedDelivery(Dispatcher([sink]))
    for pid in range(100):
        delivery.submit(event("partition_start", partition_id=pid), "job1")
    delivery.close(10)

    assert len(sink.events) == 100
