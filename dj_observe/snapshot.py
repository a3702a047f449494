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
import functools
import io
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar

import msgspec

from dj_observe.eventlog import ReadStats
from dj_observe.events import EventType, to_float
from dj_observe.jsonstream import STREAM, FilePart, ObjectWriter, opened_and_unlinked, spools
from dj_observe.oprows import PARTITIONS_PER_BATCH, OpRows, group_timed_count, op_rows
from dj_observe.parallel import ForkedOutput, fork_is_safe
from dj_observe.sidefiles import CLI_ARGUMENTS, command_line_config
from dj_observe.state import JobState, OpRun, PartitionState, Status
from dj_observe.timing import format_duration, job_status, job_timing
from dj_observe.tracker import JobDirectoryError, JobTracker

__all__ = [
    "JobDirectoryError",
    "JobSnapshot",
    "LazyMapping",
    "OperationStatus",
    "PartitionStatus",
    "ProcessingSnapshotAnalyzer",
    "ProcessingStatus",
    "create_snapshot",
    "format_duration",
    "operation_statuses",
    "partition_statuses",
    "write_json",
]

_K = TypeVar("_K")
_V = TypeVar("_V")

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
    """The answers the snapshot JSON is made of.

    The fields up to ``overall_status`` are Data-Juicer's, in its order and with its
    defaults; the rest are dj-observe's.  A snapshot from :meth:`ProcessingSnapshotAnalyzer.
    generate_snapshot` fills ``partition_statuses`` and ``operation_statuses`` on first access
    (they are large for large jobs).
    """

    job_id: str
    job_start_time: float | None = None
    job_end_time: float | None = None
    total_duration: float | None = None
    total_partitions: int = 0
    completed_partitions: int = 0
    failed_partitions: int = 0
    in_progress_partitions: int = 0
    total_operations: int = 0
    completed_operations: int = 0
    failed_operations: int = 0
    checkpointed_operations: int = 0
    partition_statuses: Mapping[int, PartitionStatus] | None = None
    operation_statuses: Mapping[str, OperationStatus] | None = None
    dag_structure: dict[str, Any] | None = None
    checkpoint_strategy: str | None = None
    checkpoint_frequency: str | None = None
    last_checkpoint_time: float | None = None
    resumable: bool = False
    overall_status: ProcessingStatus = ProcessingStatus.NOT_STARTED
    timing_source: str = "events"
    generated_at: float = field(default_factory=time.time)
    job_dir: str = ""
    state: JobState = field(default_factory=JobState, repr=False)
    stats: ReadStats = field(default_factory=ReadStats, repr=False)
    summary: dict[str, Any] = field(default_factory=dict, repr=False)
    dag_plan_loaded: bool = False
    log_files: list[str] = field(default_factory=list)
    side_file_errors: list[str] = field(default_factory=list)
    command_line_config: str | None = None
    """The ``--config`` of Data-Juicer's ``cli.yaml``, when the resumption command needs it."""
    skipped: dict[int, list[str]] = field(default_factory=dict)
    """Completed partitions' ops that never completed (see ``JobState.skipped_ops``)."""
    count_group_timed: Callable[[], int] | None = field(default=None, repr=False)
    """Counts :attr:`group_timed_operations` (a persisted fold keeps counts by partition)."""

    @functools.cached_property
    def group_timed_operations(self) -> int:
        """Op runs timed only together with their checkpoint group: no per-op duration."""
        return self.count_group_timed() if self.count_group_timed else group_timed_count(self.state)

    @property
    def last_event_time(self) -> float | None:
        return self.state.last_event_time

    @property
    def seconds_since_last_event(self) -> float | None:
        last = self.state.last_event_time
        return None if last is None else max(0.0, self.generated_at - last)


def partition_statuses(state: JobState) -> dict[int, PartitionStatus]:
    """Every partition of the fold, by id."""
    return {
        part.partition_id: _partition_status(state, rows, i)
        for rows in _row_chunks(state, [part for _, part in _partitions(state)])
        for i, part in enumerate(rows.partitions)
    }


def operation_statuses(state: JobState) -> dict[str, OperationStatus]:
    """Every op run of the fold, keyed ``p{partition}_op{idx}_{name}``."""
    return {
        operation_key(run): operation_status(run)
        for _, part in _partitions(state)
        for run in state.op_runs(part)
    }


