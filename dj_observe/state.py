"""The fold: job state as a pure, incremental reducer over events.

``JobState.apply(event)`` is the one place that decides what an event means.
Every field an event touches is *set* (last writer wins, or min/max/sum for
times and counts), never derived from what was there before, so

* replaying a log twice, or a duplicated event, changes nothing but counters;
* a resumed job is one job: each partition and op reflects its latest attempt;
* two states folded over consecutive pieces of a log merge into the state of the
  whole log (:meth:`JobState.merge`), which lets the reader fold on both cores.

What is derived from several fields (the status of a partition known only from
its ops, the status of the job) lives in the ``*_status`` methods below, so
every consumer (snapshot, metrics, terminal views) reads the same answer.

Op runs are stored column-wise in :class:`OpTable` (one slot per partition and
op name), so memory is O(partitions x ops) at a few dozen bytes per op run.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from dj_observe.events import (
    AnyEvent,
    EventType,
    OpMetrics,
    nested,
    op_metrics,
    text,
    to_float,
    to_int,
)

if TYPE_CHECKING:
    from dj_observe.partstore import Untouched

__all__ = [
    "MAX_EVENT_TYPES",
    "OTHER_EVENT_TYPES",
    "SKIPPED_BY_RESUME",
    "DagFacts",
    "JobState",
    "OpRun",
    "OpTable",
    "PartitionState",
    "Status",
    "error_type_of",
]

MAX_EVENT_TYPES = 256
"""Distinct event types counted by name; further unknown ones share one counter."""
OTHER_EVENT_TYPES = "(other)"
SKIPPED_BY_RESUME = "never completed: its partition completed without it (skipped on resume)"

NAN = math.nan


class Status(enum.IntEnum):
    """Lifecycle of a job, a partition or an op run."""

    NOT_STARTED = 0
    IN_PROGRESS = 1
    COMPLETED = 2
    FAILED = 3

    @property
    def label(self) -> str:
        """The spec's spelling: ``not_started``, ``in_progress``, ``completed``, ``failed``."""
        return self.name.lower()


_TERMINAL = (Status.COMPLETED, Status.FAILED)
# Plain-int codes for the fold's hot paths (an IntEnum costs a conversion per store).
_RUNNING, _DONE, _FAILED = int(Status.IN_PROGRESS), int(Status.COMPLETED), int(Status.FAILED)
_BY_CODE = tuple(Status)
_EVENT_TYPE = attrgetter("event_type")
_TIMESTAMP = attrgetter("timestamp")
_JOB_ID = attrgetter("job_id")
_STATUS_OF = attrgetter("status")
_NO_METRICS = OpMetrics()
_DAG_NODE_ID = re.compile(r"^op_(\d+)_(.+?)(?:_partition_\d+|_global)?$")

# Where an op's position in the pipeline came from, weakest first.
_FROM_OP_EVENT, _FROM_CHECKPOINT, _FROM_DAG_NODE, _FROM_PLAN = range(4)


def _is_generic_name(name: str) -> bool:
    """Data-Juicer names a loaded checkpoint's op ``op_0003``: a position, not a name."""
    return name.startswith("op_") and name[3:].isdigit()


def _is_set(value: float) -> bool:
    return value == value  # NaN marks "never set"


def _checkpointed_runs(ops: OpTable, part: PartitionState) -> int:
    """How many of the partition's op runs saved a checkpoint."""
    times = ops.checkpoint_time
    return sum(1 for slot in part.ops.values() if _is_set(times[slot]))


class OpTable:
    """Op runs, column-wise: slot ``i`` is one (partition, op name) pair.

    Floats use NaN and ints -1 for "never set"; ``status`` holds :class:`Status`
    codes, so counting runs by status is ``status.count(code)``.
    """

    __slots__ = (
        "_names",
        "attempts",
        "checkpoint_time",
        "cpu_seconds",
        "duration",
        "end_time",
        "errors",
        "index",
        "index_source",
        "input_rows",
        "measured",
        "name",
        "output_rows",
        "partition",
        "peak_rss",
        "start_time",
        "status",
    )

    _GROW = 4096

    def __init__(self) -> None:
        self.partition = array("q")
        self.name: list[str] = []
        self.index = array("q")
        self.index_source = bytearray()  # 0: index unset, else 1 + where it came from
        self.status = bytearray()
        self.start_time = array("d")
        self.end_time = array("d")
        self.duration = array("d")
        self.checkpoint_time = array("d")
        self.input_rows = array("q")
        self.output_rows = array("q")
        self.attempts = array("q")
        self.measured = bytearray()  # 1: the run's numbers were measured where the op ran
        self.cpu_seconds = array("d")
        self.peak_rss = array("q")
        self.errors: dict[int, str] = {}
        self._names: dict[str, str] = {}  # one object per op name: less memory, pickled once

    def __len__(self) -> int:
        return len(self.name)

    def _grow(self) -> None:
        """Add room for another block of slots, all "never set"."""
        block = self._GROW
        unset_float = array("d", [NAN]) * block
        unset_int = array("q", [-1]) * block
        self.partition.extend(array("q", [0]) * block)
        self.index.extend(unset_int)
        self.index_source.extend(bytes(block))
        self.status.extend(bytes(block))
        for column in (self.start_time, self.end_time, self.duration, self.checkpoint_time):
            column.extend(unset_float)
        self.input_rows.extend(unset_int)
        self.output_rows.extend(unset_int)
        self.attempts.extend(array("q", [0]) * block)
        self.measured.extend(bytes(block))
        self.cpu_seconds.extend(unset_float)
        self.peak_rss.extend(unset_int)

    def add(self, partition_id: int, name: str) -> int:
        """Append an empty run and return its slot."""
        slot = len(self.name)
        if slot == len(self.status):
            self._grow()
        self.name.append(self._names.setdefault(name, name))
        self.partition[slot] = partition_id
        return slot

    def _columns(self) -> tuple[array[Any] | bytearray, ...]:
        return (
            self.partition,
            self.index,
            self.index_source,
            self.status,
            self.start_time,
            self.end_time,
            self.duration,
            self.checkpoint_time,
            self.input_rows,
            self.output_rows,
            self.attempts,
            self.measured,
            self.cpu_seconds,
            self.peak_rss,
        )

    def trim(self) -> None:
        """Drop the unused room at the end (before pickling or counting)."""
        size = len(self.name)
        for column in self._columns():
            del column[size:]

    def extend(self, other: OpTable, slots: list[int]) -> dict[int, int]:
        """Append copies of ``other``'s runs at ``slots``, in slot order; returns their
        old slot -> new slot.  Runs of consecutive slots are copied as column slices."""
        self.trim()
        ordered = sorted(slots)
        first = len(self.name)
        renumbered = dict(zip(ordered, range(first, first + len(ordered)), strict=True))
        for start, stop in _consecutive_runs(ordered):
            self.name.extend(other.name[start:stop])
            for mine, theirs in zip(self._columns(), other._columns(), strict=True):
                mine.extend(theirs[start:stop])
        for slot, error in other.errors.items():
            if slot in renumbered:
                self.errors[renumbered[slot]] = error
        return renumbered

    def forget_run(self, slot: int) -> None:
        """Clear what op events set on a run (not its checkpoint or position)."""
        self.status[slot] = Status.NOT_STARTED
        for column in (self.start_time, self.end_time, self.duration, self.cpu_seconds):
            column[slot] = NAN
        self.input_rows[slot] = self.output_rows[slot] = self.peak_rss[slot] = -1
        self.attempts[slot] = 0
        self.errors.pop(slot, None)

    def slots_with(self, status: Status) -> list[int]:
        """Slots whose status code is ``status`` (found in C: cheap when there are few)."""
        found, codes, size = [], self.status, len(self.name)
        slot = codes.find(status, 0, size)
        while slot >= 0:
            found.append(slot)
            slot = codes.find(status, slot + 1, size)
        return found

    def count(self, status: Status) -> int:
        """Runs with this status code."""
        unused = len(self.status) - len(self.name)
        return self.status.count(status) - (unused if status == Status.NOT_STARTED else 0)


