"""Every op run of a job as columns, ready to render.

:meth:`JobState.op_run` answers for one op run; renderers of whole jobs (the
snapshot's ``operation_progress``, ``checkpointing`` and ``partition_progress``)
need the same answers for hundreds of thousands of runs.  :func:`op_rows` gives
them column by column, each column built by one comprehension over the fold's
own columns, so the cost per run is a few list operations, not a Python call.
"""

from __future__ import annotations

import bisect
import operator
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from dj_observe.state import JobState, PartitionState, Status

_T = TypeVar("_T")

__all__ = ["PARTITIONS_PER_BATCH", "OpRows", "group_timed_count", "op_rows"]

PARTITIONS_PER_BATCH = 1024
"""Partitions whose op runs a renderer takes at a time: bounded memory, few calls."""

_COMPLETED, _FAILED = Status.COMPLETED, Status.FAILED
_BY_CODE = tuple(Status)
_LAST = 1 << 30  # sorts an op of unknown position after the known ones


@dataclass(slots=True)
class OpRows:
    """Op runs in render order: partitions by id, each one's ops in pipeline order.

    Row ``k`` of every column is one op run; ``bounds[i]:bounds[i + 1]`` are the
    rows of ``partitions[i]``.  Values are what :meth:`JobState.op_run` returns
    (``None`` where unknown).
    """

    partitions: list[PartitionState]
    bounds: list[int]
    slot: list[int]
    partition_id: list[int]
    name: list[str]
    index: list[int | None]
    status: list[Status]
    start_time: list[float | None]
    end_time: list[float | None]
    duration: list[float | None]
    input_rows: list[int | None]
    output_rows: list[int | None]
    checkpoint_time: list[float | None]
    error_message: list[str | None]
    cpu_seconds: list[float | None]
    peak_rss_bytes: list[int | None]
    group_timed: int
    """How many of the runs were timed only with their checkpoint group (no duration)."""

    def __len__(self) -> int:
        return len(self.slot)


def op_rows(state: JobState, partitions: list[PartitionState] | None = None) -> OpRows:
    """The op runs of ``partitions`` (default: all, by id) as :class:`OpRows`."""
    if partitions is None:
        partitions = [part for _, part in sorted(state.partitions.items())]
    ops = state.ops
    slots, index, bounds = _ordered(state, partitions)
    codes = list(map(ops.status.__getitem__, slots))
    status = list(map(_BY_CODE.__getitem__, codes))
    for row in [row for row, code in enumerate(codes) if code < _COMPLETED]:
        status[row] = state.op_status(slots[row])  # checkpointed only, or failed with partition
    ends = _floats(ops.end_time, slots)
    errors: list[str | None] = [None] * len(slots)
    for row in [row for row, code in enumerate(status) if code == _FAILED]:
        slot = slots[row]
        errors[row] = state.op_error(slot)
        if ends[row] is None:
            ends[row] = state.partition_failure_time(slot)
    starts = _floats(ops.start_time, slots)
    ends = [end if code >= _COMPLETED else None for end, code in zip(ends, status, strict=True)]
    durations = [
        _duration(recorded, start, end) if code >= _COMPLETED else None
        for recorded, code, start, end in zip(
            map(ops.duration.__getitem__, slots), status, starts, ends, strict=True
        )
    ]
    grouped = _timed_as_group(state, slots, index, bounds)
    for row in grouped:
        durations[row] = None  # the executor timed only the group (JobState.op_timed_as_group)
    return OpRows(
        partitions=partitions,
        bounds=bounds,
        slot=slots,
        partition_id=list(map(ops.partition.__getitem__, slots)),
        name=list(map(ops.name.__getitem__, slots)),
        index=index,
        status=status,
        start_time=starts,
        end_time=ends,
        duration=durations,
        input_rows=_counts(ops.input_rows, slots),
        output_rows=[
            rows if code >= _COMPLETED else None
            for rows, code in zip(_counts(ops.output_rows, slots), status, strict=True)
        ],
        checkpoint_time=_floats(ops.checkpoint_time, slots),
        error_message=errors,
        cpu_seconds=_of_ended(
            _floats(ops.cpu_seconds, slots) if state.has_resources else None, status
        ),
        peak_rss_bytes=_of_ended(
            _counts(ops.peak_rss, slots) if state.has_resources else None, status
        ),
        group_timed=len(grouped),
    )