class LazyMapping(Mapping[_K, _V]):
    """A read-only mapping built by ``build`` on first access."""

    def __init__(self, build: Callable[[], dict[_K, _V]]) -> None:
        self._build: Callable[[], dict[_K, _V]] | None = build
        self._data: dict[_K, _V] = {}

    def _items(self) -> dict[_K, _V]:
        if self._build is not None:
            self._data, self._build = self._build(), None
        return self._data

    def __getitem__(self, key: _K) -> _V:
        return self._items()[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __repr__(self) -> str:
        return repr(self._items()) if self._build is None else f"{type(self).__name__}(...)"


class ProcessingSnapshotAnalyzer:
    """Builds snapshots of one job directory (``work_dir``; ``job_dir`` is the same).

    With ``cache=True`` the fold is kept between processes (:mod:`dj_observe.foldcache`):
    a later analyzer of the same directory folds only what the logs appended since.
    """

    def __init__(
        self,
        work_dir: str | os.PathLike[str] | None = None,
        *,
        workers: int = 2,
        job_dir: str | os.PathLike[str] | None = None,
        cache: bool = False,
    ) -> None:
        directory = work_dir if work_dir is not None else job_dir
        if directory is None:
            raise TypeError("ProcessingSnapshotAnalyzer() needs a work_dir")
        self.work_dir = Path(directory)
        self.job_dir = str(directory)
        self.cache = cache
        self.tracker = JobTracker(self.work_dir, workers=workers)
        self._stored_offsets: dict[Path, int] = {}

    def generate_snapshot(self) -> JobSnapshot:
        """Fold what was appended since the last call and summarise the job."""
        if not self.cache:
            return _summarise(self.tracker, self.tracker.refresh(), self.job_dir)
        from dj_observe.foldcache import refresh_cached

        fold = refresh_cached(self.tracker, self._stored_offsets)
        self._stored_offsets = fold.stored_offsets
        snapshot = _summarise(self.tracker, fold.state, self.job_dir)
        snapshot.count_group_timed = fold.group_timed
        return snapshot

    def to_json_dict(self, snapshot: JobSnapshot, *, summary: bool = False) -> dict[str, Any]:
        """The spec's JSON document as a dict (see :func:`write_json` for large jobs)."""
        buffer = io.BytesIO()
        write_json(snapshot, buffer, indent=0, summary=summary)
        return msgspec.json.decode(buffer.getbuffer(), type=dict[str, Any])


def create_snapshot(
    work_dir: str | os.PathLike[str], detailed: bool = False, *, cache: bool = False
) -> JobSnapshot:
    """Snapshot a job directory in one call (``detailed`` is accepted, as in Data-Juicer)."""
    return ProcessingSnapshotAnalyzer(work_dir, cache=cache).generate_snapshot()


def write_json(
    snapshot: JobSnapshot,
    stream: IO[bytes],
    *,
    indent: int = 2,
    workers: int = 1,
    summary: bool = False,
) -> None:
    """Write the snapshot JSON to a binary stream, piece by piece.

    With ``workers > 1`` a large job's ``operation_progress`` is rendered in a
    forked child while this process renders the rest.  ``summary`` leaves out what
    grows with the job: ``partition_progress``, ``operation_progress`` and the list of
    checkpointed ops.
    """
    chunks = (
        _summary_chunks(snapshot, indent) if summary else _json_chunks(snapshot, indent, workers)
    )
    for chunk in chunks:
        if isinstance(chunk, FilePart):
            chunk.copy_to(stream)
        else:
            stream.write(chunk)


# -- summarising -------------------------------------------------------------------


def _summarise(tracker: JobTracker, state: JobState, job_dir: str) -> JobSnapshot:
    summary = tracker.summary.data if tracker.summary and tracker.summary.data else {}
    partitions = state.partition_counts()
    ops = state.op_counts()
    total_ops = max(len(state.ops), state.total_partitions * state.ops_per_partition)
    status = job_status(state, partitions, summary.get("status"))
    timing = job_timing(state, summary, status)
    errors = [
        side.error
        for side in (tracker.summary, tracker.plan, tracker.partitioning)
        if side is not None and side.error
    ]
    command_line, cli_error = (None, None)
    if status != Status.COMPLETED and not summary.get("resumption_command"):
        command_line, cli_error = command_line_config(job_dir)  # for the resumption command
    if cli_error:
        errors.append(cli_error)
    checkpointed = state.checkpointed_op_count()
    return JobSnapshot(
        job_id=_text(summary.get("job_id")) or state.job_id or Path(job_dir).name,
        partition_statuses=LazyMapping(functools.partial(partition_statuses, state)),
        operation_statuses=LazyMapping(functools.partial(operation_statuses, state)),
        dag_structure=_dag_structure(state),
        checkpoint_frequency=_text(summary.get("checkpoint_frequency")),
        overall_status=ProcessingStatus.of(status),
        job_start_time=timing.start,
        job_end_time=timing.end,
        total_duration=timing.duration,
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
        timing_source=timing.source,
        generated_at=time.time(),
        job_dir=job_dir,
        state=state,
        stats=tracker.stats,
        summary=summary,
        dag_plan_loaded=bool(tracker.plan and tracker.plan.loaded),
        log_files=[str(path) for path in tracker.log_files],
        side_file_errors=errors,
        command_line_config=command_line,
        skipped=state.skipped_operations(),
    )


def _dag_structure(state: JobState) -> dict[str, Any]:
    """Data-Juicer's ``dag_structure`` member; empty when the job's DAG is unknown."""
    dag = state.dag
    if not dag.known:
        return {}
    return {
        "total_nodes": dag.total_nodes or 0,
        "total_edges": dag.total_edges or 0,
        "parallel_groups": dag.parallel_groups or 0,
        "execution_plan": dag.execution_plan,
        "metadata": dag.metadata,
    }


# -- entries -----------------------------------------------------------------------


def _partitions(state: JobState) -> list[tuple[int, PartitionState]]:
    parts = state.partitions
    return [(pid, parts[pid]) for pid in sorted(parts)]


def operation_key(run: OpRun) -> str:
    """The spec's op key, ``p{partition}_op{idx}_{name}``."""
    return _key(run.partition_id, run.operation_idx, run.operation_name)


def _key(partition_id: int, idx: int | None, name: str) -> str:
    return f"p{partition_id}_op{'' if idx is None else idx}_{name}"


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


def partition_status(state: JobState, part: PartitionState) -> PartitionStatus:
    """A partition's entry: its status, and its ops by outcome, in pipeline order."""
    return _partition_status(state, op_rows(state, [part]), 0)


def _partition_status(state: JobState, rows: OpRows, i: int) -> PartitionStatus:
    """The entry of ``rows.partitions[i]``."""
    part = rows.partitions[i]
    status, current, completed, failed, checkpointed, error, progress = _partition_facts(
        state, rows, i
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
        current_operation=current,
        completed_operations=completed,
        failed_operations=failed,
        checkpointed_operations=checkpointed,
        error_message=error,
        progress_percentage=progress,
    )


def _partition_entry(state: JobState, rows: OpRows, i: int) -> _PartitionEntry:
    """The ``partition_progress`` value of ``rows.partitions[i]`` (as :func:`_partition_status`,
    without the API's objects)."""
    part = rows.partitions[i]
    status, current, completed, failed, checkpointed, error, progress = _partition_facts(
        state, rows, i
    )
    return _PartitionEntry(
        _LABELS[status],
        part.sample_count,
        part.creation_start_time,
        part.creation_end_time,
        part.start_time,
        part.end_time if status >= Status.COMPLETED else None,
        current,
        completed,
        failed,
        checkpointed,
        error,
        progress,
    )


def _partition_facts(state: JobState, rows: OpRows, i: int) -> tuple[Any, ...]:
    """Status, current op, completed / failed / checkpointed op names, error and progress."""
    part = rows.partitions[i]
    status = state.partition_status(part)
    first, last = rows.bounds[i], rows.bounds[i + 1]
    names, statuses = rows.name[first:last], rows.status[first:last]
    completed = [name for name, code in zip(names, statuses, strict=True) if code == _DONE]
    failed = [row for row, code in enumerate(statuses, first) if code == Status.FAILED]
    current = None
    if status == Status.IN_PROGRESS:
        running = [row for row, code in enumerate(statuses, first) if code == Status.IN_PROGRESS]
        if running:  # the latest started; ties go to the later in pipeline order
            current = rows.name[max(reversed(running), key=lambda row: rows.start_time[row] or 0.0)]
    error = None
    if status == Status.FAILED:
        error = part.error_message or next(
            (rows.error_message[row] for row in failed if rows.error_message[row]), None
        )
    checkpointed = [
        name
        for name, time_ in zip(names, rows.checkpoint_time[first:last], strict=True)
        if time_ is not None
    ]
    expected = max(state.ops_per_partition, len(part.ops), 1)
    progress = (
        100.0
        if status == Status.COMPLETED and len(completed) >= expected
        else round(min(100.0, 100.0 * len(completed) / expected), 2)
    )
    failed_names = [rows.name[row] for row in failed]
    return status, current, completed, failed_names, checkpointed, error, progress


_DONE = Status.COMPLETED


class _PartitionEntry(msgspec.Struct, gc=False):
    """One ``partition_progress`` value, its fields in the spec's order."""

    status: str
    sample_count: int | None
    creation_start_time: float | None
    creation_end_time: float | None
    processing_start_time: float | None
    processing_end_time: float | None
    current_operation: str | None
    completed_operations: list[str]
    failed_operations: list[str]
    checkpointed_operations: list[str]
    error_message: str | None
    progress_percentage: float


class _CheckpointEntry(msgspec.Struct, gc=False):
    """One ``checkpointed_operations`` element."""

    operation_key: str
    operation_name: str
    checkpoint_time: float


class _OperationEntry(msgspec.Struct, gc=False, omit_defaults=True):
    """One ``operation_progress`` value, its fields in the spec's order; then, where they
    were measured, the run's CPU seconds and peak memory (left out when unknown)."""

    operation_name: str
    operation_idx: int | None
    status: str
    start_time: float | None
    end_time: float | None
    duration: float | None
    input_rows: int | None
    output_rows: int | None
    checkpoint_time: float | None
    error_message: str | None
    progress_percentage: float
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None


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
        "job_start_time": snap.job_start_time,
        "job_end_time": snap.job_end_time,
        "total_duration": snap.total_duration,
        "timing": {
            "start_time": snap.job_start_time,
            "end_time": snap.job_end_time,
            "duration_seconds": snap.total_duration,
            "duration_formatted": format_duration(snap.total_duration),
            "job_summary_duration": to_float(summary.get("duration")),
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
        or backed_up_config(snap.job_dir),
    }


def _metadata(snap: JobSnapshot, group_timed: int) -> dict[str, Any]:
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
        "skipped_operations": {str(pid): names for pid, names in snap.skipped.items()},
        "group_timed_operations": group_timed,
        "last_event_time": state.last_event_time,
        "seconds_since_last_event": _rounded(snap.seconds_since_last_event),
    }