def _consecutive_runs(ordered: list[int]) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` ranges covering the sorted, distinct ``ordered`` values."""
    start = 0
    for gap in [i for i in range(1, len(ordered)) if ordered[i] != ordered[i - 1] + 1]:
        yield ordered[start], ordered[gap - 1] + 1
        start = gap
    if ordered:
        yield ordered[start], ordered[-1] + 1


class OpRun(NamedTuple):
    """A read-only view of one op run (one op on one partition)."""

    partition_id: int
    operation_name: str
    operation_idx: int | None
    status: Status
    start_time: float | None
    end_time: float | None
    duration: float | None
    input_rows: int | None
    output_rows: int | None
    checkpoint_time: float | None
    error_message: str | None
    cpu_seconds: float | None = None
    """CPU seconds its own calls used, where dj-observe measured them."""
    peak_rss_bytes: int | None = None
    """Peak resident memory of the processes that ran it, where measured."""


@dataclass(slots=True)
class PartitionState:
    """One partition.  ``status`` is ``None`` until a partition-level event arrives."""

    partition_id: int
    status: Status | None = None
    sample_count: int | None = None
    size_bytes: int | None = None
    creation_start_time: float | None = None
    creation_end_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    error_message: str | None = None
    error_type: str | None = None
    attempts: int = 0
    resumed: bool = False
    loaded_checkpoint_idx: int | None = None
    last_event_time: float | None = None
    ops: dict[str, int] = field(default_factory=dict)


MAX_PHASES = 10_000
"""Phases kept per job (checkpoint writes are one per partition and group); later ones
are counted in :attr:`JobState.phases_dropped`."""


@dataclass(slots=True)
class PhaseRun:
    """One phase of the job outside its ops: a dataset load, partitioning, an export, a
    checkpoint write (``partition_id`` set when it belongs to a partition)."""

    name: str
    partition_id: int | None = None
    start_time: float | None = None
    end_time: float | None = None
    failed: bool = False
    error_message: str | None = None

    @property
    def key(self) -> tuple[str, int | None]:
        return self.name, self.partition_id


_PARTITION_FIELDS = tuple(item.name for item in dataclasses.fields(PartitionState))[:-1]
"""Every field but the last, ``ops`` (so positional construction leaves it to its default)."""
assert dataclasses.fields(PartitionState)[-1].name == "ops"


@dataclass
class DagFacts:
    """The job's DAG: node, edge and parallel-group counts, the execution plan and its
    metadata (from a ``dag_build_complete`` event or the plan file)."""

    total_nodes: int | None = None
    total_edges: int | None = None
    parallel_groups: int | None = None
    execution_plan: list[Any] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    from_plan: bool = False

    def note_counts(self, nodes: int | None, edges: int | None, groups: int | None) -> None:
        if self.from_plan:
            return
        self.total_nodes = nodes if nodes is not None else self.total_nodes
        self.total_edges = edges if edges is not None else self.total_edges
        self.parallel_groups = groups if groups is not None else self.parallel_groups

    @property
    def known(self) -> bool:
        return self.from_plan or self.total_nodes is not None


class JobState:
    """Everything known about one job, folded from its events.

    Feed events with :meth:`apply`; read derived answers with :meth:`job_status`,
    :meth:`partition_status`, :meth:`op_runs` and friends.
    """

    def __init__(self) -> None:
        self.job_id: str | None = None
        self.executor_type: str | None = None
        self.pipeline: str | None = None
        self.config_file: Any = None
        self.work_dir: str | None = None
        self.checkpoint_strategy: str | None = None
        self.status: Status | None = None
        self.error_message: str | None = None
        self.start_time: float | None = None
        self.end_time: float | None = None
        self.duration: float | None = None
        self.first_event_time: float | None = None
        self.last_event_time: float | None = None
        self.last_checkpoint_time: float | None = None
        self.planned_partitions: int | None = None
        self.planned_ops: list[str] | None = None
        self.resume_count = 0
        self.process_ids: set[int] = set()
        self.checkpoints_saved = 0
        self.checkpoints_loaded = 0
        self.events_applied = 0
        self.event_counts: dict[str, int] = {}
        self.partitions: MutableMapping[int, PartitionState] = {}
        """By id: a dict, or for a fold restored from the fold cache, its
        :class:`~dj_observe.partstore.StoredPartitions`."""
        self.ops = OpTable()
        self.phases: list[PhaseRun] = []
        self.phases_dropped = 0
        self.has_resources = False
        """Whether an op run reported its CPU seconds or peak memory."""
        self._positions: dict[str, tuple[int, int]] = {}
        self._placed: set[str] = set()  # names a plan or a DAG node id placed for good
        self._op_names_seen: set[str] = set()
        self._most_ops = 0
        self._checkpointed = 0
        self.dag = DagFacts()
        self._bind_handlers()

    def _bind_handlers(self) -> None:
        handlers = {
            EventType.JOB_START: self._job_start,
            EventType.JOB_RESTART: self._job_restart,
            EventType.JOB_COMPLETE: self._job_complete,
            EventType.JOB_FAILED: self._job_failed,
            EventType.PARTITION_CREATION_START: self._partition_creation_start,
            EventType.PARTITION_CREATION_COMPLETE: self._partition_creation_complete,
            EventType.PARTITION_START: self._partition_start,
            EventType.PARTITION_RESUME: self._partition_start,
            EventType.PARTITION_COMPLETE: self._partition_complete,
            EventType.PARTITION_FAILED: self._partition_failed,
            EventType.OP_START: self._op_start,
            EventType.OP_COMPLETE: self._op_complete,
            EventType.OP_FAILED: self._op_failed,
            EventType.CHECKPOINT_SAVE: self._checkpoint_save,
            EventType.CHECKPOINT_LOAD: self._checkpoint_load,
            EventType.JOB_INFO: self._job_info,
            EventType.PHASE_START: self._phase_start,
            EventType.PHASE_COMPLETE: self._phase_complete,
        }
        # Keyed by the plain string: events carry ``str`` types, unknown ones included.
        self._handlers = {kind.value: handler for kind, handler in handlers.items()}
        self._handlers[EventType.DAG_BUILD_COMPLETE.value] = self._dag_build_complete

    def __getstate__(self) -> dict[str, Any]:
        """Partitions go column by column (a worker sends its fold back pickled); each
        one's ``ops`` is rebuilt from the op table, whose slots they list in order."""
        self.ops.trim()
        state = self.__dict__.copy()
        del state["_handlers"]
        parts = list(state.pop("partitions").values())
        state["_partition_columns"] = [
            [getattr(part, name) for part in parts] for name in _PARTITION_FIELDS
        ]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        columns = state.pop("_partition_columns")
        self.__dict__.update(state)
        parts = [PartitionState(*values) for values in zip(*columns, strict=True)]
        self.partitions = {part.partition_id: part for part in parts}
        ops, partitions = self.ops, self.partitions
        for slot, (pid, name) in enumerate(zip(ops.partition, ops.name, strict=True)):
            partitions[pid].ops[name] = slot
        self._bind_handlers()

    # -- feeding -----------------------------------------------------------------

    def apply(self, event: AnyEvent) -> None:
        """Fold one event into the state (:meth:`apply_all` does the same for a batch)."""
        kind = event.event_type
        self.events_applied += 1
        counts = self.event_counts
        if kind not in counts and len(counts) >= MAX_EVENT_TYPES:
            kind = OTHER_EVENT_TYPES
        counts[kind] = counts.get(kind, 0) + 1
        ts = event.timestamp
        if ts is not None:
            self.first_event_time = _min(self.first_event_time, ts)
            self.last_event_time = _max(self.last_event_time, ts)
        if self.job_id is None and event.job_id:
            self.job_id = event.job_id
        handler = self._handlers.get(event.event_type)
        if handler is not None:
            handler(event, ts)

    def apply_all(self, events: Iterable[AnyEvent]) -> JobState:
        """Fold events in order; returns ``self``.

        Bookkeeping over the whole batch (counts by type, first and last
        timestamps) runs in C-level built-ins; only the handlers run per event.
        """
        if not isinstance(events, (list, tuple)):
            events = list(events)
        if not events:
            return self
        self.events_applied += len(events)
        counts = self.event_counts
        for kind, count in Counter(map(_EVENT_TYPE, events)).items():
            if kind not in counts and len(counts) >= MAX_EVENT_TYPES:
                kind = OTHER_EVENT_TYPES
            counts[kind] = counts.get(kind, 0) + count
        stamps = [ts for ts in map(_TIMESTAMP, events) if ts is not None]
        if stamps:
            self.first_event_time = _min(self.first_event_time, min(stamps))
            self.last_event_time = _max(self.last_event_time, max(stamps))
        if self.job_id is None:
            self.job_id = next(filter(None, map(_JOB_ID, events)), None)
        handlers = self._handlers
        for event in events:
            handler = handlers.get(event.event_type)
            if handler is not None:
                handler(event, event.timestamp)
        return self

    def set_plan(self, op_names: list[str]) -> None:
        """Record the pipeline's op list (from the DAG plan or a config): names and positions."""
        self.planned_ops = list(op_names)
        for idx, name in enumerate(op_names):
            self._set_position(name, idx, _FROM_PLAN)

    def note_partition_count(self, count: int) -> None:
        """Record how many partitions the job was cut into (e.g. from partitioning_info.json)."""
        if self.planned_partitions is None or count > self.planned_partitions:
            self.planned_partitions = count

    def note_partition(self, partition_id: int, sample_count: int | None = None) -> None:
        """Record a partition known from outside the log (it may not have started yet)."""
        part = self.partitions.get(partition_id)
        if part is None:
            part = self.partitions[partition_id] = PartitionState(partition_id)
        if part.sample_count is None and sample_count is not None:
            part.sample_count = sample_count

    # -- job handlers --------------------------------------------------------------

    def _job_start(self, event: AnyEvent, ts: float | None) -> None:
        self._job_running()
        if event.process_id is not None:
            self.process_ids.add(event.process_id)
        if ts is not None and (self.start_time is None or ts < self.start_time):
            self.start_time = ts
        meta = nested(event.metadata)
        config = nested(event.config)
        summary = meta.get("config_summary")
        summary = summary if isinstance(summary, dict) else {}
        if meta.get("is_resuming") is True:
            self.resume_count += 1
        self.executor_type = (
            _str(config.get("executor_type"))
            or _str(summary.get("executor_type"))
            or _str(meta.get("executor_type"))
            or self.executor_type
        )
        self.work_dir = _str(config.get("work_dir")) or _str(meta.get("work_dir")) or self.work_dir
        self.pipeline = (
            _str(meta.get("pipeline"))
            or _str(meta.get("project_name"))
            or _str(config.get("project_name"))
            or self.pipeline
        )
        config_file = meta.get("config_file") or config.get("config_file")
        if config_file:
            self.config_file = config_file
        strategy = (
            _str(meta.get("checkpoint_strategy"))
            or _str(summary.get("checkpoint_strategy"))
            or _str(_nested(config, "checkpoint", "strategy"))
        )
        if strategy:
            self.checkpoint_strategy = strategy
        partitions = to_int(meta.get("num_partitions"))
        if partitions is not None and partitions > 0:
            self.note_partition_count(partitions)
        operations = meta.get("operations")
        if isinstance(operations, list) and all(isinstance(op, str) for op in operations):
            self.set_plan(operations)
        self.start_time = _min(self.start_time, to_float(meta.get("original_start_time")))

    def _job_info(self, event: AnyEvent, ts: float | None) -> None:
        meta = nested(event.metadata)
        self.pipeline = _str(meta.get("pipeline")) or self.pipeline
        self.executor_type = _str(meta.get("executor_type")) or self.executor_type
        self.checkpoint_strategy = _str(meta.get("checkpoint_strategy")) or self.checkpoint_strategy
        operations = meta.get("operations")
        if isinstance(operations, list) and all(isinstance(op, str) for op in operations):
            self.set_plan(operations)
        self.start_time = _min(self.start_time, to_float(meta.get("original_start_time")))

    def _phase_start(self, event: AnyEvent, ts: float | None) -> None:
        name = _str(nested(event.metadata).get("phase"))
        if not name:
            return
        if len(self.phases) >= MAX_PHASES:
            self.phases_dropped += 1
            return
        self.phases.append(PhaseRun(name[:128], event.partition_id, start_time=ts))

    def _phase_complete(self, event: AnyEvent, ts: float | None) -> None:
        name = _str(nested(event.metadata).get("phase"))
        if not name:
            return
        phase = self._open_phase((name[:128], event.partition_id))
        if phase is None:  # its start is in an earlier piece of the log, or was dropped
            if len(self.phases) >= MAX_PHASES:
                self.phases_dropped += 1
                return
            phase = PhaseRun(name[:128], event.partition_id)
            self.phases.append(phase)
        phase.end_time = ts
        if event.status == "failed":
            phase.failed = True
            phase.error_message = _clean_error(event.error_message or text(event.message))

    def _open_phase(self, key: tuple[str, int | None]) -> PhaseRun | None:
        """The latest phase of ``key`` that has not ended."""
        for phase in reversed(self.phases):
            if phase.key == key and phase.end_time is None and phase.start_time is not None:
                return phase
        return None

    def _job_running(self) -> None:
        """A (new) run began: the job is in progress and a previous run's ending is gone."""
        self.status = Status.IN_PROGRESS
        self.end_time = None
        self.error_message = None

    def _job_restart(self, event: AnyEvent, ts: float | None) -> None:
        self._job_running()
        self.resume_count += 1
        if event.process_id is not None:
            self.process_ids.add(event.process_id)
        original = to_float(nested(event.metadata).get("original_start_time"))
        self.start_time = _min(self.start_time, original if original is not None else ts)

    def _job_complete(self, event: AnyEvent, ts: float | None) -> None:
        self.status = Status.COMPLETED
        self.end_time = ts
        self.error_message = None
        duration = event.duration if event.duration is not None else event.job_duration
        if duration is not None:
            self.duration = duration

    def _job_failed(self, event: AnyEvent, ts: float | None) -> None:
        self.status = Status.FAILED
        self.end_time = ts
        self.error_message = _clean_error(event.error_message or text(event.message))
        if event.duration is not None:
            self.duration = event.duration

    # -- partition handlers --------------------------------------------------------

    def _partition(self, event: AnyEvent, ts: float | None) -> PartitionState | None:
        pid = event.partition_id
        if pid is None:
            return None
        part = self.partitions.get(pid)
        if part is None:
            part = self.partitions[pid] = PartitionState(pid)
        if ts is not None:
            last = part.last_event_time
            if last is None or ts > last:
                part.last_event_time = ts
        return part

    def _partition_creation_start(self, event: AnyEvent, ts: float | None) -> None:
        part = self._partition(event, ts)
        if part is not None:
            part.creation_start_time = ts

    def _partition_creation_complete(self, event: AnyEvent, ts: float | None) -> None:
        part = self._partition(event, ts)
        if part is not None:
            part.creation_end_time = ts
            self._partition_sizes(part, event)

    def _partition_sizes(self, part: PartitionState, event: AnyEvent) -> None:
        meta = nested(event.metadata)
        detail = nested(event.partition_meta)
        samples = event.sample_count
        if samples is None:
            samples = to_int(meta.get("sample_count", detail.get("sample_count")))
        if samples is not None:
            part.sample_count = samples
        size = to_int(meta.get("partition_size_bytes", detail.get("file_size_bytes")))
        if size is not None:
            part.size_bytes = size

    def _partition_start(self, event: AnyEvent, ts: float | None) -> None:
        part = self._partition(event, ts)
        if part is None:
            return
        part.status = Status.IN_PROGRESS
        part.start_time = ts
        part.attempts += 1
        if event.event_type == EventType.PARTITION_RESUME:
            part.resumed = True
        self._partition_sizes(part, event)

    def _partition_complete(self, event: AnyEvent, ts: float | None) -> None:
        part = self._partition(event, ts)
        if part is None:
            return
        part.end_time = ts
        meta = nested(event.metadata)
        if meta.get("success") is False:
            part.status = Status.FAILED
            part.error_message = _clean_error(
                _str(meta.get("error")) or event.error_message or text(event.message)
            )
        else:
            part.status = Status.COMPLETED

    def _partition_failed(self, event: AnyEvent, ts: float | None) -> None:
        part = self._partition(event, ts)
        if part is None:
            return
        part.status = Status.FAILED
        if ts is not None:
            part.end_time = ts
        error = _clean_error(event.error_message or text(event.message))
        if error is not None:
            part.error_message = error
        error_type = _error_type(event)
        if error_type is not None:
            part.error_type = error_type

    # -- op handlers ---------------------------------------------------------------

    def _op_slot(self, event: AnyEvent, ts: float | None) -> int | None:
        pid = event.partition_id
        part = None if pid is None else self.partitions.get(pid)  # _partition()'s usual case
        if part is None or ts is None or part.last_event_time is None:
            part = self._partition(event, ts)
            if part is None:
                return None
        elif ts > part.last_event_time:
            part.last_event_time = ts
        name = event.operation_name
        if not name:
            return None
        slot = part.ops.get(name)
        if slot is None:
            if _is_generic_name(name) and event.operation_idx is not None:
                real = self._name_at(event.operation_idx)
                if real is not None:
                    known = part.ops.get(real)
                    return self._new_slot(part, real) if known is None else known
            slot = self._new_slot(part, name)
        return slot

    def _new_slot(self, part: PartitionState, name: str) -> int:
        """A new op run of ``part``, recorded in its ``ops``."""
        self._op_names_seen.add(name)
        runs = len(part.ops) + 1
        if runs > self._most_ops:
            self._most_ops = runs
        slot = part.ops[name] = self.ops.add(part.partition_id, name)
        return slot

    def _op_position(self, event: AnyEvent, slot: int, strength: int, node_id: Any) -> None:
        """Learn the op's position from the event (callers skip ops already placed)."""
        name = self.ops.name[slot]
        if node_id is None and event.op_args:
            node_id = nested(event.op_args).get("dag_node_id")
        match = _DAG_NODE_ID.match(node_id) if isinstance(node_id, str) else None
        if match and match.group(2) == name:
            self._set_position(name, int(match.group(1)) - 1, _FROM_DAG_NODE)
            return
        idx = event.operation_idx
        if idx is not None:
            self._set_position(name, idx, strength)
            ops = self.ops
            if strength + 1 >= ops.index_source[slot]:  # last writer of the strongest source
                ops.index[slot] = idx
                ops.index_source[slot] = strength + 1

    def _measured_slot(self, event: AnyEvent, ts: float | None) -> int | None:
        """The event's op run, unless the event adds nothing to it: a run that has
        measured events ignores the executor's own op events, and its first measured
        event replaces what those had set."""
        slot = self._op_slot(event, ts)
        if slot is None:
            return None
        ops = self.ops
        if ops.measured[slot]:
            return slot if event.measured else None
        if event.measured:
            ops.forget_run(slot)
            ops.measured[slot] = 1
        return slot

    def _op_start(self, event: AnyEvent, ts: float | None) -> None:
        slot = self._measured_slot(event, ts)
        if slot is None:
            return
        ops = self.ops
        ops.status[slot] = _RUNNING
        if ts is not None:
            ops.start_time[slot] = ts
        ops.attempts[slot] += 1
        rows = event.input_rows
        placed = ops.name[slot] in self._placed
        if rows is None or not placed:
            metrics = op_metrics(event)
            if rows is None and metrics.input_rows is not None:
                rows = to_int(metrics.input_rows)
            if not placed:
                self._op_position(event, slot, _FROM_OP_EVENT, metrics.dag_node_id)
        if rows is not None:
            ops.input_rows[slot] = rows

    def _op_end(self, event: AnyEvent, ts: float | None, status: int) -> int | None:
        slot = self._measured_slot(event, ts)
        if slot is None:
            return None
        ops = self.ops
        ops.status[slot] = status
        if ts is not None:
            ops.end_time[slot] = ts
        placed = ops.name[slot] in self._placed
        complete = (
            placed
            and not event.measured
            and event.duration is not None
            and event.input_rows is not None
            and event.output_rows is not None
        )
        metrics = _NO_METRICS if complete else op_metrics(event)
        duration = event.duration
        if duration is None and metrics.duration_seconds is not None:
            duration = to_float(metrics.duration_seconds)
        if duration is not None:
            ops.duration[slot] = duration
        rows = event.input_rows
        if rows is None and metrics.input_rows is not None:
            rows = to_int(metrics.input_rows)
        if rows is not None:
            ops.input_rows[slot] = rows
        rows = event.output_rows
        if rows is None and metrics.output_rows is not None:
            rows = to_int(metrics.output_rows)
        if rows is not None:
            ops.output_rows[slot] = rows
        if not placed:
            self._op_position(event, slot, _FROM_OP_EVENT, metrics.dag_node_id)
        if metrics.cpu_seconds is not None:
            cpu = to_float(metrics.cpu_seconds)
            if cpu is not None and cpu >= 0:
                ops.cpu_seconds[slot] = cpu
                self.has_resources = True
        if metrics.peak_rss_bytes is not None:
            rss = to_int(metrics.peak_rss_bytes)
            if rss is not None and rss >= 0:
                ops.peak_rss[slot] = rss
                self.has_resources = True
        if status == _FAILED:
            ops.errors[slot] = _clean_error(event.error_message or text(event.message)) or "failed"
        return slot

    def _op_complete(self, event: AnyEvent, ts: float | None) -> None:
        self._op_end(event, ts, _FAILED if event.status == "failed" else _DONE)

    def _op_failed(self, event: AnyEvent, ts: float | None) -> None:
        self._op_end(event, ts, _FAILED)

    def _checkpoint_save(self, event: AnyEvent, ts: float | None) -> None:
        self.checkpoints_saved += 1
        if ts is not None and (self.last_checkpoint_time is None or ts > self.last_checkpoint_time):
            self.last_checkpoint_time = ts
        slot = self._op_slot(event, ts)
        if slot is not None:
            ops = self.ops
            if ts is not None:
                if ops.checkpoint_time[slot] != ops.checkpoint_time[slot]:  # NaN: first save
                    self._checkpointed += 1
                ops.checkpoint_time[slot] = ts
            if ops.name[slot] not in self._placed:
                self._op_position(event, slot, _FROM_CHECKPOINT, None)

    def _checkpoint_load(self, event: AnyEvent, ts: float | None) -> None:
        self.checkpoints_loaded += 1
        part = self._partition(event, ts)
        if part is not None:
            part.resumed = True
            if event.operation_idx is not None:
                part.loaded_checkpoint_idx = event.operation_idx

    # -- positions -----------------------------------------------------------------

    def _set_position(self, name: str, idx: int, strength: int) -> None:
        current = self._positions.get(name)
        if current is None or strength >= current[0]:
            self._positions[name] = (strength, idx)
            if strength >= _FROM_DAG_NODE:
                self._placed.add(name)

    def _name_at(self, idx: int) -> str | None:
        for name, (strength, position) in self._positions.items():
            if position == idx and strength > _FROM_OP_EVENT:
                return name
        return None

    def pipeline_positions(self) -> dict[str, int]:
        """Op name -> position in the pipeline, for names a plan, DAG node or checkpoint placed."""
        return {
            name: idx
            for name, (strength, idx) in self._positions.items()
            if strength > _FROM_OP_EVENT
        }

    def op_index(self, slot: int, positions: dict[str, int] | None = None) -> int | None:
        """The op's position in the pipeline, from the strongest source that knew it."""
        name = self.ops.name[slot]
        strong = (self.pipeline_positions() if positions is None else positions).get(name)
        if strong is not None:
            return strong
        own = self.ops.index[slot]
        if own >= 0:
            return own
        known = self._positions.get(name)
        return known[1] if known is not None else None

    # -- merging -------------------------------------------------------------------

    def merge(self, later: JobState) -> None:
        """Fold in ``later``, a state folded over the events that follow this one's."""
        for name in (
            "job_id",
            "executor_type",
            "pipeline",
            "config_file",
            "work_dir",
            "checkpoint_strategy",
        ):
            if getattr(self, name) is None or (
                name != "job_id" and getattr(later, name) is not None
            ):
                setattr(self, name, getattr(later, name))
        if later.status is not None:  # every event that sets a status also sets these two
            self.status = later.status
            self.end_time = later.end_time
            self.error_message = later.error_message
        if later.duration is not None:
            self.duration = later.duration
        self.start_time = _min(self.start_time, later.start_time)
        self.first_event_time = _min(self.first_event_time, later.first_event_time)
        self.last_event_time = _max(self.last_event_time, later.last_event_time)
        self.last_checkpoint_time = _max(self.last_checkpoint_time, later.last_checkpoint_time)
        if later.planned_partitions is not None:
            self.note_partition_count(later.planned_partitions)
        if later.planned_ops is not None:
            self.planned_ops = later.planned_ops
        self.resume_count += later.resume_count
        self.dag.note_counts(
            later.dag.total_nodes, later.dag.total_edges, later.dag.parallel_groups
        )
        self.process_ids |= later.process_ids
        self.checkpoints_saved += later.checkpoints_saved
        self.checkpoints_loaded += later.checkpoints_loaded
        self.events_applied += later.events_applied
        for kind, count in later.event_counts.items():
            if kind not in self.event_counts and len(self.event_counts) >= MAX_EVENT_TYPES:
                kind = OTHER_EVENT_TYPES
            self.event_counts[kind] = self.event_counts.get(kind, 0) + count
        for name, (strength, idx) in later._positions.items():
            self._set_position(name, idx, strength)
        self._op_names_seen |= later._op_names_seen
        self.has_resources = self.has_resources or later.has_resources
        self._merge_phases(later)
        shared = [pid for pid in later.partitions if pid in self.partitions]
        adopted_checkpoints = later._checkpointed
        for pid in shared:
            theirs = later.partitions[pid]
            adopted_checkpoints -= _checkpointed_runs(later.ops, theirs)
            self._checkpointed -= _checkpointed_runs(self.ops, self.partitions[pid])
            self._merge_partition(pid, theirs, later.ops)
            self._checkpointed += _checkpointed_runs(self.ops, self.partitions[pid])
        self._adopt(later, [pid for pid in later.partitions if pid not in self.partitions])
        self._checkpointed += adopted_checkpoints
        self._most_ops = max(
            [self._most_ops, later._most_ops] + [len(self.partitions[pid].ops) for pid in shared]
        )

    def _merge_phases(self, later: JobState) -> None:
        self.phases_dropped += later.phases_dropped
        for phase in later.phases:
            if phase.start_time is None:  # ended in ``later``, began in this piece
                mine = self._open_phase(phase.key)
                if mine is not None:
                    mine.end_time, mine.failed = phase.end_time, phase.failed
                    mine.error_message = phase.error_message
                    continue
            if len(self.phases) < MAX_PHASES:
                self.phases.append(phase)
            else:
                self.phases_dropped += 1

    def phase_ended_by(self, event: AnyEvent) -> PhaseRun | None:
        """The phase a ``phase_complete`` event just ended (for the sinks)."""
        name = _str(nested(event.metadata).get("phase"))
        for phase in reversed(self.phases):
            if phase.key == ((name or "")[:128], event.partition_id) and phase.end_time is not None:
                return phase
        return None

    def _adopt(self, later: JobState, pids: list[int]) -> None:
        """Take over ``later``'s partitions that this state never saw, op runs and all."""
        parts = [later.partitions[pid] for pid in pids]
        slots = [slot for part in parts for slot in part.ops.values()]
        renumbered = self.ops.extend(later.ops, slots)
        for part in parts:
            part.ops = {name: renumbered[slot] for name, slot in part.ops.items()}
            self.partitions[part.partition_id] = part

    def _merge_partition(self, pid: int, theirs: PartitionState, their_ops: OpTable) -> None:
        mine = self.partitions.get(pid)
        if mine is None:
            mine = self.partitions[pid] = PartitionState(pid)
        for name in (
            "status",
            "sample_count",
            "size_bytes",
            "creation_start_time",
            "creation_end_time",
            "start_time",
            "end_time",
            "error_message",
            "error_type",
            "loaded_checkpoint_idx",
        ):
            value = getattr(theirs, name)
            if value is not None:
                setattr(mine, name, value)
        mine.attempts += theirs.attempts
        mine.resumed = mine.resumed or theirs.resumed
        mine.last_event_time = _max(mine.last_event_time, theirs.last_event_time)
        for name, their_slot in theirs.ops.items():
            slot = mine.ops.get(name)
            if slot is None:
                slot = self._new_slot(mine, name)
            self._merge_run(slot, their_ops, their_slot)

    def _merge_run(self, slot: int, their_ops: OpTable, their_slot: int) -> None:
        """Fold ``their_slot``'s later facts into ``slot``; measured facts win (see
        :meth:`_measured_slot`), whichever half of the log they were in."""
        ops = self.ops
        measured = their_ops.measured[their_slot]
        take_op_facts = measured or not ops.measured[slot]
        if measured and not ops.measured[slot]:
            ops.forget_run(slot)
            ops.measured[slot] = 1
        checkpoint = their_ops.checkpoint_time[their_slot]
        if _is_set(checkpoint):
            ops.checkpoint_time[slot] = checkpoint
        source = their_ops.index_source[their_slot]
        if source and source >= ops.index_source[slot]:
            ops.index[slot] = their_ops.index[their_slot]
            ops.index_source[slot] = source
        if not take_op_facts:
            return
        if their_ops.status[their_slot] != Status.NOT_STARTED:
            ops.status[slot] = their_ops.status[their_slot]
        for column in ("start_time", "end_time", "duration", "cpu_seconds"):
            value = getattr(their_ops, column)[their_slot]
            if _is_set(value):
                getattr(ops, column)[slot] = value
        for column in ("input_rows", "output_rows", "peak_rss"):
            value = getattr(their_ops, column)[their_slot]
            if value >= 0:
                getattr(ops, column)[slot] = value
        ops.attempts[slot] += their_ops.attempts[their_slot]
        if their_slot in their_ops.errors:
            ops.errors[slot] = their_ops.errors[their_slot]

    # -- the DAG -------------------------------------------------------------------

    def _dag_build_complete(self, event: AnyEvent, ts: float | None) -> None:
        meta = nested(event.metadata)
        self.dag.note_counts(
            to_int(meta.get("dag_node_count")),
            to_int(meta.get("dag_edge_count")),
            to_int(meta.get("parallel_groups_count")),
        )

    def note_dag_plan(self, plan: DagFacts) -> None:
        """Record what a DAG execution plan file says (it wins over the build event's counts)."""
        self.dag = plan

    # -- derived answers -----------------------------------------------------------

    @property
    def op_names(self) -> list[str]:
        """Op names in pipeline order (the plan when known, else as seen)."""
        if self.planned_ops:
            return list(self.planned_ops)
        positions = self._positions  # every op run's name is in _op_names_seen
        seen = {name: positions.get(name, (0, 1 << 30))[1] for name in self._op_names_seen}
        return sorted(seen, key=lambda name: (seen[name], name))

    @property
    def ops_per_partition(self) -> int:
        """The job's real op count: the plan's, else the most ops seen on one partition."""
        if self.planned_ops:
            return len(self.planned_ops)
        return self._most_ops

    def op_runs_expected(self, failed: Iterable[PartitionState]) -> int:
        """Op runs the job has when it ends: every planned partition's ops, less the ones
        the ``failed`` partitions will never run."""
        per_part = self.ops_per_partition
        never = 0
        for part in failed:
            ran = sum(self.op_status(slot) in _TERMINAL for slot in part.ops.values())
            never += max(0, per_part - ran)
        return max(len(self.ops), self.total_partitions * per_part) - never

    def needs_plan(self) -> bool:
        """Whether a pipeline plan would tell more than the log: an op with no known
        position, or a running job none of whose partitions completed yet (so its
        ops may not all have been seen)."""
        if self.planned_ops:
            return False
        if any(
            self._positions.get(name, (-1, 0))[0] < _FROM_CHECKPOINT for name in self._op_names_seen
        ):
            return True
        if any(part.status == Status.COMPLETED for part in self.partitions.values()):
            return False  # a completed partition ran every op: the op count is known
        return self.job_status() not in _TERMINAL

    @property
    def total_partitions(self) -> int:
        return max(len(self.partitions), self.planned_partitions or 0)

    def op_status(self, slot: int) -> Status:
        """An op run's status.

        One that was only checkpointed counts as completed.  One still running when
        its partition ended failed: with its partition (Data-Juicer writes no
        ``op_failed``), or, if the partition completed without it, because a resume
        skipped it (:data:`SKIPPED_BY_RESUME`).
        """
        code = self.ops.status[slot]
        if code == Status.NOT_STARTED and _is_set(self.ops.checkpoint_time[slot]):
            return Status.COMPLETED
        if code == Status.IN_PROGRESS and self._partition_ended_at(slot):
            return Status.FAILED
        return _BY_CODE[code]

    def _partition_ended_at(self, slot: int) -> bool:
        part = self.partitions.get(self.ops.partition[slot])
        return part is not None and part.status in _TERMINAL

    def op_timed_as_group(self, slot: int) -> bool:
        """Whether the run was timed only together with a neighbouring op: the next op of
        the pipeline on the same partition started before this one ended (or this one
        before the previous one ended).  Data-Juicer runs a checkpoint group of ops as one
        lazy Ray Data plan, logs all their op_starts first, and splits the group's time
        evenly across them: not a per-op measurement.  Ops that run one after another
        never overlap."""
        ops = self.ops
        if ops.measured[slot]:
            return False  # measured where it ran, on its own
        start, end = ops.start_time[slot], ops.end_time[slot]
        starts, ends = ops.start_time, ops.end_time
        overlapping = [  # in time, on the same partition (NaN, "never set", overlaps nothing)
            other
            for other in self.partitions[ops.partition[slot]].ops.values()
            if other != slot and starts[other] < end and not ends[other] <= start
        ]
        if not overlapping:
            return False
        positions = self.pipeline_positions()
        position = self.op_index(slot, positions)
        if position is None:
            return False
        for other in overlapping:
            neighbour = self.op_index(other, positions)
            if neighbour == position + 1 and ops.start_time[other] < end:
                return True
            if neighbour == position - 1 and start < ops.end_time[other]:
                return True
        return False

    def partition_failure_time(self, slot: int) -> float | None:
        """When a run still going at its partition's failure ended: with the partition."""
        if self.ops.status[slot] != Status.IN_PROGRESS:
            return None
        part = self.partitions[self.ops.partition[slot]]
        return part.end_time if part.status == Status.FAILED else None

    def op_error(self, slot: int) -> str | None:
        """Why a failed op run failed (see :meth:`op_status`)."""
        error = self.ops.errors.get(slot)
        code = self.ops.status[slot]
        if code in (Status.IN_PROGRESS, Status.FAILED):
            part = self.partitions[self.ops.partition[slot]]
            if part.status == Status.COMPLETED:  # it ran, or failed, in a run before the resume
                return SKIPPED_BY_RESUME if error is None else f"{SKIPPED_BY_RESUME}; {error}"
            if error is None and code == Status.IN_PROGRESS:
                error = part.error_message
        return error

    def skipped_ops(self, part: PartitionState) -> list[str]:
        """Ops of the pipeline a *completed* partition never completed (a resume from a bad
        checkpoint skips them silently), in pipeline order; empty for other partitions."""
        if part.status != Status.COMPLETED:
            return []
        done = {name for name, slot in part.ops.items() if self.op_status(slot) == Status.COMPLETED}
        return [name for name in self.op_names if name not in done]

    def skipped_operations(self) -> dict[int, list[str]]:
        """:meth:`skipped_ops` of every partition that has some, by partition id."""
        expected, completed = self.ops_per_partition, Status.COMPLETED
        stored, parts = self._stored_and_live()
        suspects = {
            part.partition_id
            for part in parts
            if part.status == completed and len(part.ops) < expected
        }
        ops = self.ops
        for code in (Status.IN_PROGRESS, Status.FAILED):
            suspects.update(ops.partition[slot] for slot in ops.slots_with(code))
        found = {pid: self.skipped_ops(self.partitions[pid]) for pid in suspects}
        if stored is not None:
            found = {**stored.skipped, **found}
        return {pid: found[pid] for pid in sorted(found) if found[pid]}

    def partition_status(self, part: PartitionState) -> Status:
        """A partition's status: its own events, else what its ops say."""
        if part.status is not None:
            return part.status
        statuses = [self.op_status(slot) for slot in part.ops.values()]
        if Status.FAILED in statuses:
            return Status.FAILED
        done = statuses.count(Status.COMPLETED)
        if statuses and done == len(statuses) and done >= self.ops_per_partition:
            return Status.COMPLETED
        return Status.IN_PROGRESS if statuses else Status.NOT_STARTED

    def partition_counts(self) -> dict[Status, int]:
        """Partitions by status; planned partitions never seen count as not started."""
        counts = dict.fromkeys(Status, 0)
        stored, parts = self._stored_and_live()
        if stored is not None:
            for status, count in stored.counts.items():
                counts[status] += count
        own = Counter(map(_STATUS_OF, parts))
        undecided = own.pop(None, 0)
        for status, count in own.items():
            counts[status] += count
        if undecided:  # no partition-level event yet: what its ops say
            for part in parts:
                if part.status is None:
                    counts[self.partition_status(part)] += 1
        counts[Status.NOT_STARTED] += self.total_partitions - len(self.partitions)
        return counts

    def first_failed_partition(self) -> PartitionState | None:
        """The failed partition of the lowest id, if any."""
        stored, parts = self._stored_and_live()
        failed = [part.partition_id for part in parts if self.partition_status(part) == _FAILED]
        if stored is not None:
            failed += stored.failed_ids
        return self.partitions[min(failed)] if failed else None

    def partition_facts_key(self) -> tuple[Any, ...]:
        """What a partition's status and skipped ops depend on besides the partition and
        its op runs: the pipeline's op count and op names."""
        return self.ops_per_partition, tuple(self.op_names)

    def _stored_and_live(self) -> tuple[Untouched | None, Iterable[PartitionState]]:
        """The stored answers of partitions untouched since a persisted fold was loaded
        (see :mod:`dj_observe.partstore`), and the partitions whose answers are computed:
        all of them, unless the partitions are stored ones whose answers still hold."""
        from dj_observe.partstore import StoredPartitions

        parts = self.partitions
        if isinstance(parts, StoredPartitions):
            stored = parts.untouched(self.partition_facts_key())
            if stored is not None:
                return stored, parts.touched()
        return None, parts.values()

    def op_counts(self) -> dict[Status, int]:
        """Op runs by :meth:`op_status`, counted column-wise where the code says it all."""
        ops = self.ops
        counts = {status: ops.count(status) for status in Status}
        if counts[Status.NOT_STARTED]:  # only checkpointed: completed
            times = ops.checkpoint_time
            implied = sum(1 for slot in ops.slots_with(Status.NOT_STARTED) if _is_set(times[slot]))
            counts[Status.NOT_STARTED] -= implied
            counts[Status.COMPLETED] += implied
        if counts[Status.IN_PROGRESS]:  # still running when their partition ended: failed
            ended = sum(map(self._partition_ended_at, ops.slots_with(Status.IN_PROGRESS)))
            counts[Status.IN_PROGRESS] -= ended
            counts[Status.FAILED] += ended
        return counts

    def checkpointed_op_count(self) -> int:
        """Op runs with at least one saved checkpoint."""
        return self._checkpointed

    def job_status(self, partition_counts: dict[Status, int] | None = None) -> Status:
        """The job's status: its own terminal event, else what its partitions say.

        A job whose every partition ended, some failed, is failed (Data-Juicer
        writes no terminal event then); a log that just stops is in progress.
        Pass ``partition_counts`` when they are already known, to skip counting.
        """
        if self.status in _TERMINAL:
            return self.status
        counts = self.partition_counts() if partition_counts is None else partition_counts
        total = sum(counts.values())
        ended = counts[Status.COMPLETED] + counts[Status.FAILED]
        if total and ended == total and counts[Status.FAILED]:
            return Status.FAILED
        if self.status is None and not self.partitions:
            return Status.NOT_STARTED
        return Status.IN_PROGRESS

    def ordered_slots(
        self, part: PartitionState, positions: dict[str, int] | None = None
    ) -> list[tuple[int | None, int]]:
        """``(op index, slot)`` of the partition's op runs, in pipeline order."""
        positions = self.pipeline_positions() if positions is None else positions
        pairs = [(self.op_index(slot, positions), slot) for slot in part.ops.values()]
        pairs.sort(key=lambda pair: (1 << 30 if pair[0] is None else pair[0], pair[1]))
        return pairs

    def op_runs(self, part: PartitionState) -> Iterator[OpRun]:
        """The partition's op runs in pipeline order."""
        for idx, slot in self.ordered_slots(part):
            yield self.op_run(slot, idx)

    def op_run(self, slot: int, idx: int | None = None) -> OpRun:
        """One op run; ``idx`` saves the position lookup when the caller knows it."""
        ops = self.ops
        status = self.op_status(slot)
        ended = status >= Status.COMPLETED
        start: float | None = ops.start_time[slot]
        start = start if start == start else None
        end = duration = error = None
        if status == Status.FAILED:
            error = self.op_error(slot)
        if ended:
            end = ops.end_time[slot]
            end = end if end == end else None
            if end is None:
                end = self.partition_failure_time(slot)
            duration = ops.duration[slot]
            duration = duration if duration == duration else None
            if self.op_timed_as_group(slot):
                duration = None  # the executor timed only the group: no per-op number
            elif duration is None and end is not None and start is not None and end >= start:
                duration = end - start
        rows_in = ops.input_rows[slot]
        rows_out = ops.output_rows[slot]
        checkpoint = ops.checkpoint_time[slot]
        cpu = ops.cpu_seconds[slot]
        rss = ops.peak_rss[slot]
        return OpRun(
            ops.partition[slot],
            ops.name[slot],
            self.op_index(slot) if idx is None else idx,
            status,
            start,
            end,
            duration,
            rows_in if rows_in >= 0 else None,
            rows_out if ended and rows_out >= 0 else None,
            checkpoint if checkpoint == checkpoint else None,
            error,
            cpu if ended and cpu == cpu else None,
            rss if ended and rss >= 0 else None,
        )


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _nested(data: dict[str, Any], *keys: str) -> Any:
    value: Any = data
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _error_type(event: AnyEvent) -> str | None:
    if event.error_type and event.error_type != "str":
        return event.error_type
    meta_type = _str(nested(event.metadata).get("error_type"))
    if meta_type and meta_type != "str":
        return meta_type
    return error_type_of(event.error_message)


def error_type_of(message: str | None) -> str | None:
    """The exception class an error names: ``ValueError`` in ``RayTaskError(ValueError): x``;
    in a traceback, the first exception raised (the root cause)."""
    match = re.match(r"^\s*(?:\w+\((\w+)\)|(\w+(?:Error|Exception|Interrupt)))", message or "")
    if match:
        return match.group(1) or match.group(2)
    raised = _RAISED.search(message or "")
    return raised.group(1).rsplit(".", 1)[-1] if raised else None


_RAISED = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt))(?::|$)", re.MULTILINE)
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _clean_error(message: str | None) -> str | None:
    """An error message without terminal colour codes (Ray's tracebacks carry them)."""
    if message and "\x1b" in message:
        return _ANSI_ESCAPE.sub("", message)
    return message
