"""Data-Juicer's ``ray`` executor: each op measured in the Ray workers, as Ray runs it.

The ``ray`` executor builds one lazy Ray Data plan of all its ops and runs it at
once; Data-Juicer logs every ``op_start`` before the work and every
``op_complete`` after it, with the plan's time split evenly.  While Data-Juicer
builds the plan (``RayDataset._run_single_op``, one call per op), every function
the op hands to Ray Data (``map_batches``, ``filter``) is wrapped to count its own
calls in the workers (:mod:`.measure`); the driver adds the counts up per op run
(:mod:`.collector`).  How an op maps to what Ray runs:

- a mapper is one ``map_batches`` function (or callable class, for actors);
- a filter is its stats step(s) and its filtering step: rows in are the first
  step's, rows out the last one's, its time is all of theirs;
- Ray fuses consecutive functions into one task; each still counts its own calls,
  so fused ops keep their own numbers;
- an op whose plan is not made of those functions (a deduplicator's shuffle) is
  measured by the functions it has, and its rows out by its last one.

The whole job is partition 0 (:mod:`.single_partition`).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dj_observe.integrations.data_juicer.adapter import Adapter
from dj_observe.integrations.data_juicer.collector import Collector
from dj_observe.integrations.data_juicer.measure import MeasuredFn, Step, measured_class
from dj_observe.integrations.data_juicer.patching import wrap
from dj_observe.integrations.data_juicer.single_partition import (
    PARTITION,
    SinglePartitionWatch,
    guard_run,
)
from dj_observe.state import error_type_of

__all__ = ["RayMeasurer", "RayWatch", "measure", "set_partition", "watch"]

MEASURES_DIR = ".dj_observe_measures"
"""Where the workers append their tallies, in the job directory (removed at the end)."""

_planning = threading.local()  # .op: the _OpPlan being built on this thread
_partition = threading.local()  # .id: the partition this driver thread processes
_current: RayMeasurer | None = None


def current_partition() -> int:
    """The partition whose plan this thread builds (0 outside a partitioned executor)."""
    return getattr(_partition, "id", PARTITION)


def set_partition(partition_id: int | None) -> None:
    _partition.id = PARTITION if partition_id is None else partition_id


class _OpPlan:
    """The steps of one op run handed to Ray Data so far."""

    def __init__(self, directory: str, partition_id: int, name: str, idx: int) -> None:
        self.directory, self.partition_id, self.name, self.idx = directory, partition_id, name, idx
        self.steps = 0

    def next_step(self) -> Step:
        step = Step(self.directory, self.partition_id, self.name, self.idx, self.steps)
        self.steps += 1
        return step


class RayMeasurer:
    """Measures the op runs of one Ray job in its workers (for either Ray executor)."""

    def __init__(self, executor: Any, event_logger: Any, adapter: Adapter) -> None:
        self.directory = Path(event_logger.jsonl_dir) / MEASURES_DIR
        self.positions = _positions(getattr(executor, "cfg", None))

        def emit(event_type: str, **fields: Any) -> None:
            adapter.measured(event_logger, {"event_type": event_type, **fields}, "workers")

        self.collector = Collector(self.directory, emit, adapter.failed)

    def plan_op(self, op: Any, build: Callable[[], Any]) -> Any:
        """Run Data-Juicer's ``build`` of one op's plan, its functions measured."""
        name = getattr(op, "_name", None) or type(op).__name__
        plan = _OpPlan(str(self.directory), current_partition(), name, self.positions.get(name, -1))
        outer = getattr(_planning, "op", None)
        _planning.op = plan
        # Planned before the build: some ops run their functions while they build it.
        self.collector.plan(plan.partition_id, name, plan.idx, 0)
        try:
            return build()
        finally:
            _planning.op = outer
            self.collector.plan(plan.partition_id, name, plan.idx, plan.steps)

    def before(self, record: dict[str, Any]) -> None:
        """Settle the runs Data-Juicer's event says ended; at the job's end, all of them."""
        kind = record.get("event_type")
        if kind in ("op_complete", "op_failed", "partition_complete"):
            self.collector.settle(_partition_of(record), _rows_in(record))
        elif kind == "partition_failed":
            self.collector.settle(_partition_of(record), failing=True)
        elif kind in ("job_complete", "job_failed"):
            self.collector.settle_all(failing=kind == "job_failed")
            self.collector.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    def after(self, record: dict[str, Any]) -> None:
        """Nothing to add once Data-Juicer's event is in."""