def _row_chunks(state: JobState, partitions: list[PartitionState]) -> Iterator[OpRows]:
    """The partitions' op runs in render order, a bounded number of partitions at a time."""
    for first in range(0, len(partitions), PARTITIONS_PER_BATCH):
        yield op_rows(state, partitions[first : first + PARTITIONS_PER_BATCH])


def _partition_batch(state: JobState, rows: OpRows) -> dict[str, _PartitionEntry]:
    return {
        str(part.partition_id): _partition_entry(state, rows, i)
        for i, part in enumerate(rows.partitions)
    }


def _keys(rows: OpRows) -> list[str]:
    """The rows' ``operation_progress`` keys (:func:`_key`, inlined: one call fewer per row)."""
    return [
        f"p{pid}_op{'' if idx is None else idx}_{name}"
        for pid, idx, name in zip(rows.partition_id, rows.index, rows.name, strict=True)
    ]


def _operation_batch(rows: OpRows, keys: list[str]) -> dict[str, _OperationEntry]:
    completed = Status.COMPLETED
    entries = map(
        _OperationEntry,
        rows.name,
        rows.index,
        list(map(_LABELS.__getitem__, rows.status)),
        rows.start_time,
        rows.end_time,
        rows.duration,
        rows.input_rows,
        rows.output_rows,
        rows.checkpoint_time,
        rows.error_message,
        [100.0 if status == completed else 0.0 for status in rows.status],
        rows.cpu_seconds,
        rows.peak_rss_bytes,
    )
    return dict(zip(keys, entries, strict=True))


