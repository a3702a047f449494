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
must be the user's own and closed to others, since an entry is a pickle.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from dj_observe.eventlog import find_event_logs
from dj_observe.state import JobState
from dj_observe.tracker import JobTracker

__all__ = ["CACHE_DIR_VARIABLE", "CACHE_MAX_BYTES_VARIABLE", "cache_dir", "refresh_cached"]

CACHE_DIR_VARIABLE = "DJ_OBSERVE_CACHE_DIR"
CACHE_MAX_BYTES_VARIABLE = "DJ_OBSERVE_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 512 << 20
PROBE_BYTES = 4096
"""Bytes compared at a log's start and just before where the stored fold stopped."""
FORMAT = 1
_SUFFIX = ".fold"


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
    marks: list[_LogMark]
    state: JobState
    stats: object


def cache_dir() -> Path:
    """``$DJ_OBSERVE_CACHE_DIR``, else the user's cache directory's ``dj-observe``."""
    configured = os.environ.get(CACHE_DIR_VARIABLE)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dj-observe"


def _max_bytes() -> int:
    raw = os.environ.get(CACHE_MAX_BYTES_VARIABLE)
    if raw is None:
        return DEFAULT_MAX_BYTES
    try:
        return max(0, int(raw))
    except ValueError:
        logger.warning(
            "{}={!r} is not a number of bytes; using {}",
            CACHE_MAX_BYTES_VARIABLE,
            raw,
            DEFAULT_MAX_BYTES,
        )
        return DEFAULT_MAX_BYTES


def refresh_cached(tracker: JobTracker) -> JobState:
    """:meth:`JobTracker.refresh`, starting from the stored fold when it is still valid."""
    directory = cache_dir()
    key = _key(tracker.job_dir)
    entry_path = directory / f"{key}{_SUFFIX}"
    first = not tracker.reader.offsets
    loaded = first and _private(directory) and _restore(tracker, entry_path, key)
    before = dict(tracker.reader.offsets)
    state = tracker.refresh()
    if tracker.reader.offsets != before or (first and not loaded):
        _store(tracker, directory, entry_path, key)
    return state


def _key(job_dir: Path) -> str:
    return hashlib.sha256(os.fsencode(os.path.realpath(job_dir))).hexdigest()[:32]


def _private(directory: Path) -> bool:
    """Whether ``directory`` is ours and closed to others (entries are pickles)."""
    try:
        info = directory.stat()
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _restore(tracker: JobTracker, entry_path: Path, key: str) -> bool:
    try:
        with entry_path.open("rb") as handle:
            entry = pickle.load(handle)
    except Exception:  # a missing, damaged or foreign entry is only a cache miss
        return False
    if not isinstance(entry, _Entry) or entry.key != f"{FORMAT}:{key}":
        return False
    logs = [str(path) for path in find_event_logs(tracker.job_dir)]
    covered = [mark.path for mark in entry.marks]
    if logs[: len(covered)] != covered or not all(map(_unchanged, entry.marks)):
        return False
    tracker.state = entry.state
    tracker.reader.stats = entry.stats  # type: ignore[assignment]
    tracker.reader.offsets = {Path(mark.path): mark.offset for mark in entry.marks}
    return True


def _unchanged(mark: _LogMark) -> bool:
    try:
        with open(mark.path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if (info.st_dev, info.st_ino) != (
                mark.device,
                mark.inode,
            ) or info.st_size < mark.offset:
                return False
            return _probe(handle, mark.offset) == (mark.head, mark.tail)
    except OSError:
        return False


def _probe(handle, offset: int) -> tuple[bytes, bytes]:
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


def _store(tracker: JobTracker, directory: Path, entry_path: Path, key: str) -> None:
    marks = [_mark(path, offset) for path, offset in tracker.reader.offsets.items()]
    if None in marks:
        return
    entry = _Entry(f"{FORMAT}:{key}", marks, tracker.state, tracker.reader.stats)  # type: ignore[arg-type]
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(directory):
            return
        data = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
        limit = _max_bytes()
        if len(data) > limit:
            return
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{key}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, entry_path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _prune(directory, limit)
    except OSError as exc:
        logger.debug("fold cache not written: {}", exc)


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
