"""The processing snapshot: the spec's JSON, recomputed from the event log alone.

``render(fold(read(log)))``: :class:`~dj_observe.tracker.JobTracker` reads and
folds, :class:`JobSnapshot` holds the answers, and this module turns them into
the documented JSON (``to_json_dict`` for the API, :func:`write_json` streaming
it to a file with bounded memory, however many partitions the job has).

The Python API mirrors Data-Juicer's ``data_juicer.utils.job.snapshot``:
``ProcessingSnapshotAnalyzer(job_dir).generate_snapshot()``,
``analyzer.to_json_dict(snapshot)`` and ``create_snapshot(job_dir)``.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import msgspec

from dj_observe.eventlog import ReadStats
from dj_observe.events import EventType
from dj_observe.parallel import ForkedOutput, fork_is_safe
from dj_observe.state import JobState, OpRun, PartitionState, Status
from dj_observe.tracker import JobDirectoryError, JobTracker

__all__ = [
    "JobDirectoryError",
    "JobSnapshot",
    "OperationStatus",
    "PartitionStatus",
    "ProcessingSnapshotAnalyzer",
    "ProcessingStatus",
    "create_snapshot",
    "format_duration",
    "write_json",
]

_CHUNK = 2000
PARALLEL_RENDER_MIN_OPS = 20_000
"""Jobs with at least this many op runs render ``operation_progress`` in a forked child."""
_KNOWN_TYPES = frozenset(kind.value for kind in EventType)


class ProcessingStatus(str, enum.Enum):
    """Status values as the spec's JSON spells them."""

    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CHECKPOINTED = "checkpointed"

    @classmethod
    def of(cls, status: Status) -> ProcessingStatus:
        return cls(status.label)


@dataclass
class OperationStatus:
    """One op run, as in the spec's ``operation_progress`` entries."""

    operation_name: str
    operation_idx: int | None
    status: ProcessingStatus
    start_time: float | None = None
    end_time: float | None = None
    duration: float | None = None
    input_rows: int | None = None
    output_rows: int | None = None
    checkpoint_time: float | None = None
    error_message: str | None = None

    @property
    def progress_percentage(self) -> float:
        return 100.0 if self.status == ProcessingStatus.COMPLETED else 0.0


@dataclass
class PartitionStatus:
    """One partition, as in the spec's ``partition_progress`` entries."""

    partition_id: int
    status: ProcessingStatus
    sample_count: int | None = None
    creation_start_time: float | None = None
    creation_end_time: float | None = None
    processing_start_time: float | None = None
    processing_end_time: float | None = None
    current_operation: str | None = None
    completed_operations: list[str] = field(default_factory=list)
    failed_operations: list[str] = field(default_factory=list)
    checkpointed_operations: list[str] = field(default_factory=list)
    error_message: str | None = None
    progress_percentage: float = 0.0


@dataclass
class JobSnapshot:
    """The answers the snapshot JSON is made of (attribute names follow the spec's examples)."""

    job_id: str
    overall_status: ProcessingStatus
    job_start_time: float | None
    job_end_time: float | None
    total_duration: float | None
    total_partitions: int
    completed_partitions: int
    failed_partitions: int
    in_progress_partitions: int
    total_operations: int
    completed_operations: int
    failed_operations: int
    checkpointed_operations: int
    checkpoint_strategy: str | None
    last_checkpoint_time: float | None
    resumable: bool
    timing_source: str
    generated_at: float
    job_dir: str
    state: JobState = field(repr=False)
    stats: ReadStats = field(repr=False)
    summary: dict[str, Any] = field(default_factory=dict, repr=False)
    dag_plan_loaded: bool = False
    log_files: list[str] = field(default_factory=list)
    side_file_errors: list[str] = field(default_factory=list)

    @property
    def partition_statuses(self) -> dict[int, PartitionStatus]:
        """Every partition, by id (built on demand: large for large jobs)."""
        return {pid: partition_status(self.state, part) for pid, part in _partitions(self.state)}

    @property
    def operation_statuses(self) -> dict[str, OperationStatus]:
        """Every op run, keyed ``p{partition}_op{idx}_{name}`` (built on demand)."""
        return {
            operation_key(run): operation_status(run)
            for _, part in _partitions(self.state)
            for run in self.state.op_runs(part)
        }

    @property
    def last_event_time(self) -> float | None:
        return self.state.last_event_time

    @property
    def seconds_since_last_event(self) -> float | None:
        last = self.state.last_event_time
        return None if last is None else max(0.0, self.generated_at - last)