def _checkpointed_batch(rows: OpRows, keys: list[str]) -> list[_CheckpointEntry]:
    names = rows.name
    return [
        _CheckpointEntry(keys[row], names[row], time_)
        for row, time_ in enumerate(rows.checkpoint_time)
        if time_ is not None
    ]


_LABELS = tuple(status.label for status in Status)
"""Status code -> the spec's spelling."""


# The members whose values grow with the job: written batch by batch, in this order.
_CHECKPOINTED, _PARTITIONS, _OPERATIONS = range(3)


def _render_batches(
    snap: JobSnapshot,
    partitions: list[PartitionState],
    writer: ObjectWriter,
    outputs: list[BinaryIO],
) -> int:
    """Write the partitions' elements of the three growing members, one output each;
    returns how many of their op runs were timed only with their checkpoint group
    (also written, as text, to a fourth output if there is one).

    Op runs are computed once per batch of partitions and serve all three.
    Every element batch is written with a leading comma (see :meth:`ObjectWriter.member`).
    """
    state = snap.state
    group_timed = 0
    for rows in _row_chunks(state, partitions):
        keys = _keys(rows)
        batches: tuple[list[Any] | dict[str, Any], ...] = (
            _checkpointed_batch(rows, keys),
            _partition_batch(state, rows),
            _operation_batch(rows, keys),
        )
        for member, batch in enumerate(batches):
            writer.write_elements(outputs[member], batch, _MEMBER_DEPTH[member])
        group_timed += rows.group_timed
    if len(outputs) > 3:
        outputs[3].write(str(group_timed).encode())
    return group_timed


