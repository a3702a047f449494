"""The event-log writer: appends each live event to ``events.jsonl`` as one whole line.

Each line is one ``write(2)`` on a descriptor opened with ``O_APPEND``, so
threads and processes appending to the same log never interleave or tear lines;
job-level events are also ``fsync``-ed.  On open, a torn last line left by a
crash is moved aside to ``events.jsonl.torn`` (with its offset) and cut from the
log, so the next event does not get glued to it; every open writer holds a shared
``flock``, so a log that another process is writing is never "repaired".

A write that fails halfway (a full disk) leaves no fragment either: the writer cuts
what it wrote of the line when it is the log's only writer, and otherwise ends the
fragment with the next line's newline, so that line is not lost (the fragment is then
one malformed line for readers); the failure raises, and the hook counts it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from dj_observe.events import EventType

__all__ = ["EventLogWriter", "repair_torn_tail"]

REOPEN_INTERVAL = 5.0
"""After the log could not be opened, try again at most this often (seconds)."""

_DURABLE = frozenset(
    {
        EventType.JOB_START.value,
        EventType.JOB_COMPLETE.value,
        EventType.JOB_FAILED.value,
        EventType.JOB_RESTART.value,
    }
)
_PROBE = 1 << 16


def repair_torn_tail(path: Path) -> int:
    """Move a torn last line aside; returns how many bytes were moved (0 if none).

    Only when no live writer holds the log (every :class:`EventLogWriter` keeps a
    shared ``flock`` on it while open): an unfinished last line of a live writer
    is its line being written, not a crash's leftover.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another process is writing this log right now
        return _move_tail_aside(fd, path)
    finally:
        os.close(fd)


def _move_tail_aside(fd: int, path: Path) -> int:
    """With the log locked exclusively: cut a last line without newline, keep it aside."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    keep = _last_newline_end(fd, size)
    fragment = os.pread(fd, size - keep, keep)
    aside = path.with_name(path.name + ".torn")
    with open(aside, "ab") as handle:
        handle.write(f"# {time.time():.6f} offset {keep} of {path.name}\n".encode())
        handle.write(fragment + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.ftruncate(fd, keep)
    os.fsync(fd)
    return len(fragment)


def _last_newline_end(fd: int, size: int) -> int:
    position = size
    while position > 0:
        step = min(_PROBE, position)
        position -= step
        found = os.pread(fd, step, position).rfind(b"\n")
        if found >= 0:
            return position + found + 1
    return 0


class EventLogWriter:
    """Appends live events' lines to the job's event log (on the caller's thread: the log
    is the durable record, so it is written before :meth:`ObservabilityHook.emit` returns)."""

    name = "event_log"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.fd: int | None = None
        self.repaired_bytes = 0
        self.failed_writes = 0
        self._unterminated = False  # the log ends with a fragment of a failed write
        self._next_open = 0.0
        self._error: OSError | None = None
        self._open()

    def _open(self) -> None:
        self._next_open = time.monotonic() + REOPEN_INTERVAL
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # other writers are live: their last line is theirs
                fcntl.flock(fd, fcntl.LOCK_SH)
            else:
                self.repaired_bytes += _move_tail_aside(fd, self.path)
                fcntl.flock(fd, fcntl.LOCK_SH)  # from now on, one of the live writers
            self.fd = fd
            self._error = None
        except OSError as exc:
            self._error = exc

    def write(self, line: bytes, event_type: str) -> None:
        """Append one line (one ``write(2)``); ``fsync`` after job-level events."""
        if self.fd is None:
            if time.monotonic() >= self._next_open:
                self._open()
            if self.fd is None:
                raise self._error or OSError(f"cannot open {self.path}")
        if self._unterminated:  # end the fragment first, in the same append
            line = b"\n" + line
        written = 0
        try:
            while written < len(line):  # a loop only on a nearly full disk
                written += os.write(self.fd, line[written:])
        except OSError:
            self.failed_writes += 1
            if written and not self._cut(self.fd, written):
                self._unterminated = True
            raise
        self._unterminated = False
        if event_type in _DURABLE:
            os.fsync(self.fd)

    def _cut(self, fd: int, written: int) -> bool:
        """Cut the ``written`` bytes of a failed line off the log's end, if no other writer
        could have appended since (only while this one holds the log alone)."""
        end = os.lseek(fd, 0, os.SEEK_CUR)  # O_APPEND: just after what this write wrote
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            cut = False
        else:
            cut = os.fstat(fd).st_size == end
            if cut:
                os.ftruncate(fd, end - written)
        finally:
            fcntl.flock(fd, fcntl.LOCK_SH)  # a failed upgrade may have dropped the shared lock
        return cut

    def flush(self, timeout: float | None = None) -> None:
        if self.fd is not None:
            os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