class ProcessingSnapshotAnalyzer:
    """Builds snapshots of one job directory (Data-Juicer's API)."""

    def __init__(self, job_dir: str | os.PathLike[str], *, workers: int = 2) -> None:
        self.job_dir = str(job_dir)
        self.tracker = JobTracker(Path(job_dir), workers=workers)

    def generate_snapshot(self) -> JobSnapshot:
        """Fold what was appended since the last call and summarise the job."""
        state = self.tracker.refresh()
        return _summarise(self.tracker, state, self.job_dir)

    def to_json_dict(self, snapshot: JobSnapshot) -> dict[str, Any]:
        """The spec's JSON document as a dict (see :func:`write_json` for large jobs)."""
        return msgspec.json.decode(b"".join(_json_chunks(snapshot, indent=0)))


def create_snapshot(job_dir: str | os.PathLike[str]) -> JobSnapshot:
    """Snapshot a job directory in one call."""
    return ProcessingSnapshotAnalyzer(job_dir).generate_snapshot()


def write_json(
    snapshot: JobSnapshot, stream: IO[bytes], *, indent: int = 2, workers: int = 1
) -> None:
    """Write the snapshot JSON to a binary stream, piece by piece.

    With ``workers > 1`` a large job's ``operation_progress`` is rendered in a
    forked child while this process renders the rest.
    """
    for chunk in _json_chunks(snapshot, indent=indent, workers=workers):
        stream.write(chunk)


def format_duration(seconds: float | None) -> str | None:
    """``271.8`` -> ``"4m 31s"``; hours appear when there are any."""
    if seconds is None or seconds < 0:
        return None
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


# -- summarising -------------------------------------------------------------------


def _summarise(tracker: JobTracker, state: JobState, job_dir: str) -> JobSnapshot:
    summary = tracker.summary.data if tracker.summary and tracker.summary.data else {}
    partitions = state.partition_counts()
    ops = state.op_counts()
    total_ops = max(len(state.ops), state.total_partitions * state.ops_per_partition)
    status = _overall_status(state, summary)
    start, end, duration, source = _timing(state, summary, status)
    errors = [
        side.error
        for side in (tracker.summary, tracker.plan, tracker.partitioning)
        if side is not None and side.error
    ]
    checkpointed = state.checkpointed_op_count()
    return JobSnapshot(
        job_id=_text(summary.get("job_id")) or state.job_id or Path(job_dir).name,
        overall_status=ProcessingStatus.of(status),
        job_start_time=start,
        job_end_time=end,
        total_duration=duration,
        total_partitions=state.total_partitions,
        completed_partitions=partitions[Status.COMPLETED],
        failed_partitions=partitions[Status.FAILED],
        in_progress_partitions=partitions[Status.IN_PROGRESS],
        total_operations=total_ops,
        completed_operations=ops[Status.COMPLETED],
        failed_operations=ops[Status.FAILED],
        checkpointed_operations=checkpointed,
        checkpoint_strategy=state.checkpoint_strategy or _text(summary.get("checkpoint_strategy")),
        last_checkpoint_time=state.last_checkpoint_time,
        resumable=checkpointed > 0,
        timing_source=source,
        generated_at=time.time(),
        job_dir=job_dir,
        state=state,
        stats=tracker.stats,
        summary=summary,
        dag_plan_loaded=bool(tracker.plan and tracker.plan.loaded),
        log_files=[str(path) for path in tracker.log_files],
        side_file_errors=errors,
    )


