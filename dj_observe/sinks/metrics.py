"""The metrics sink: Prometheus counters, gauges and histograms derived from events.

Every value comes from the fold (a :class:`~dj_observe.dispatch.Change` says
which status changed), so a replayed log yields the values the live run did.
Labels are bounded: job, pipeline, op, state, event type; a partition id appears
only on ``dj_partition_failed_info``, one series per failed partition.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from dj_observe.dispatch import Change, HookStats, JobFeed
from dj_observe.events import EventType
from dj_observe.ids import op_run_span_id, trace_id_hex
from dj_observe.state import JobState, PartitionState, Status, error_type_of
from dj_observe.timing import job_timing

__all__ = [
    "MAX_LABEL_CHARS",
    "MAX_OPS_PER_JOB",
    "STATE_LABELS",
    "MetricsSink",
    "SelfMetricsCollector",
]

STATE_LABELS = {
    Status.NOT_STARTED: "pending",
    Status.IN_PROGRESS: "running",
    Status.COMPLETED: "completed",
    Status.FAILED: "failed",
}
MAX_OPS_PER_JOB = 200
"""Distinct op label values per job; more (a runaway log) share the label ``other``."""
MAX_LABEL_CHARS = 128
"""Characters of a label value (job id, pipeline, op name) kept: a scrape stays small."""

OP_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
)
PARTITION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
_KNOWN_TYPES = frozenset(kind.value for kind in EventType)
_JOB = ("job_id", "pipeline")


class SelfMetricsCollector(Collector):
    """Exposes :class:`HookStats`: events handled and dropped, sink errors by sink."""

    def __init__(self, stats: HookStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "dj_observe_events_handled",
            "Events folded and handed to the sinks.",
            value=self.stats.events_handled,
        )
        yield CounterMetricFamily(
            "dj_observe_events_dropped",
            "Events the hook could not use (no event type).",
            value=self.stats.events_dropped,
        )
        errors = CounterMetricFamily(
            "dj_observe_sink_errors", "Failures of a sink, isolated from the job.", labels=["sink"]
        )
        for sink, count in sorted(self.stats.sink_errors.items()):
            errors.add_metric([sink], count)
        yield errors


class MetricsSink:
    """Updates Prometheus metrics for every change; owns its registry unless given one."""

    name = "metrics"

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        pipeline: str | None = None,
        stats: HookStats | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.pipeline = pipeline
        self._pipelines: dict[str, str] = {}
        self._ops: dict[str, set[str]] = {}
        self._peak_rss: dict[tuple[str, str], int] = {}
        self._series: dict[str, set[tuple[MetricWrapperBase, tuple[str, ...]]]] = {}
        self._children: dict[tuple[Any, ...], Any] = {}
        reg = self.registry
        self.job_status = Gauge(
            "dj_job_status", "1 for the job's current state.", [*_JOB, "state"], registry=reg
        )
        self.job_start = Gauge(
            "dj_job_start_timestamp_seconds", "When the job started.", _JOB, registry=reg
        )
        self.job_end = Gauge(
            "dj_job_end_timestamp_seconds", "When the job ended.", _JOB, registry=reg
        )
        self.job_last_success = Gauge(
            "dj_job_last_success_timestamp_seconds",
            "When the job last completed successfully.",
            _JOB,
            registry=reg,
        )
        self.job_duration = Gauge(
            "dj_job_duration_seconds", "Wall time of the ended job.", _JOB, registry=reg
        )
        self.partitions = Gauge(
            "dj_partitions", "Partitions by state.", [*_JOB, "state"], registry=reg
        )
        self.partitions_completed = Counter(
            "dj_partitions_completed", "Partitions that completed.", _JOB, registry=reg
        )
        self.partitions_failed = Counter(
            "dj_partitions_failed", "Partitions that failed.", _JOB, registry=reg
        )
        self.partition_duration = Histogram(
            "dj_partition_duration_seconds",
            "Processing time of completed partitions.",
            _JOB,
            buckets=PARTITION_BUCKETS,
            registry=reg,
        )
        self.op_duration = Histogram(
            "dj_op_duration_seconds",
            "Duration of completed op runs (one op on one partition).",
            [*_JOB, "op"],
            buckets=OP_BUCKETS,
            registry=reg,
        )
        self.op_rows_in = Counter(
            "dj_op_rows_in", "Rows into completed op runs.", [*_JOB, "op"], registry=reg
        )
        self.op_rows_out = Counter(
            "dj_op_rows_out", "Rows out of completed op runs.", [*_JOB, "op"], registry=reg
        )
        self.ops_completed = Counter(
            "dj_ops_completed", "Op runs that completed.", [*_JOB, "op"], registry=reg
        )
        self.ops_failed = Counter(
            "dj_ops_failed", "Op runs that failed.", [*_JOB, "op"], registry=reg
        )
        self.op_cpu = Counter(
            "dj_op_cpu_seconds",
            "CPU seconds of completed op runs, where measured.",
            [*_JOB, "op"],
            registry=reg,
        )
        self.op_peak_rss = Gauge(
            "dj_op_peak_rss_bytes",
            "Largest peak resident memory of a process that ran the op, where measured.",
            [*_JOB, "op"],
            registry=reg,
        )
        self.ops_running = Gauge(
            "dj_ops_running", "Op runs in progress.", [*_JOB, "op"], registry=reg
        )
        self.checkpoints = Counter("dj_checkpoints_saved", "Checkpoints saved.", _JOB, registry=reg)
        self.last_checkpoint = Gauge(
            "dj_last_checkpoint_timestamp_seconds",
            "When the last checkpoint was saved.",
            _JOB,
            registry=reg,
        )
        self.events = Counter("dj_events", "Events by type.", [*_JOB, "event_type"], registry=reg)
        self.last_event = Gauge(
            "dj_last_event_timestamp_seconds",
            "Timestamp of the job's latest event (a heartbeat).",
            _JOB,
            registry=reg,
        )
        self.failed_partition = Gauge(
            "dj_partition_failed_info",
            "1 for each failed partition: which op failed and with what error type.",
            [*_JOB, "partition", "op", "error_type"],
            registry=reg,
        )
        if stats is not None:
            reg.register(SelfMetricsCollector(stats))

    # -- series bookkeeping --------------------------------------------------------

    def _child(self, metric: Any, job: str, *values: str) -> Any:
        """The labelled child of ``metric`` for ``job`` (cached: ``labels()`` is slow)."""
        key = (id(metric), job, *values)
        child = self._children.get(key)
        if child is None:
            labels = tuple(
                value[:MAX_LABEL_CHARS] for value in (job, self._pipelines[job], *values)
            )
            self._series.setdefault(job, set()).add((metric, labels))
            child = self._children[key] = metric.labels(*labels)
        return child

    def _op_label(self, job: str, name: str) -> str:
        seen = self._ops.setdefault(job, set())
        if name in seen:
            return name
        if len(seen) >= MAX_OPS_PER_JOB:
            return "other"
        seen.add(name)
        return name

    def remove_job(self, job: str) -> None:
        """Drop every series of ``job`` (for a job past its retention)."""
        for metric, labels in self._series.pop(job, set()):
            with contextlib.suppress(KeyError):
                metric.remove(*labels)
        self._children = {key: child for key, child in self._children.items() if key[1] != job}
        self._pipelines.pop(job, None)
        self._ops.pop(job, None)
        self._peak_rss = {key: peak for key, peak in self._peak_rss.items() if key[0] != job}

    # -- the sink ------------------------------------------------------------------

    def on_change(self, change: Change, feed: JobFeed) -> None:
        state = feed.state
        job = change.job_id
        if job not in self._pipelines:
            self._pipelines[job] = self.pipeline or state.pipeline or ""
            self._job_status(job, change.job_after)
        event = change.event
        kind = event.event_type if event.event_type in _KNOWN_TYPES else "other"
        self._child(self.events, job, kind).inc()
        if state.last_event_time is not None:
            self._child(self.last_event, job).set(state.last_event_time)
        if kind in (EventType.JOB_START, EventType.JOB_RESTART) and state.start_time:
            self._child(self.job_start, job).set(state.start_time)
        if change.job_after != change.job_before:
            self._job_status(job, change.job_after)
        if change.job_ended or kind in (EventType.JOB_COMPLETE, EventType.JOB_FAILED):
            self._job_ended(job, state, change)
        if change.counts_changed:
            for status, count in feed.counts().items():
                self._child(self.partitions, job, STATE_LABELS[status]).set(count)
        if change.partition is not None and change.partition_after != change.partition_before:
            self._partition_changed(job, state, change)
        if change.op_slot is not None and change.op_after != change.op_before:
            self._op_changed(job, state, change.op_slot, change.op_before, change.op_after)
        if kind == EventType.CHECKPOINT_SAVE:
            self._child(self.checkpoints, job).inc()
            if state.last_checkpoint_time is not None:
                self._child(self.last_checkpoint, job).set(state.last_checkpoint_time)

    def _job_status(self, job: str, current: Status) -> None:
        for status, label in STATE_LABELS.items():
            self._child(self.job_status, job, label).set(1 if status == current else 0)

    def _job_ended(self, job: str, state: JobState, change: Change) -> None:
        end = state.end_time if state.end_time is not None else change.event.timestamp
        if end is None:
            return
        self._child(self.job_end, job).set(end)
        duration = job_timing(state, {}, change.job_after).duration
        if duration is not None:
            self._child(self.job_duration, job).set(duration)
        if change.job_after == Status.COMPLETED:
            self._child(self.job_last_success, job).set(end)

    def _partition_changed(self, job: str, state: JobState, change: Change) -> None:
        part = change.partition
        assert part is not None
        if change.partition_before == Status.FAILED:
            self._clear_failed(job, part)
        if change.partition_after == Status.COMPLETED:
            self._child(self.partitions_completed, job).inc()
            if part.start_time is not None and part.end_time is not None:
                duration = max(0.0, part.end_time - part.start_time)
                self._child(self.partition_duration, job).observe(duration)
        elif change.partition_after == Status.FAILED:
            self._child(self.partitions_failed, job).inc()
            for slot in part.ops.values():  # ops that were running failed with the partition
                if state.ops.status[slot] == Status.IN_PROGRESS:
                    op = self._op_label(job, state.ops.name[slot])
                    self._child(self.ops_failed, job, op).inc()
                    self._child(self.ops_running, job, op).dec()
            op, error_type = failure_of(state, part)
            self._child(
                self.failed_partition,
                job,
                str(part.partition_id),
                self._op_label(job, op),
                error_type,
            ).set(1)

    def _clear_failed(self, job: str, part: PartitionState) -> None:
        prefix = (
            job[:MAX_LABEL_CHARS],
            self._pipelines[job][:MAX_LABEL_CHARS],
            str(part.partition_id),
        )
        for metric, labels in list(self._series.get(job, ())):
            if metric is self.failed_partition and labels[:3] == prefix:
                self.failed_partition.remove(*labels)
                self._series[job].discard((metric, labels))
                self._children.pop((id(metric), job, *labels[2:]), None)

    def _op_changed(
        self, job: str, state: JobState, slot: int, before: Status | None, status: Status | None
    ) -> None:
        run = state.op_run(slot)
        op = self._op_label(job, run.operation_name)
        if status == Status.IN_PROGRESS:
            self._child(self.ops_running, job, op).inc()
        elif before == Status.IN_PROGRESS:
            self._child(self.ops_running, job, op).dec()
        if status == Status.COMPLETED:
            self._child(self.ops_completed, job, op).inc()
            if run.input_rows:
                self._child(self.op_rows_in, job, op).inc(run.input_rows)
            if run.output_rows:
                self._child(self.op_rows_out, job, op).inc(run.output_rows)
            if run.cpu_seconds is not None:
                self._child(self.op_cpu, job, op).inc(run.cpu_seconds)
            if run.peak_rss_bytes is not None:
                key = (job, op)
                peak = max(self._peak_rss.get(key, 0), run.peak_rss_bytes)
                self._peak_rss[key] = peak
                self._child(self.op_peak_rss, job, op).set(peak)
            if run.duration is not None:
                span = op_run_span_id(job, state, slot)
                exemplar = {"trace_id": trace_id_hex(job), "span_id": f"{span:016x}"}
                self._child(self.op_duration, job, op).observe(run.duration, exemplar)
        elif status == Status.FAILED:
            self._child(self.ops_failed, job, op).inc()

    def flush(self, timeout: float | None = None) -> None:
        """Metrics are read when scraped or pushed; nothing to flush here."""

    def close(self) -> None:
        """The registry stays readable after close."""


def failure_of(state: JobState, part: PartitionState) -> tuple[str, str]:
    """The op a partition failed in and the error type (``unknown`` when not said)."""
    raised = failed = running = None
    slot: int | None
    for slot in part.ops.values():
        status = state.op_status(slot)
        if status == Status.FAILED:
            failed = slot
            if slot in state.ops.errors:  # it raised, not only ran when its partition failed
                raised = slot
        elif status == Status.IN_PROGRESS:
            running = slot
    slot = next((found for found in (raised, failed, running) if found is not None), None)
    op = state.ops.name[slot] if slot is not None else "unknown"
    error_type = part.error_type
    if error_type is None and slot is not None:
        error_type = error_type_of(state.ops.errors.get(slot))
    return op, (error_type or "unknown")[:64]
