"""Fold each event, then fan it out to the sinks, isolating every sink's failures.

The live hook, ``replay`` and ``serve`` all go through :class:`Dispatcher`, so a
replayed log yields the same metrics and spans as the live run did.  For each
event the dispatcher folds it into the job's :class:`JobFeed` and hands the
sinks a :class:`Change`: what the event did to the job, its partition and its op
(statuses before and after), read from the fold, never recomputed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from loguru import logger

from dj_observe.events import AnyEvent, EventType
from dj_observe.state import JobState, PartitionState, Status

__all__ = ["Change", "Dispatcher", "HookStats", "JobFeed", "QueuedDelivery", "Sink"]

FAILURE_LOG_INTERVAL = 60.0
"""A failing sink is logged on its first failure, then at most once per this many seconds."""

_PARTITION_EVENTS = frozenset(
    kind.value for kind in EventType if kind.value.startswith(("partition_", "op_", "checkpoint_"))
)
_OP_EVENTS = frozenset(
    {
        EventType.OP_START.value,
        EventType.OP_COMPLETE.value,
        EventType.OP_FAILED.value,
        EventType.CHECKPOINT_SAVE.value,
    }
)


@dataclass(slots=True)
class Change:
    """One event and what it changed: statuses before and after, read from the fold."""

    event: AnyEvent
    job_id: str
    job_before: Status
    job_after: Status
    partition: PartitionState | None = None
    partition_before: Status | None = None
    partition_after: Status | None = None
    op_slot: int | None = None
    op_before: Status | None = None
    op_after: Status | None = None
    counts_changed: bool = False
    """Whether the partitions-by-status tally moved."""

    @property
    def op_ended(self) -> bool:
        """The event moved an op run into completed or failed."""
        return self.op_slot is not None and _entered_end(self.op_before, self.op_after)

    @property
    def partition_ended(self) -> bool:
        return self.partition is not None and _entered_end(
            self.partition_before, self.partition_after
        )

    @property
    def job_ended(self) -> bool:
        return _entered_end(self.job_before, self.job_after)


def _entered_end(before: Status | None, after: Status | None) -> bool:
    return after != before and after in (Status.COMPLETED, Status.FAILED)


class JobFeed:
    """One job's fold plus the partition tallies the sinks need in O(1)."""

    def __init__(self, state: JobState | None = None) -> None:
        self.state = state or JobState()
        self._partition_status: dict[int, Status] = {}
        self.partition_counts: dict[Status, int] = dict.fromkeys(Status, 0)
        self.failed: set[int] = set()
        """Ids of the partitions that are failed now."""
        self._seen = 0
        for part in self.state.partitions.values():
            self._tally(part, self.state.partition_status(part))
        self._last_counts = self.counts()
        self.job_status = self.state.job_status(self._last_counts)

    def counts(self) -> dict[Status, int]:
        """Partitions by status, planned partitions never seen counted as not started."""
        counts = dict(self.partition_counts)
        counts[Status.NOT_STARTED] += self.state.total_partitions - self._seen
        return counts

    def _tally(self, part: PartitionState, status: Status) -> Status | None:
        before = self._partition_status.get(part.partition_id)
        if before is None:
            self._seen += 1
        else:
            self.partition_counts[before] -= 1
        self._partition_status[part.partition_id] = status
        self.partition_counts[status] += 1
        if status == Status.FAILED:
            self.failed.add(part.partition_id)
        else:
            self.failed.discard(part.partition_id)
        return before

    def apply(self, event: AnyEvent, job_id: str) -> Change:
        """Fold ``event`` and describe what it changed."""
        state = self.state
        kind = event.event_type
        op_slot = op_before = None
        partition = None
        if kind in _OP_EVENTS and event.partition_id is not None and event.operation_name:
            part = state.partitions.get(event.partition_id)
            slot = part.ops.get(event.operation_name) if part is not None else None
            op_before = state.op_status(slot) if slot is not None else Status.NOT_STARTED
        state.apply(event)
        change = Change(event, job_id, self.job_status, self.job_status)
        if kind in _PARTITION_EVENTS and event.partition_id is not None:
            partition = state.partitions.get(event.partition_id)
        if partition is not None:
            after = state.partition_status(partition)
            before = self._tally(partition, after)
            change.partition = partition
            change.partition_before = Status.NOT_STARTED if before is None else before
            change.partition_after = after
            if op_before is not None:
                name = event.operation_name
                op_slot = None if name is None else partition.ops.get(name)
                if op_slot is None:
                    op_slot = _renamed_slot(state, partition, event)
            if op_slot is not None:
                change.op_slot = op_slot
                change.op_before = op_before
                change.op_after = state.op_status(op_slot)
        counts = self.counts()
        change.counts_changed = counts != self._last_counts
        self._last_counts = counts
        self.job_status = state.job_status(counts)
        change.job_after = self.job_status
        return change