def _overall_status(state: JobState, summary: dict[str, Any]) -> Status:
    status = state.job_status()
    if status not in (Status.COMPLETED, Status.FAILED):
        recorded = summary.get("status")
        if recorded == "completed" and state.status is None:
            return Status.COMPLETED
        if recorded == "failed":
            return Status.FAILED
    return status


def _timing(
    state: JobState, summary: dict[str, Any], status: Status
) -> tuple[float | None, float | None, float | None, str]:
    start = _number(summary.get("start_time"))
    if start is not None:
        end = _number(summary.get("end_time"))
        duration = _number(summary.get("duration"))
        if duration is None and end is not None:
            duration = end - start
        return start, end, duration, "job_summary"
    start = state.start_time if state.start_time is not None else state.first_event_time
    end = state.end_time if state.status in (Status.COMPLETED, Status.FAILED) else None
    if end is None and status == Status.FAILED:
        end = state.last_event_time
    duration = state.duration if state.status == Status.COMPLETED else None
    if duration is None and start is not None and end is not None:
        duration = end - start
    return start, end, duration, "events"


# -- entries -----------------------------------------------------------------------


def _partitions(state: JobState) -> list[tuple[int, PartitionState]]:
    return sorted(state.partitions.items())


def operation_key(run: OpRun) -> str:
    """The spec's op key, ``p{partition}_op{idx}_{name}``."""
    idx = "" if run.operation_idx is None else run.operation_idx
    return f"p{run.partition_id}_op{idx}_{run.operation_name}"


def operation_status(run: OpRun) -> OperationStatus:
    return OperationStatus(
        operation_name=run.operation_name,
        operation_idx=run.operation_idx,
        status=ProcessingStatus.of(run.status),
        start_time=run.start_time,
        end_time=run.end_time,
        duration=run.duration,
        input_rows=run.input_rows,
        output_rows=run.output_rows,
        checkpoint_time=run.checkpoint_time,
        error_message=run.error_message,
    )


def partition_status(
    state: JobState, part: PartitionState, positions: dict[str, int] | None = None
) -> PartitionStatus:
    """A partition's entry: its status, and its ops by outcome, in pipeline order."""
    status = state.partition_status(part)
    ops = state.ops
    completed: list[str] = []
    failed: list[str] = []
    checkpointed: list[str] = []
    current: tuple[float, str] | None = None
    error = None
    for _, slot in state.ordered_slots(part, positions):
        name = ops.name[slot]
        op_status = state.op_status(slot)
        if op_status == Status.COMPLETED:
            completed.append(name)
        elif op_status == Status.FAILED:
            failed.append(name)
            error = error or ops.errors.get(slot)
        elif op_status == Status.IN_PROGRESS:
            started = ops.start_time[slot]
            started = started if started == started else 0.0
            if current is None or started >= current[0]:
                current = (started, name)
        if ops.checkpoint_time[slot] == ops.checkpoint_time[slot]:
            checkpointed.append(name)
    expected = max(state.ops_per_partition, len(part.ops), 1)
    progress = (
        100.0
        if status == Status.COMPLETED
        else round(min(100.0, 100.0 * len(completed) / expected), 2)
    )
    ended = status in (Status.COMPLETED, Status.FAILED)
    return PartitionStatus(
        partition_id=part.partition_id,
        status=ProcessingStatus.of(status),
        sample_count=part.sample_count,
        creation_start_time=part.creation_start_time,
        creation_end_time=part.creation_end_time,
        processing_start_time=part.start_time,
        processing_end_time=part.end_time if ended else None,
        current_operation=current[1] if current and status == Status.IN_PROGRESS else None,
        completed_operations=completed,
        failed_operations=failed,
        checkpointed_operations=checkpointed,
        error_message=(part.error_message or error) if status == Status.FAILED else None,
        progress_percentage=progress,
    )