_MEMBER_DEPTH = {_CHECKPOINTED: 4, _PARTITIONS: 2, _OPERATIONS: 2}
"""Nesting depth of each growing member's elements in the document."""


def _json_chunks(snap: JobSnapshot, indent: int, workers: int = 1) -> Iterator[bytes | FilePart]:
    """The document in pieces.

    The growing members (checkpointed ops, partitions, ops) are first rendered
    into temporary files, for large jobs in two halves on two processes, and
    streamed from there: memory stays bounded however large the job.
    """
    writer = ObjectWriter(indent)
    partitions = [part for _, part in _partitions(snap.state)]
    split = len(partitions)
    child = None
    if workers > 1 and len(snap.state.ops) >= PARALLEL_RENDER_MIN_OPS and fork_is_safe():
        split = len(partitions) // 2
        child = ForkedOutput(
            lambda outputs: _render_batches(snap, partitions[split:], writer, outputs), count=4
        )
    with ExitStack() as stack:
        if child is not None:
            stack.callback(child.discard)
        for key, value in _head(snap).items():  # while the child renders
            yield writer.item(key, value)
        halves = [spools(stack)]
        group_timed = _render_batches(snap, partitions[:split], writer, halves[0])
        paths = child.read() if child is not None else None
        if paths is not None:
            halves.append([stack.enter_context(opened_and_unlinked(path)) for path in paths])
            group_timed += int(halves[1].pop().read() or 0)
        elif child is not None:  # the child failed: render its half here
            halves.append(spools(stack))
            group_timed += _render_batches(snap, partitions[split:], writer, halves[1])
        members = [[half[member] for half in halves] for member in range(3)]
        yield from writer.member("checkpointing", _checkpointing(snap, STREAM), members[0], b"[]")
        yield from writer.member("partition_progress", STREAM, members[1])
        yield from writer.member("operation_progress", STREAM, members[2])
        yield from _tail(snap, writer, group_timed)


def _summary_chunks(snap: JobSnapshot, indent: int) -> Iterator[bytes]:
    """The document without its growing members (the head a monitor reads)."""
    writer = ObjectWriter(indent)
    for key, value in _head(snap).items():
        yield writer.item(key, value)
    checkpointing = _checkpointing(snap, None)
    del checkpointing["checkpoint_progress"]["checkpointed_operations"]
    yield writer.item("checkpointing", checkpointing)
    yield from _tail(snap, writer, snap.group_timed_operations)


def _tail(snap: JobSnapshot, writer: ObjectWriter, group_timed: int) -> Iterator[bytes]:
    yield writer.item("dag_structure", snap.dag_structure or {})
    yield writer.item("file_paths", _file_paths(snap))
    yield writer.item("metadata", _metadata(snap, group_timed))
    yield writer.close()


# -- small helpers -----------------------------------------------------------------


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _path(snap: JobSnapshot, summary_key: str, name: str) -> str | None:
    recorded = _text(snap.summary.get(summary_key))
    if recorded:
        return recorded
    candidate = os.path.join(snap.job_dir, name)
    return candidate if os.path.isdir(candidate) else None


def backed_up_config(job_dir: str) -> str | None:
    """The job's backed-up config: the first YAML file in its directory but ``cli.yaml``."""
    try:
        names = sorted(os.listdir(job_dir))
    except OSError:
        return None
    for name in names:
        if name.endswith((".yaml", ".yml")) and name != CLI_ARGUMENTS:
            return os.path.join(job_dir, name)
    return None


def _resumption_command(snap: JobSnapshot, config_file: Any) -> str | None:
    recorded = _text(snap.summary.get("resumption_command"))
    if recorded or snap.overall_status == ProcessingStatus.COMPLETED:
        return recorded
    config = config_file[0] if isinstance(config_file, list) and config_file else config_file
    if not isinstance(config, str):
        config = snap.command_line_config or backed_up_config(snap.job_dir)
    if not config:
        return None
    return f"dj-process --config {config} --job_id {snap.job_id}"


def _first_partition_error(state: JobState) -> str | None:
    part = state.first_failed_partition()
    if part is None:
        return None
    failed = (run.error_message for run in state.op_runs(part) if run.error_message)
    return part.error_message or next(failed, None)