def _renamed_slot(state: JobState, part: PartitionState, event: AnyEvent) -> int | None:
    """The slot of an op the log named by position (``op_0003``), if the fold resolved it."""
    if event.operation_idx is None:
        return None
    for name, slot in part.ops.items():
        if state.op_index(slot) == event.operation_idx and name != event.operation_name:
            return slot
    return None


@runtime_checkable
class Sink(Protocol):
    """A listener: gets every change, must not block, may raise (the dispatcher isolates it)."""

    name: str

    def on_change(self, change: Change, feed: JobFeed) -> None: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self) -> None: ...


@dataclass
class HookStats:
    """Self-observability: what the hook handled, dropped, and which sinks failed."""

    events_handled: int = 0
    events_dropped: int = 0
    sink_errors: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last_logged: dict[str, float] = field(default_factory=dict, repr=False)

    def sink_failed(self, sink: str, exc: BaseException) -> None:
        """Count a sink failure; log it the first time and then at most once a minute."""
        with self._lock:
            self.sink_errors[sink] = self.sink_errors.get(sink, 0) + 1
            count = self.sink_errors[sink]
            now = time.monotonic()
            last = self._last_logged.get(sink)
            if last is not None and now - last < FAILURE_LOG_INTERVAL:
                return
            self._last_logged[sink] = now
        logger.warning(
            "dj-observe: sink {!r} failed ({} failure(s) so far), the job goes on: {}: {}",
            sink,
            count,
            type(exc).__name__,
            exc,
        )


class Dispatcher:
    """Folds events per job and fans every change out to the sinks."""

    def __init__(self, sinks: Iterable[Sink] = (), stats: HookStats | None = None) -> None:
        self.sinks = list(sinks)
        self.stats = stats or HookStats()
        self.feeds: dict[str, JobFeed] = {}
        self.lock = threading.RLock()

    def feed(self, job_id: str) -> JobFeed:
        feed = self.feeds.get(job_id)
        if feed is None:
            feed = self.feeds[job_id] = JobFeed()
        return feed

    def dispatch(self, event: AnyEvent, job_id: str) -> Change:
        """Fold one event into its job's feed and give the change to every sink."""
        with self.lock:
            feed = self.feed(job_id)
            change = feed.apply(event, job_id)
            self.stats.events_handled += 1
            for sink in self.sinks:
                try:
                    sink.on_change(change, feed)
                except Exception as exc:
                    self.stats.sink_failed(sink.name, exc)
            return change

    def flush(self, timeout: float | None = None) -> None:
        for sink in self.sinks:
            try:
                sink.flush(timeout)
            except Exception as exc:
                self.stats.sink_failed(sink.name, exc)

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                self.stats.sink_failed(sink.name, exc)


class QueuedDelivery:
    """Hands events to a :class:`Dispatcher` on a background thread.

    :meth:`submit` never blocks: when ``max_pending`` events already wait (the
    sinks cannot keep up), the event is dropped and counted in
    ``HookStats.events_dropped``.  :meth:`drain` waits until everything
    submitted so far has been dispatched.
    """

    def __init__(self, dispatcher: Dispatcher, max_pending: int = 100_000) -> None:
        self.dispatcher = dispatcher
        self.max_pending = max_pending
        self.submitted = 0
        self.processed = 0
        self._queue: queue.SimpleQueue[tuple[AnyEvent, str] | None] = queue.SimpleQueue()
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="dj-observe-sinks", daemon=True)
        self._thread.start()

    def submit(self, event: AnyEvent, job_id: str) -> bool:
        if self.submitted - self.processed >= self.max_pending:
            self.dispatcher.stats.events_dropped += 1
            return False
        self.submitted += 1
        self._queue.put((event, job_id))
        return True

    def _run(self) -> None:
        dispatch = self.dispatcher.dispatch
        while True:
            item = self._queue.get()
            if item is None:
                break
            try:
                dispatch(*item)
            except Exception as exc:
                self.dispatcher.stats.sink_failed("dispatch", exc)
            self.processed += 1
            if self.processed >= self.submitted:
                with self._idle:
                    self._idle.notify_all()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every submitted event was dispatched; ``False`` on timeout."""
        target = self.submitted
        with self._idle:
            return self._idle.wait_for(lambda: self.processed >= target, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Dispatch what is pending (up to ``timeout``), then stop the thread."""
        self.drain(timeout)
        self._queue.put(None)
        self._thread.join(timeout)