def _partition_entry(entry: PartitionStatus) -> dict[str, Any]:
    return {
        "status": entry.status.value,
        "sample_count": entry.sample_count,
        "creation_start_time": entry.creation_start_time,
        "creation_end_time": entry.creation_end_time,
        "processing_start_time": entry.processing_start_time,
        "processing_end_time": entry.processing_end_time,
        "current_operation": entry.current_operation,
        "completed_operations": entry.completed_operations,
        "failed_operations": entry.failed_operations,
        "checkpointed_operations": entry.checkpointed_operations,
        "error_message": entry.error_message,
        "progress_percentage": entry.progress_percentage,
    }


# -- the document ------------------------------------------------------------------


def _percent(done: int, total: int) -> float:
    return round(100.0 * done / total, 2) if total else 0.0


def _head(snap: JobSnapshot) -> dict[str, Any]:
    state, summary, job_dir = snap.state, snap.summary, snap.job_dir
    partition_pct = _percent(snap.completed_partitions, snap.total_partitions)
    operation_pct = _percent(snap.completed_operations, snap.total_operations)
    config_file = summary.get("config_file", state.config_file)
    error = _text(summary.get("error_message")) or state.error_message
    if error is None and snap.overall_status == ProcessingStatus.FAILED:
        error = _first_partition_error(state)
    return {
        "job_info": {
            "job_id": snap.job_id,
            "executor_type": _text(summary.get("executor_type")) or state.executor_type,
            "status": snap.overall_status.value,
            "config_file": config_file,
            "work_dir": _text(summary.get("work_dir")) or state.work_dir or job_dir,
            "resumption_command": _resumption_command(snap, config_file),
            "error_message": error,
        },
        "overall_status": snap.overall_status.value,
        "overall_progress": {
            "overall_percentage": round((partition_pct + operation_pct) / 2, 2),
            "partition_percentage": partition_pct,
            "operation_percentage": operation_pct,
        },
        "timing": {
            "start_time": snap.job_start_time,
            "end_time": snap.job_end_time,
            "duration_seconds": snap.total_duration,
            "duration_formatted": format_duration(snap.total_duration),
            "job_summary_duration": _number(summary.get("duration")),
            "timing_source": snap.timing_source,
        },
        "progress_summary": {
            "total_partitions": snap.total_partitions,
            "completed_partitions": snap.completed_partitions,
            "failed_partitions": snap.failed_partitions,
            "in_progress_partitions": snap.in_progress_partitions,
            "partition_progress_percentage": partition_pct,
            "total_operations": snap.total_operations,
            "completed_operations": snap.completed_operations,
            "failed_operations": snap.failed_operations,
            "checkpointed_operations": snap.checkpointed_operations,
            "operation_progress_percentage": operation_pct,
        },
    }


def _checkpointing(snap: JobSnapshot, checkpointed: Any) -> dict[str, Any]:
    percentage = _percent(snap.checkpointed_operations, snap.total_operations)
    return {
        "strategy": snap.checkpoint_strategy,
        "last_checkpoint_time": snap.last_checkpoint_time,
        "checkpointed_operations_count": snap.checkpointed_operations,
        "resumable": snap.resumable,
        "checkpoint_progress": {
            "percentage": percentage,
            "checkpointed_operations": checkpointed,
            "checkpoint_coverage": round(percentage / 100, 4),
        },
        "checkpoint_dir": _path(snap, "checkpoint_dir", "checkpoints"),
    }


def _file_paths(snap: JobSnapshot) -> dict[str, Any]:
    logs = snap.log_files
    return {
        "event_log_file": _text(snap.summary.get("event_log_file")) or (logs[-1] if logs else None),
        "event_log_dir": _path(snap, "event_log_dir", "logs"),
        "checkpoint_dir": _path(snap, "checkpoint_dir", "checkpoints"),
        "metadata_dir": _path(snap, "metadata_dir", "metadata"),
        "backed_up_config_path": _text(snap.summary.get("backed_up_config_path"))
        or _backed_up_config(snap.job_dir),
    }


