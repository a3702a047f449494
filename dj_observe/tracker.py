"""Follow one job directory: its event logs folded into a :class:`JobState`.

:class:`JobTracker` is what the snapshot, ``serve`` and ``watch`` share: it reads
the side files a job directory may hold (``job_summary.json``,
``dag_execution_plan.json``, ``checkpoints/partitioning_info.json``), then folds
the event logs.  :meth:`JobTracker.refresh` folds only what was appended since
the previous call, so following a running job costs what it appended.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from dj_observe.eventlog import EventLogReader, ReadStats, is_event_log_name
from dj_observe.events import to_int
from dj_observe.parallel import fold_in_parallel
from dj_observe.sidefiles import MAX_PLAN_BYTES, MAX_SIDE_FILE_BYTES, SideFileError, read_side_file
from dj_observe.state import DagFacts, JobState

__all__ = ["JobDirectoryError", "JobTracker", "SideFile"]

JOB_SUMMARY = "job_summary.json"
DAG_PLAN = "dag_execution_plan.json"
PARTITIONING_INFO = Path("checkpoints") / "partitioning_info.json"

_GENERIC = msgspec.json.Decoder()

PLAN_ALWAYS_READ_BYTES = 8 << 20
"""A DAG plan up to this size (8 MiB) is always read; a larger one (Data-Juicer writes a
node per partition and op) only when the log leaves op positions or the op count open."""

PARALLEL_MIN_BYTES = 64 << 20
"""Logs at least this large (64 MiB) are folded on two processes on first read."""


class JobDirectoryError(Exception):
    """The directory is missing, unreadable, or holds no event log."""


@dataclass
class SideFile:
    """A JSON file beside the event log: its content, or why it could not be used."""

    path: Path
    data: dict[str, Any] | None = None
    error: str | None = None
    signature: tuple[int, int] | None = None

    @classmethod
    def load(
        cls,
        path: Path,
        previous: SideFile | None = None,
        decoder: msgspec.json.Decoder[Any] | None = None,
        max_bytes: int | None = None,
    ) -> SideFile:
        """Read ``path`` unless it is unchanged since ``previous`` was read (only a regular
        file of at most ``max_bytes``, by default ``MAX_SIDE_FILE_BYTES``: see
        :mod:`dj_observe.sidefiles`)."""
        try:
            info = path.stat()
        except OSError:
            return cls(path)
        signature = (info.st_mtime_ns, info.st_size)
        if previous is not None and previous.signature == signature:
            return previous
        try:
            content = read_side_file(path, max_bytes or MAX_SIDE_FILE_BYTES)
            data = (decoder or _GENERIC).decode(content)
        except FileNotFoundError:
            return cls(path)
        except SideFileError as exc:
            return cls(path, error=str(exc), signature=signature)
        except (OSError, msgspec.DecodeError, RecursionError) as exc:
            return cls(path, error=f"{path.name}: {_reason(exc)}", signature=signature)
        if isinstance(data, _Plan):
            data = {"operations": plan_op_names(data), "dag": plan_dag_facts(data)}
        if not isinstance(data, dict):
            return cls(path, error=f"{path.name}: expected a JSON object", signature=signature)
        return cls(path, data, signature=signature)

    @property
    def loaded(self) -> bool:
        return self.data is not None


class _PlanNode(msgspec.Struct, gc=False):
    operation_name: Any = None
    op_name: Any = None
    node_type: Any = None
    op_type: Any = None
    execution_order: Any = None


class _Plan(msgspec.Struct, gc=False):
    nodes: dict[str, _PlanNode] | list[_PlanNode] | None = None
    edges: Any = None
    parallel_groups: Any = None
    execution_plan: Any = None
    metadata: Any = None


_PLAN_DECODER = msgspec.json.Decoder(_Plan)


@dataclass
class JobTracker:
    """A job directory and the state folded from it so far."""

    job_dir: Path
    workers: int = 2
    state: JobState = field(default_factory=JobState)
    summary: SideFile | None = None
    plan: SideFile | None = None
    partitioning: SideFile | None = None
    reader: EventLogReader = field(init=False)

    def __post_init__(self) -> None:
        self.job_dir = Path(self.job_dir)
        if not self.job_dir.exists():
            raise JobDirectoryError(f"job directory not found: {self.job_dir}")
        if not self.job_dir.is_dir():
            raise JobDirectoryError(f"not a directory: {self.job_dir}")
        if not os.access(self.job_dir, os.R_OK | os.X_OK):
            raise JobDirectoryError(f"job directory is not readable: {self.job_dir}")
        self.reader = EventLogReader(self.job_dir)

    @property
    def stats(self) -> ReadStats:
        return self.reader.stats

    @property
    def log_files(self) -> list[Path]:
        return self.reader.files

    def refresh(self) -> JobState:
        """Read side files and fold every event appended since the last refresh.

        A large DAG plan is read only when the log leaves something open that the
        plan answers: an op whose position no event fixed, or a job that has not
        ended (ops not yet seen on any partition count towards its progress).
        """
        self._load_side_files()
        first = not self.reader.offsets
        with gc_paused():
            if first and self.workers > 1:
                fold_in_parallel(self.reader, self.state, self.workers, PARALLEL_MIN_BYTES)
            for events in self.reader.read(transient=True):
                self.state.apply_all(events)
        if not self.reader.offsets:
            raise JobDirectoryError(no_event_log(self.job_dir))
        if self.plan is not None or self.state.needs_plan() or self._plan_is_small():
            self._load_plan()
        return self.state

    def _plan_is_small(self) -> bool:
        try:
            return (self.job_dir / DAG_PLAN).stat().st_size <= PLAN_ALWAYS_READ_BYTES
        except OSError:
            return False

    def _load_plan(self) -> None:
        plan = SideFile.load(self.job_dir / DAG_PLAN, self.plan, _PLAN_DECODER, MAX_PLAN_BYTES)
        if plan is not self.plan and plan.data:
            if plan.data["operations"]:
                self.state.set_plan(plan.data["operations"])
            self.state.note_dag_plan(plan.data["dag"])
        self.plan = plan

    def _load_side_files(self) -> None:
        self.summary = SideFile.load(self.job_dir / JOB_SUMMARY, self.summary)
        partitioning = SideFile.load(self.job_dir / PARTITIONING_INFO, self.partitioning)
        if partitioning is not self.partitioning and partitioning.data:
            _note_partitioning(self.state, partitioning.data)
        self.partitioning = partitioning


def _note_partitioning(state: JobState, info: dict[str, Any]) -> None:
    """Data-Juicer's ``partitioning_info.json``: how many partitions, and their row counts."""
    count = info.get("num_partitions")
    if isinstance(count, int) and count > 0:
        state.note_partition_count(count)
    partitions = info.get("partitions")
    for entry in partitions if isinstance(partitions, list) else []:
        if isinstance(entry, dict):
            pid, rows = to_int(entry.get("partition_id")), to_int(entry.get("row_count"))
            if pid is not None:
                state.note_partition(pid, rows)