class RayWatch(SinglePartitionWatch):
    """The ``ray`` executor's job: partition 0, its ops measured in the workers."""

    def __init__(self, measurer: RayMeasurer, event_logger: Any, adapter: Adapter) -> None:
        super().__init__(event_logger, adapter)
        self.measurer = measurer

    def before(self, record: dict[str, Any]) -> None:
        self.measurer.before(record)
        super().before(record)

    def failure_type(self) -> str | None:
        return error_type_of(self.measurer.collector.last_error)


def watch(executor: Any, event_logger: Any, adapter: Adapter) -> RayWatch:
    """Measure ``executor``'s op runs from now on."""
    single = RayWatch(measure(executor, event_logger, adapter), event_logger, adapter)
    guard_run(executor, single)
    return single


def measure(executor: Any, event_logger: Any, adapter: Adapter) -> RayMeasurer:
    """Measure the op plans that this process builds from now on, for ``executor``."""
    global _current
    install()
    _current = RayMeasurer(executor, event_logger, adapter)
    return _current


def install() -> None:
    """Wrap the methods the plans are built with (once)."""
    import ray.data
    from data_juicer.core.data import ray_dataset

    wrap(ray_dataset.RayDataset, "_run_single_op", _wrap_run_single_op)
    wrap(ray.data.Dataset, "map_batches", _wrap_map_batches)
    wrap(ray.data.Dataset, "filter", _wrap_filter)


def _wrap_run_single_op(original: Callable[..., Any]) -> Callable[..., Any]:
    def _run_single_op(self: Any, op: Any, *args: Any, **kwargs: Any) -> Any:
        watch = _current
        if watch is None:
            return original(self, op, *args, **kwargs)
        return watch.plan_op(op, lambda: original(self, op, *args, **kwargs))

    return _run_single_op


def _wrap_map_batches(original: Callable[..., Any]) -> Callable[..., Any]:
    def map_batches(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        plan = getattr(_planning, "op", None)
        if plan is not None:
            step = plan.next_step()
            fn = measured_class(fn, step) if isinstance(fn, type) else MeasuredFn(fn, step)
        return original(self, fn, *args, **kwargs)

    return map_batches


def _wrap_filter(original: Callable[..., Any]) -> Callable[..., Any]:
    def filter(self: Any, fn: Any = None, *args: Any, **kwargs: Any) -> Any:
        plan = getattr(_planning, "op", None)
        if plan is not None and callable(fn) and not isinstance(fn, type):
            fn = MeasuredFn(fn, plan.next_step(), predicate=True)
        return original(self, fn, *args, **kwargs)

    return filter


def _positions(cfg: Any) -> dict[str, int]:
    """Op name -> its position in the config's ``process`` list (the first, if repeated)."""
    positions: dict[str, int] = {}
    for idx, entry in enumerate(getattr(cfg, "process", None) or []):
        name = next(iter(entry), None) if isinstance(entry, dict) else entry
        if isinstance(name, str):
            positions.setdefault(name, idx)
    return positions


def _partition_of(record: dict[str, Any]) -> int:
    value = record.get("partition_id")
    return value if isinstance(value, int) else PARTITION


def _rows_in(record: dict[str, Any]) -> int | None:
    """The input rows Data-Juicer counted for the group whose first op this event ends."""
    value = record.get("input_rows")
    if not isinstance(value, int):
        value = (record.get("metadata") or {}).get("input_rows")
    return value if isinstance(value, int) and value > 0 else None