def _metadata(snap: JobSnapshot) -> dict[str, Any]:
    stats, state = snap.stats, snap.state
    unknown = {
        kind: count
        for kind, count in sorted(state.event_counts.items())
        if kind not in _KNOWN_TYPES
    }
    return {
        "snapshot_generated_at": datetime.fromtimestamp(snap.generated_at).isoformat(),
        "events_analyzed": stats.events,
        "dag_plan_loaded": snap.dag_plan_loaded,
        "job_summary_loaded": bool(snap.summary),
        "job_summary_used": snap.timing_source == "job_summary",
        "event_log_files": snap.log_files,
        "skipped_lines": stats.skipped_lines,
        "malformed_lines": stats.malformed_lines,
        "oversized_lines": stats.oversized_lines,
        "torn_tail_lines": stats.torn_tail_lines,
        "unknown_event_types": unknown,
        "side_file_errors": snap.side_file_errors,
        "resumed_runs": state.resume_count,
        "last_event_time": state.last_event_time,
        "seconds_since_last_event": _rounded(snap.seconds_since_last_event),
    }


def _batched(entries: Iterator[tuple[str, Any]]) -> Iterator[dict[str, Any]]:
    batch: dict[str, Any] = {}
    for key, value in entries:
        batch[key] = value
        if len(batch) >= _CHUNK:
            yield batch
            batch = {}
    if batch:
        yield batch


def _partition_entries(snap: JobSnapshot) -> Iterator[tuple[str, Any]]:
    state = snap.state
    positions = state.pipeline_positions()
    for pid, part in _partitions(state):
        yield str(pid), _partition_entry(partition_status(state, part, positions))


def _op_runs(state: JobState) -> Iterator[OpRun]:
    positions = state.pipeline_positions()
    op_run = state.op_run
    for _, part in _partitions(state):
        for idx, slot in state.ordered_slots(part, positions):
            yield op_run(slot, idx)


def _operation_entries(snap: JobSnapshot) -> Iterator[tuple[str, Any]]:
    for run in _op_runs(snap.state):
        yield (
            operation_key(run),
            {
                "operation_name": run.operation_name,
                "operation_idx": run.operation_idx,
                "status": run.status.label,
                "start_time": run.start_time,
                "end_time": run.end_time,
                "duration": run.duration,
                "input_rows": run.input_rows,
                "output_rows": run.output_rows,
                "checkpoint_time": run.checkpoint_time,
                "error_message": run.error_message,
                "progress_percentage": 100.0 if run.status == Status.COMPLETED else 0.0,
            },
        )


def _checkpointed_entries(snap: JobSnapshot) -> Iterator[dict[str, Any]]:
    for run in _op_runs(snap.state):
        if run.checkpoint_time is not None:
            yield {
                "operation_key": operation_key(run),
                "operation_name": run.operation_name,
                "checkpoint_time": run.checkpoint_time,
            }


def _operation_progress(snap: JobSnapshot, writer: _ObjectWriter) -> Iterator[bytes]:
    return writer.item_with_stream(
        "operation_progress", _STREAM, _batched(_operation_entries(snap))
    )


def _json_chunks(snap: JobSnapshot, indent: int, workers: int = 1) -> Iterator[bytes]:
    """The document in pieces; the per-partition and per-op parts stream in batches."""
    aside = None
    if workers > 1 and len(snap.state.ops) >= PARALLEL_RENDER_MIN_OPS and fork_is_safe():
        aside = ForkedOutput(lambda: _operation_progress(snap, _ObjectWriter(indent, first=False)))
    writer = _ObjectWriter(indent)
    for key, value in _head(snap).items():
        yield writer.item(key, value)
    yield from writer.item_with_stream(
        "checkpointing",
        _checkpointing(snap, _STREAM),
        _batched_list(_checkpointed_entries(snap)),
        brackets=b"[]",
    )
    yield from writer.item_with_stream(
        "partition_progress", _STREAM, _batched(_partition_entries(snap))
    )
    rendered = aside.read() if aside is not None else None
    yield from rendered if rendered is not None else _operation_progress(snap, writer)
    yield writer.item("file_paths", _file_paths(snap))
    yield writer.item("metadata", _metadata(snap))
    yield writer.close()


