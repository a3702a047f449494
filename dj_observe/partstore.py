"""A persisted fold's partitions, each built from its stored row on first access.

A poll of a stored fold touches the few partitions the appended events name; building
all of them (a :class:`~dj_observe.state.PartitionState` and an ``ops`` dict each) would
cost what the job holds.  :class:`StoredPartitions` is the fold's ``partitions`` mapping
over the stored rows: a partition is built when it is looked up, and the whole mapping
when its values are asked for.

Beside the rows it keeps what the summary needs of every partition, as it was when the
fold was stored: its status and the ops a completed partition skipped.  An untouched
partition's answers are still those, since everything they are made of (the partition
and its op runs) changes only through events that look the partition up, unless the
pipeline's op count or names changed (``key``): :meth:`StoredPartitions.untouched`
gives them only then.
"""

from __future__ import annotations

import dataclasses
import marshal
from collections.abc import ItemsView, Iterator, MutableMapping, ValuesView
from dataclasses import dataclass
from typing import Any

from dj_observe.state import JobState, OpTable, PartitionState, Status

__all__ = ["PartitionRows", "StoredPartitions", "Untouched"]

_FIELDS = tuple(item.name for item in dataclasses.fields(PartitionState))
_STATUS, _OPS = _FIELDS.index("status"), _FIELDS.index("ops")
_BY_CODE = tuple(Status)


@dataclass
class PartitionRows:
    """Partitions as stored: one marshalled row each (its fields in order, the status as
    its code, ``ops`` as its slots in order, their names being the op table's), and the
    summary's answers for each when stored."""

    ids: list[int]
    rows: list[bytes]
    statuses: bytes
    """Each row's :meth:`JobState.partition_status` code."""
    skipped: dict[int, list[str]]
    """:meth:`JobState.skipped_operations` (partitions that skipped none are absent)."""
    key: tuple[Any, ...]
    """What those answers also depend on: :meth:`JobState.partition_facts_key`."""

    @classmethod
    def of(cls, state: JobState) -> PartitionRows:
        parts = list(state.partitions.values())
        return cls(
            [part.partition_id for part in parts],
            [marshal.dumps(_row(part)) for part in parts],
            bytes(map(state.partition_status, parts)),
            state.skipped_operations(),
            state.partition_facts_key(),
        )


def _row(part: PartitionState) -> tuple[Any, ...]:
    fields = [getattr(part, name) for name in _FIELDS]
    status = fields[_STATUS]
    fields[_STATUS] = None if status is None else int(status)
    fields[_OPS] = tuple(part.ops.values())
    return tuple(fields)


def _positions(codes: bytes, code: int) -> list[int]:
    """Where ``code`` is in ``codes`` (found in C)."""
    found, at = [], codes.find(code)
    while at >= 0:
        found.append(at)
        at = codes.find(code, at + 1)
    return found


@dataclass
class Untouched:
    """The stored answers of the partitions not looked up since the fold was loaded."""

    counts: dict[Status, int]
    failed_ids: list[int]
    skipped: dict[int, list[str]]


class StoredPartitions(MutableMapping[int, PartitionState]):
    """Partition id -> :class:`PartitionState`, each built from its row on first access,
    in the order of a plain dict restored from the rows (stored rows, then partitions
    added since).  Iterating the keys builds nothing; the values, as they come."""

    def __init__(self, stored: PartitionRows, ops: OpTable) -> None:
        self._stored = stored
        self._ops = ops
        self._index = dict(zip(stored.ids, range(len(stored.ids)), strict=True))
        self._row_of = dict(self._index)
        """The rows not built yet."""
        self._built: dict[int, PartitionState] = {}
        statuses = stored.statuses
        self._counts = {status: statuses.count(status) for status in Status}
        self._failed_rows = _positions(statuses, Status.FAILED)

    def _build(self, pid: int) -> PartitionState:
        row = self._row_of.pop(pid)
        fields = list(marshal.loads(self._stored.rows[row]))
        status = fields[_STATUS]
        fields[_STATUS] = None if status is None else _BY_CODE[status]
        names = self._ops.name
        fields[_OPS] = {names[slot]: slot for slot in fields[_OPS]}
        part = self._built[pid] = PartitionState(*fields)
        self._counts[_BY_CODE[self._stored.statuses[row]]] -= 1
        if not self._row_of:  # all built: from now on a plain dict, in its order
            index = self._index
            order = sorted(self._built, key=lambda key: index.get(key, len(index)))
            self._built = {key: self._built[key] for key in order}
        return part

    def __getitem__(self, pid: int) -> PartitionState:
        part = self._built.get(pid)
        return part if part is not None else self._build(pid)

    def get(self, pid: int, default: Any = None) -> Any:
        part = self._built.get(pid)
        if part is not None:
            return part
        return self._build(pid) if pid in self._row_of else default

    def __setitem__(self, pid: int, part: PartitionState) -> None:
        if pid in self._row_of:
            self._build(pid)
        self._built[pid] = part

    def __delitem__(self, pid: int) -> None:
        if pid in self._row_of:
            self._build(pid)
        del self._built[pid]

    def __contains__(self, pid: object) -> bool:
        return pid in self._built or pid in self._row_of

    def __len__(self) -> int:
        return len(self._built) + len(self._row_of)

    def __iter__(self) -> Iterator[int]:
        return iter(self._built) if not self._row_of else self._keys()

    def _keys(self) -> Iterator[int]:
        row_of, built, index = self._row_of, self._built, self._index
        for pid in self._stored.ids:
            if pid in row_of or pid in built:
                yield pid
        yield from [pid for pid in built if pid not in index]

    def values(self) -> ValuesView[PartitionState]:
        return self._built.values() if not self._row_of else ValuesView(self)

    def items(self) -> ItemsView[int, PartitionState]:
        return self._built.items() if not self._row_of else ItemsView(self)

    def touched(self) -> list[PartitionState]:
        """The partitions built so far: looked up, or added, since the fold was loaded."""
        return list(self._built.values())

    def untouched(self, key: tuple[Any, ...]) -> Untouched | None:
        """The stored answers of the partitions not built yet, while they hold: the
        pipeline's ``key`` is the stored one."""
        if key != self._stored.key:
            return None
        row_of, ids = self._row_of, self._stored.ids
        failed = [ids[row] for row in self._failed_rows if ids[row] in row_of]
        skipped = {pid: names for pid, names in self._stored.skipped.items() if pid in row_of}
        return Untouched(dict(self._counts), failed, skipped)