def _timed_as_group(
    state: JobState, slots: list[int], index: list[int | None], bounds: list[int]
) -> set[int]:
    """Rows of :meth:`JobState.op_timed_as_group` runs: a row and the next one overlap in
    time, the next being the next op of the pipeline on the same partition.

    The same comparisons as that method's, NaN ("never set") included: a run whose
    neighbour has not ended yet is already marked; one that has not ended is not.
    A partition with two runs at one position (ops whose positions the log confused)
    is left to that method itself."""
    ops = state.ops
    starts = list(map(ops.start_time.__getitem__, slots))
    ends = list(map(ops.end_time.__getitem__, slots))
    first_rows = set(bounds)
    found: set[int] = set()
    for row, overlap in enumerate(map(float.__lt__, starts[1:], ends)):
        position = index[row]
        if (
            overlap
            and row + 1 not in first_rows
            and position is not None
            and index[row + 1] == position + 1
        ):
            if not ends[row + 1] <= starts[row]:
                found.add(row)
            if starts[row] < ends[row + 1]:
                found.add(row + 1)
    for first, stop in _partitions_sharing_a_position(index, bounds):
        rows = range(first, stop)
        found.difference_update(rows)
        found.update(row for row in rows if state.op_timed_as_group(slots[row]))
    measured = ops.measured
    return {row for row in found if not measured[slots[row]]}


def _partitions_sharing_a_position(
    index: list[int | None], bounds: list[int]
) -> list[tuple[int, int]]:
    """``[first, stop)`` rows of the partitions where two runs have the same position."""
    same = list(map(operator.eq, index, index[1:]))  # in C; usually all False
    found: list[tuple[int, int]] = []
    row = 0
    while True:
        try:
            row = same.index(True, row)
        except ValueError:
            return found
        part = bisect.bisect_right(bounds, row) - 1
        first, stop = bounds[part], bounds[part + 1]
        if index[row] is not None and row + 1 < stop:
            found.append((first, stop))
            row = stop - 1
        row += 1


def _of_ended(values: list[_T | None] | None, status: list[Status]) -> list[_T | None]:
    """``values`` of the ended runs, ``None`` for the others (all ``None`` without values)."""
    if values is None:
        return [None] * len(status)
    return [
        value if code >= _COMPLETED else None for value, code in zip(values, status, strict=True)
    ]


def _floats(column: array[float], slots: list[int]) -> list[float | None]:
    """The column's values at ``slots``; NaN ("never set") becomes ``None``."""
    return [value if value == value else None for value in map(column.__getitem__, slots)]


def _counts(column: array[int], slots: list[int]) -> list[int | None]:
    """The column's values at ``slots``; -1 ("never set") becomes ``None``."""
    return [value if value >= 0 else None for value in map(column.__getitem__, slots)]


def _ordered(
    state: JobState, partitions: list[PartitionState]
) -> tuple[list[int], list[int | None], list[int]]:
    """Slots and op positions in render order, and where each partition's rows begin."""
    positions = state.pipeline_positions()
    op_index = state.op_index
    slots: list[int] = []
    index: list[int | None] = []
    bounds = [0]
    for part in partitions:
        keyed = [  # (position, slot): sorted by C-level tuple comparison
            (positions[name] if name in positions else _or_last(op_index(slot, positions)), slot)
            for name, slot in part.ops.items()
        ]
        keyed.sort()
        slots.extend([slot for _, slot in keyed])
        index.extend([None if idx == _LAST else idx for idx, _ in keyed])
        bounds.append(len(slots))
    return slots, index, bounds


def _or_last(idx: int | None) -> int:
    return _LAST if idx is None else idx


def _duration(recorded: float, start: float | None, end: float | None) -> float | None:
    if recorded == recorded:
        return recorded
    if end is not None and start is not None and end >= start:
        return end - start
    return None


def group_timed_count(state: JobState) -> int:
    """How many of the job's op runs :meth:`JobState.op_timed_as_group`."""
    return sum(group_timed_counts(state, state.partitions).values())


def group_timed_counts(state: JobState, partition_ids: Iterable[int]) -> dict[int, int]:
    """For each of these partitions, how many of its op runs
    :meth:`JobState.op_timed_as_group`."""
    partitions = [state.partitions[pid] for pid in sorted(partition_ids)]
    counts: dict[int, int] = {}
    for first in range(0, len(partitions), PARTITIONS_PER_BATCH):
        batch = partitions[first : first + PARTITIONS_PER_BATCH]
        slots, index, bounds = _ordered(state, batch)
        per_partition = [0] * len(batch)
        for row in _timed_as_group(state, slots, index, bounds):
            per_partition[bisect.bisect_right(bounds, row) - 1] += 1
        counts.update(zip((part.partition_id for part in batch), per_partition, strict=True))
    return counts