_STREAM = "\u0000streamed\u0000"
"""Placeholder for the part of a member that is streamed in batches."""


def _batched_list(entries: Iterator[Any]) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


class _ObjectWriter:
    """Writes one top-level JSON object member by member, pretty-printed or compact.

    A member may contain :data:`_STREAM` once: that spot is filled with the
    elements of a stream of batches (dicts for an object, lists for an array),
    so no more than one batch is ever held in memory.
    """

    def __init__(self, indent: int, first: bool = True) -> None:
        self.indent = indent
        self.first = first

    def _encode(self, value: Any, depth: int) -> bytes:
        data = msgspec.json.encode(value)
        if not self.indent:
            return data
        data = msgspec.json.format(data, indent=self.indent)
        return data.replace(b"\n", b"\n" + b" " * (self.indent * depth))

    def _key(self, key: str) -> bytes:
        lead = b"{" if self.first else b","
        self.first = False
        newline = b"\n" + b" " * self.indent if self.indent else b""
        return lead + newline + msgspec.json.encode(key) + (b": " if self.indent else b":")

    def item(self, key: str, value: Any) -> bytes:
        return self._key(key) + self._encode(value, depth=1)

    def item_with_stream(
        self,
        key: str,
        value: Any,
        batches: Iterator[dict[str, Any]] | Iterator[list[Any]],
        brackets: bytes = b"{}",
    ) -> Iterator[bytes]:
        encoded = self._key(key) + self._encode(value, depth=1)
        marker = msgspec.json.encode(_STREAM)
        head, tail = encoded.split(marker)
        line_start = head.rfind(b"\n") + 1
        depth = (len(head) - line_start - len(head[line_start:].lstrip())) // max(self.indent, 1)
        depth = depth + 1 if self.indent else 0
        pad = b"\n" + b" " * (self.indent * depth) if self.indent else b""
        opened = False
        for batch in batches:
            body = self._encode(batch, depth=depth - 1)[1:-1].strip()
            if not body:
                continue
            yield b"," if opened else head + brackets[:1]
            opened = True
            yield pad + body
        if not opened:
            yield head + brackets
        else:
            closing = b"\n" + b" " * (self.indent * (depth - 1)) if self.indent else b""
            yield closing + brackets[1:]
        yield tail

    def close(self) -> bytes:
        return (b"{" if self.first else b"") + (b"\n}\n" if self.indent else b"}")


# -- small helpers -----------------------------------------------------------------


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _path(snap: JobSnapshot, summary_key: str, name: str) -> str | None:
    recorded = _text(snap.summary.get(summary_key))
    if recorded:
        return recorded
    candidate = os.path.join(snap.job_dir, name)
    return candidate if os.path.isdir(candidate) else None


def _backed_up_config(job_dir: str) -> str | None:
    try:
        names = sorted(os.listdir(job_dir))
    except OSError:
        return None
    for name in names:
        if name.endswith((".yaml", ".yml")):
            return os.path.join(job_dir, name)
    return None


def _resumption_command(snap: JobSnapshot, config_file: Any) -> str | None:
    recorded = _text(snap.summary.get("resumption_command"))
    if recorded or snap.overall_status == ProcessingStatus.COMPLETED:
        return recorded
    config = config_file[0] if isinstance(config_file, list) and config_file else config_file
    if not isinstance(config, str):
        config = _backed_up_config(snap.job_dir)
    if not config:
        return None
    return f"dj-process --config {config} --job_id {snap.job_id}"


def _first_partition_error(state: JobState) -> str | None:
    for _, part in _partitions(state):
        if state.partition_status(part) == Status.FAILED:
            failed = (run.error_message for run in state.op_runs(part) if run.error_message)
            return part.error_message or next(failed, None)
    return None
