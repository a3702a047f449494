"""A job's fold, persisted between processes: a later poll folds only what was appended.

``refresh_cached(tracker)`` loads the fold a previous process left for the same job
directory, checks that every log it covered is still the same bytes (same file, not
shorter, the same bytes around where it stopped and at its start), folds what was
appended since, and stores the result again.  A log that was replaced, truncated or
rewritten throws the stored fold away: the answer is never stale.

Entries live outside the job directory (which may be read-only) in
``$DJ_OBSERVE_CACHE_DIR`` (default: ``$XDG_CACHE_HOME/dj-observe``, else
``~/.cache/dj-observe``), one file per job directory, written atomically (several
pollers at once each leave a whole entry); the oldest entries go once the directory
holds more than ``$DJ_OBSERVE_CACHE_MAX_BYTES`` (default 512 MiB).  The directory
must be the user's own and closed to others, since an entry is a pickle; its first line
names its format, and an entry of another format (an older dj-observe's) is a miss,
never unpickled.

The partitions are stored as rows and built only when looked up
(:mod:`dj_observe.partstore`), with each one's status and skipped ops for the summary: a
poll builds the partitions its events name, not the job's.

Beside the fold an entry keeps, per partition, how many op runs were timed only with
their checkpoint group (``metadata.group_timed_operations``): a later poll recounts
only the partitions the appended events name (an op run's times change only through
events naming its partition), all of them if the pipeline's op positions changed.
"""

from __future__ import annotations

import marshal
import os
import pickle
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from dj_observe.eventlog import ReadStats, find_event_logs, iter_range
from dj_observe.oprows import group_timed_counts
from dj_observe.partstore import PartitionRows, StoredPartitions
from dj_observe.state import JobState
from dj_observe.tracker import JobTracker, gc_paused

__all__ = [
    "CACHE_DIR_VARIABLE",
    "CACHE_MAX_BYTES_VARIABLE",
    "PersistedFold",
    "cache_dir",
    "refresh_cached",
]

CACHE_DIR_VARIABLE = "DJ_OBSERVE_CACHE_DIR"
CACHE_MAX_BYTES_VARIABLE = "DJ_OBSERVE_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 512 << 20
PROBE_BYTES = 4096
"""Bytes compared at a log's start and just before where the stored fold stopped."""
STORE_AFTER_BYTES = 8 << 20
"""A stored fold is replaced once this much log (8 MiB) was folded beyond it: storing
costs what the job holds, folding a tail what it appended, so polls store rarely."""
FORMAT = 4
_SUFFIX = ".fold"
_MAGIC = b"dj-observe fold %d (marshal %d)\n" % (FORMAT, marshal.version)
"""An entry's first bytes: one of another format (or not an entry) is not unpickled."""


@dataclass(frozen=True)
class _LogMark:
    """Where the stored fold stopped in one log, and what the bytes there looked like."""

    path: str
    device: int
    inode: int
    offset: int
    head: bytes
    tail: bytes


@dataclass
class _Entry:
    key: str
    """The job directory's real path."""
    marks: list[_LogMark]
    state: dict[str, Any]
    stats: ReadStats
    positions: dict[str, int]
    group_timed: dict[int, int]


def cache_dir() -> Path:
    """``$DJ_OBSERVE_CACHE_DIR``, else the user's cache directory's ``dj-observe``."""
    configured = os.environ.get(CACHE_DIR_VARIABLE)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dj-observe"


def _max_bytes() -> int:
    """``$DJ_OBSERVE_CACHE_MAX_BYTES``; a value that is not a number means the default."""
    try:
        return max(0, int(os.environ.get(CACHE_MAX_BYTES_VARIABLE, DEFAULT_MAX_BYTES)))
    except ValueError:
        return DEFAULT_MAX_BYTES


@dataclass
class PersistedFold:
    """A job's fold after :func:`refresh_cached`, with its group-timed counts by partition."""

    tracker: JobTracker
    group_timed_by_partition: dict[int, int] = field(repr=False)
    stored_offsets: dict[Path, int] = field(default_factory=dict, repr=False)
    """Where the stored fold ends in each log (pass it to the next :func:`refresh_cached`)."""

    @property
    def state(self) -> JobState:
        return self.tracker.state

    def group_timed(self) -> int:
        """How many op runs were timed only with their checkpoint group."""
        return sum(self.group_timed_by_partition.values())


def refresh_cached(
    tracker: JobTracker, stored_offsets: dict[Path, int] | None = None
) -> PersistedFold:
    """:meth:`JobTracker.refresh`, starting from the stored fold when it is still valid;
    stored when there was none, and again once :data:`STORE_AFTER_BYTES` were folded
    beyond it."""
    key = os.path.realpath(tracker.job_dir)
    entry_path = cache_dir() / f"{_file_name(key)}{_SUFFIX}"
    first = not tracker.reader.offsets
    entry = _restore(tracker, entry_path, key) if first else None
    before = dict(tracker.reader.offsets)
    state = tracker.refresh()
    if entry is None or state.pipeline_positions() != entry.positions:
        counts = group_timed_counts(state, state.partitions)
    else:
        counts = entry.group_timed
        dirty = _named_partitions(before, tracker.reader.offsets)
        dirty.update(pid for pid in state.partitions if pid not in counts)
        counts.update(group_timed_counts(state, dirty & state.partitions.keys()))
    stored = before if entry is not None else (stored_offsets or {})
    fold = PersistedFold(tracker, counts, stored)
    unstored = sum(end - stored.get(path, 0) for path, end in tracker.reader.offsets.items())
    if (entry is None and first) or unstored >= STORE_AFTER_BYTES:
        _store(fold, entry_path, key)
        fold.stored_offsets = dict(tracker.reader.offsets)
    return fold