def plan_dag_facts(plan: _Plan) -> DagFacts:
    """Counts, execution plan and metadata of a DAG plan, as Data-Juicer's snapshot reads them
    (a member of the wrong type counts as absent)."""

    def items(value: Any) -> list[Any]:
        return value if isinstance(value, list) else []

    nodes = plan.nodes if isinstance(plan.nodes, (dict, list)) else []
    return DagFacts(
        total_nodes=len(nodes),
        total_edges=len(items(plan.edges)),
        parallel_groups=len(items(plan.parallel_groups)),
        execution_plan=items(plan.execution_plan),
        metadata=plan.metadata if isinstance(plan.metadata, dict) else {},
        from_plan=True,
    )


def plan_op_names(plan: _Plan) -> list[str]:
    """The pipeline's op names, in order, from a DAG execution plan (any known layout)."""
    nodes = plan.nodes
    if isinstance(nodes, dict):
        nodes = list(nodes.values())
    if not nodes:
        return []
    ordered: list[tuple[float, str]] = []
    for node in nodes:
        name = node.operation_name or node.op_name
        kind = str(node.node_type or node.op_type or "")
        if not isinstance(name, str) or "convergence" in kind or "redistribution" in kind:
            continue
        order = node.execution_order
        ordered.append((order if isinstance(order, (int, float)) else float("inf"), name))
    names: list[str] = []
    for _, name in sorted(ordered, key=lambda item: item[0]):
        if name not in names:
            names.append(name)
    return names


@contextmanager
def gc_paused() -> Iterator[None]:
    """Folding allocates many small objects that never form cycles; skip GC passes meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, RecursionError):
        return "invalid JSON (nested too deeply)"
    return f"invalid JSON ({exc})"


def no_event_log(job_dir: Path, shown: int = 3) -> str:
    """Why ``job_dir`` cannot be read, pointing at the job directories below it if any."""
    below = []
    try:
        for child in sorted(job_dir.iterdir()):
            for candidate in (child, *_subdirectories(child)):
                if _holds_event_log(candidate):
                    below.append(candidate)
    except OSError:
        pass
    message = f"no event log (events.jsonl) in {job_dir}"
    if not below:
        return message
    names = ", ".join(str(path.relative_to(job_dir)) for path in below[:shown])
    more = f" and {len(below) - shown} more" if len(below) > shown else ""
    return (
        f"{message}; it holds {len(below)} job director{'y' if len(below) == 1 else 'ies'} "
        f"({names}{more}): give one of them, or list them with dj-observe jobs {job_dir}"
    )


def _subdirectories(path: Path) -> list[Path]:
    try:
        return sorted(child for child in path.iterdir() if child.is_dir())
    except OSError:
        return []


def _holds_event_log(path: Path) -> bool:
    try:
        return path.is_dir() and any(is_event_log_name(child.name) for child in path.iterdir())
    except OSError:
        return False
