"""Fold a large event log on several cores.

The log is cut at line boundaries into consecutive byte ranges; each range is
folded into its own :class:`JobState` (the first here, the others in forked
worker processes) and the states are merged in order.  That equals folding the
whole log in one pass because every field of the fold is last-writer-wins,
min/max or a sum (see :mod:`dj_observe.state`).

The process machinery (``multiprocessing``, ``concurrent.futures``) is imported only
when a fold or a render is shared out: a process that folds a few appended lines
never pays for it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dj_observe.eventlog import EventLogReader, ReadStats, find_event_logs, iter_range
from dj_observe.state import JobState

__all__ = ["ForkedOutput", "fold_in_parallel", "fork_is_safe", "split_ranges"]

_TAIL_PROBE = 1 << 16


@dataclass(frozen=True)
class Range:
    """Bytes ``[start, end)`` of one log file, whole lines only."""

    path: Path
    start: int
    end: int


def _last_line_end(path: Path, size: int) -> int:
    """Offset just after the file's last newline (0 if it has none)."""
    with path.open("rb") as handle:
        position = size
        while position > 0:
            step = min(_TAIL_PROBE, position)
            position -= step
            handle.seek(position)
            found = handle.read(step).rfind(b"\n")
            if found >= 0:
                return position + found + 1
    return 0


def _next_line_start(path: Path, offset: int, limit: int) -> int:
    """The first line start at or after ``offset`` (``limit`` if none before it)."""
    if offset == 0:
        return 0
    with path.open("rb") as handle:
        handle.seek(offset - 1)
        while offset < limit:
            chunk = handle.read(_TAIL_PROBE)
            if not chunk:
                return limit
            found = chunk.find(b"\n")
            if found >= 0:
                return min(limit, offset + found)
            offset += len(chunk)
    return limit


def split_ranges(files: Iterable[Path], parts: int) -> list[list[Range]]:
    """Cut the complete lines of ``files`` (in order) into ``parts`` runs of similar size."""
    spans = []
    for path in files:
        end = _last_line_end(path, path.stat().st_size)
        if end:
            spans.append((path, end))
    total = sum(end for _, end in spans)
    target = max(1, -(-total // parts))
    groups: list[list[Range]] = [[] for _ in range(parts)]
    group, room = 0, target
    for path, end in spans:
        start = 0
        while start < end:
            last_group = group == parts - 1
            cut = end if last_group else _next_line_start(path, min(end, start + room), end)
            if cut > start:
                groups[group].append(Range(path, start, cut))
                room -= cut - start
            start = cut
            if room <= 0 and group < parts - 1:
                group, room = group + 1, target
    return [ranges for ranges in groups if ranges]


def _fold_ranges(ranges: list[Range], state: JobState | None = None) -> tuple[JobState, ReadStats]:
    state = JobState() if state is None else state
    stats = ReadStats()
    for piece in ranges:
        for events, _ in iter_range(
            piece.path, piece.start, piece.end, stats=stats, transient=True
        ):
            state.apply_all(events)
    return state, stats


def fork_is_safe() -> bool:
    """Forking copies only the calling thread: safe while no other thread runs."""
    import multiprocessing
    import threading

    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def fold_in_parallel(reader: EventLogReader, state: JobState, workers: int, min_bytes: int) -> bool:
    """Fold the reader's logs into ``state`` on ``workers`` processes, if worth it.

    Returns ``False`` (and does nothing) when the logs are smaller than
    ``min_bytes``, a single core is available or the logs cannot be cut in
    two (one line is most of them); the caller then folds
    sequentially.  On success the reader's offsets point just
    after the last complete line of each file.
    """
    workers = min(workers, os.cpu_count() or 1)
    files = find_event_logs(reader.job_dir)
    if workers < 2:
        return False
    if sum(path.stat().st_size for path in files) < min_bytes:
        return False
    groups = split_ranges(files, workers)
    if len(groups) < 2:  # one line fills most of the log: nothing to share out
        return False
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Fork is cheapest; with other threads running (a Ray driver, a server) a forked child
    # could inherit a held lock, so start fresh interpreters instead.
    context = multiprocessing.get_context("fork" if fork_is_safe() else "spawn")
    with ProcessPoolExecutor(max_workers=len(groups) - 1, mp_context=context) as pool:
        futures = [pool.submit(_fold_ranges, ranges) for ranges in groups[1:]]
        _, first_stats = _fold_ranges(groups[0], state)
        reader.stats.add(first_stats)
        for future in futures:
            partial, stats = future.result()
            state.merge(partial)
            reader.stats.add(stats)
    for path in files:
        reader.offsets[path] = 0
    for ranges in groups:
        for piece in ranges:
            reader.offsets[piece.path] = piece.end
    return True


class ForkedOutput:
    """Files written by a forked child (sharing this process's memory) while we go on.

    The child calls ``produce(handles)`` with ``count`` open binary files;
    :meth:`read` waits for it and hands the files over, or returns ``None`` if
    the child failed, so the caller can produce them itself; :meth:`discard`
    waits and deletes them.
    """

    def __init__(self, produce: Callable[[list[BinaryIO]], object], count: int = 1) -> None:
        import tempfile

        made = [tempfile.mkstemp(prefix="dj-observe-") for _ in range(count)]
        self.paths = [path for _, path in made]
        self.pid = os.fork()
        if self.pid == 0:  # the child: produce, then leave without running any cleanup
            status = 1
            try:
                handles = [os.fdopen(fd, "wb", buffering=1 << 20) for fd, _ in made]
                produce(handles)
                for handle in handles:
                    handle.close()
                status = 0
            finally:
                os._exit(status)
        self._status: int | None = None
        for fd, _ in made:
            os.close(fd)

    def read(self) -> list[str] | None:
        """Wait for the child: its files' paths (now the caller's), or ``None`` if it failed."""
        self._wait()
        if self._status != 0:
            self.discard()
            return None
        paths, self.paths = self.paths, []
        return paths

    def discard(self) -> None:
        """Wait for the child and delete the files nobody took."""
        self._wait()
        for path in self.paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.paths = []

    def _wait(self) -> None:
        if self._status is None:
            _, self._status = os.waitpid(self.pid, 0)