def _named_partitions(before: dict[Path, int], after: dict[Path, int]) -> set[int]:
    """The partitions named by the events between ``before`` and ``after``."""
    named: set[int] = set()
    for path, end in after.items():
        start = before.get(path, 0)
        if end <= start:
            continue
        for events, _ in iter_range(path, start, end, stats=ReadStats()):
            ids = (getattr(event, "partition_id", None) for event in events)
            named.update(pid for pid in ids if pid is not None)
    return named


def _file_name(key: str) -> str:
    """The entry's file name: two checksums of the job directory's real path (zlib's, as
    hashlib costs more to import than a poll spends folding).  Directories whose names
    check alike would share one file, never an answer: the entry holds the path."""
    path = os.fsencode(key)
    return f"{zlib.crc32(path):08x}{zlib.adler32(path):08x}"


def _private(directory: Path) -> bool:
    """Whether ``directory`` is ours and closed to others (entries are pickles)."""
    try:
        info = directory.stat()
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _restore(tracker: JobTracker, entry_path: Path, key: str) -> _Entry | None:
    """Put the stored fold into ``tracker`` if every log it covered is unchanged."""
    if not _private(entry_path.parent):
        return None
    try:
        with entry_path.open("rb") as handle, gc_paused():
            if handle.read(len(_MAGIC)) != _MAGIC:
                return None
            entry = pickle.load(handle)
    except Exception:  # a missing, damaged or foreign entry is only a cache miss
        return None
    if not isinstance(entry, _Entry) or entry.key != key:
        return None
    logs = [str(path) for path in find_event_logs(tracker.job_dir)]
    covered = [mark.path for mark in entry.marks]
    if logs[: len(covered)] != covered or not all(map(_unchanged, entry.marks)):
        return None
    state = JobState()
    vars(state).update(entry.state)
    state.partitions = StoredPartitions(entry.state["partitions"], state.ops)
    tracker.state = state
    tracker.reader.stats = entry.stats
    tracker.reader.offsets = {Path(mark.path): mark.offset for mark in entry.marks}
    return entry


def _unchanged(mark: _LogMark) -> bool:
    try:
        with open(mark.path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if (info.st_dev, info.st_ino) != (mark.device, mark.inode):
                return False
            return info.st_size >= mark.offset and _probe(handle, mark.offset) == (
                mark.head,
                mark.tail,
            )
    except OSError:
        return False


def _probe(handle: BinaryIO, offset: int) -> tuple[bytes, bytes]:
    handle.seek(0)
    head = handle.read(min(PROBE_BYTES, offset))
    start = max(0, offset - PROBE_BYTES)
    handle.seek(start)
    return head, handle.read(offset - start)


def _mark(path: Path, offset: int) -> _LogMark | None:
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            head, tail = _probe(handle, offset)
    except OSError:
        return None
    return _LogMark(str(path), info.st_dev, info.st_ino, offset, head, tail)


def _state_fields(state: JobState) -> dict[str, Any]:
    """The fold's attributes but its bound handlers, partitions as their rows."""
    state.ops.trim()
    fields = {name: value for name, value in vars(state).items() if name != "_handlers"}
    fields["partitions"] = PartitionRows.of(state)
    return fields


def _store(fold: PersistedFold, entry_path: Path, key: str) -> None:
    """Write the entry atomically; a cache that cannot be written is only a miss later."""
    tracker = fold.tracker
    found = [_mark(path, offset) for path, offset in tracker.reader.offsets.items()]
    marks = [mark for mark in found if mark is not None]
    if len(marks) < len(found):
        return
    entry = _Entry(
        key,
        marks,
        _state_fields(tracker.state),
        tracker.reader.stats,
        tracker.state.pipeline_positions(),
        fold.group_timed_by_partition,
    )
    directory = entry_path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(directory):
            return
        data = _MAGIC + pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
        limit = _max_bytes()
        if len(data) > limit:
            return
        import tempfile

        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{entry_path.stem}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, entry_path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _prune(directory, limit)
    except OSError:
        return


def _prune(directory: Path, limit: int) -> None:
    """Drop the least recently written entries until the directory fits in ``limit``."""
    entries = []
    for path in directory.glob(f"*{_SUFFIX}"):
        try:
            info = path.stat()
        except OSError:
            continue
        entries.append((info.st_mtime, info.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        path.unlink(missing_ok=True)
        total -= size
