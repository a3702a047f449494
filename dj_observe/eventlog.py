"""Streaming reader for a job's event log(s).

A job directory holds ``events.jsonl`` and/or Data-Juicer's per-run files
``events_<timestamp>.jsonl`` (a resumed job writes one more).  The reader yields
events in write order, block by block, and never raises on bad content: malformed
lines, over-long lines and a torn last line are skipped and counted in
:class:`ReadStats`.  :class:`EventLogReader` remembers byte offsets, so a caller
that reads again gets only what was appended since.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from dj_observe.events import FAST_DECODER, TYPED_DECODER, AnyEvent, EventType, parse_line

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "EventLogReader",
    "ReadStats",
    "decode_block",
    "find_event_logs",
    "is_event_log_name",
    "iter_range",
]

BLOCK_BYTES = 1 << 18
DEFAULT_MAX_LINE_BYTES = 64 << 20
"""Lines longer than this (64 MiB) are skipped and counted, to bound memory."""

_RUN_FILE = re.compile(r"^events_(.+)\.jsonl$")


@dataclasses.dataclass
class ReadStats:
    """What the reader saw besides events: every skipped line is counted here."""

    events: int = 0
    malformed_lines: int = 0
    oversized_lines: int = 0
    torn_tail_lines: int = 0
    bytes_read: int = 0

    @property
    def skipped_lines(self) -> int:
        return self.malformed_lines + self.oversized_lines + self.torn_tail_lines

    def add(self, other: ReadStats) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def _first_timestamp(path: Path) -> float:
    """Timestamp of the first parseable event in ``path`` (inf when there is none)."""
    try:
        with path.open("rb") as handle:
            for _ in range(16):
                line = handle.readline(1 << 20)
                if not line:
                    break
                event = parse_line(line)
                if event is not None and event.timestamp is not None:
                    return event.timestamp
    except OSError:
        pass
    return float("inf")


def first_job_start(path: Path, max_bytes: int = 64 << 20) -> float | None:
    """Timestamp of the first ``job_start`` event in the first ``max_bytes`` of ``path``."""
    read = 0
    try:
        with path.open("rb") as handle:
            while read < max_bytes:
                line = handle.readline(1 << 20)
                if not line:
                    break
                read += len(line)
                if b"job_start" not in line:
                    continue
                event = parse_line(line)
                if event is not None and event.event_type == EventType.JOB_START:
                    return event.timestamp
    except OSError:
        pass
    return None


def is_event_log_name(name: str) -> bool:
    """Whether a file of this name is one of a job's event logs."""
    return name == "events.jsonl" or _RUN_FILE.match(name) is not None


def find_event_logs(job_dir: str | os.PathLike[str]) -> list[Path]:
    """The job's event log files in write order.

    ``events.jsonl`` and ``events_<timestamp>.jsonl`` in the job directory, ordered
    by the timestamp of their first event (then by name), so every run of a
    resumed job is read, oldest first.
    """
    root = Path(job_dir)
    files = [path for path in root.iterdir() if path.is_file() and is_event_log_name(path.name)]
    return sorted(files, key=lambda path: (_first_timestamp(path), path.name))


def decode_block(block: bytes | memoryview, stats: ReadStats) -> Sequence[AnyEvent]:
    """Decode a block of whole lines: one call with the typed decoder when every line
    is a known, well-typed event; else the generic one; else line by line."""
    events: Sequence[AnyEvent]
    try:
        events = TYPED_DECODER.decode_lines(block)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        events = _decode_lines(bytes(block), stats)
    stats.events += len(events)
    return events


def _decode_lines(block: bytes, stats: ReadStats) -> Sequence[AnyEvent]:
    """The block decoded with the generic lean decoder, or line by line if any line is bad."""
    try:
        return FAST_DECODER.decode_lines(block)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        events = []
        for line in block.split(b"\n"):
            if not line.strip():
                continue
            event = _decode_line(line)
            if event is None:
                stats.malformed_lines += 1
            else:
                events.append(event)
        return events


def _decode_line(line: bytes) -> AnyEvent | None:
    try:
        return FAST_DECODER.decode(line)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return parse_line(line)


def iter_range(
    path: str | os.PathLike[str],
    start: int = 0,
    end: int | None = None,
    *,
    stats: ReadStats,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    transient: bool = False,
) -> Iterator[tuple[Sequence[AnyEvent], int]]:
    """Yield ``(events, offset)`` for the whole lines in ``[start, end)`` of one file.

    ``offset`` is the byte just after the last line consumed so far.  A last
    piece without a newline is consumed if it parses as an event; otherwise it is
    left for a later read and counted in ``stats.torn_tail_lines`` when it is at
    the end of the requested range.

    The file is read into one reused buffer.  With ``transient=True`` events are
    decoded straight from it, which saves a copy of every byte, but their raw
    fields (``metadata``, ``message``, ...) are only valid until the next block is
    requested: for callers that fold each block at once.
    """
    buffer = bytearray(BLOCK_BYTES)
    view = memoryview(buffer)
    have = 0  # bytes at the buffer's start: a line not yet complete
    offset = start  # file offset just after the last line consumed (or skipped)
    skipping = False  # inside an over-long line: discard up to its newline
    remaining = None if end is None else max(0, end - start)
    with open(path, "rb", buffering=0) as handle:
        handle.seek(start)
        while remaining is None or remaining > 0:
            if have == len(buffer):  # one line fills the buffer
                if have > max_line_bytes:
                    stats.oversized_lines += 1
                    offset += have
                    have, skipping = 0, True
                else:
                    buffer, view = _resized(view, have, min(2 * have, max_line_bytes + 1))
            want = len(buffer) - have
            read = handle.readinto(
                view[have : have + (want if remaining is None else min(want, remaining))]
            )
            if not read:
                break
            if remaining is not None:
                remaining -= read
            stats.bytes_read += read
            have += read
            if skipping:
                newline = buffer.find(b"\n", 0, have)
                if newline < 0:
                    offset += have
                    have = 0
                    continue
                skipping = False
                offset += newline + 1
                have = _keep_tail(buffer, view, newline + 1, have)
            last = buffer.rfind(b"\n", 0, have) + 1
            if not last:
                continue
            block: bytes | memoryview = view[:last] if transient else bytes(view[:last])
            if last > max_line_bytes:
                block = _drop_long_lines(bytes(block), max_line_bytes, stats)
            offset += last
            if block:
                yield decode_block(block, stats), offset
            del block
            have = _keep_tail(buffer, view, last, have)
            if len(buffer) > BLOCK_BYTES and have < BLOCK_BYTES:  # the long line is done
                buffer, view = _resized(view, have, BLOCK_BYTES)
    if have and not skipping:
        event = parse_line(bytes(view[:have]))
        if event is not None:
            stats.events += 1
            yield [event], offset + have
        elif bytes(view[:have]).strip():
            stats.torn_tail_lines += 1


def _resized(view: memoryview, have: int, size: int) -> tuple[bytearray, memoryview]:
    """A new buffer of ``size`` bytes starting with ``view[:have]``."""
    buffer = bytearray(size)
    buffer[:have] = view[:have]
    return buffer, memoryview(buffer)


def _keep_tail(buffer: bytearray, view: memoryview, cut: int, have: int) -> int:
    """Move ``buffer[cut:have]`` to the buffer's start; returns its length."""
    tail = have - cut
    if tail:
        buffer[:tail] = bytes(view[cut:have])
    return tail


def _drop_long_lines(block: bytes, max_line_bytes: int, stats: ReadStats) -> bytes:
    kept = []
    for line in block.split(b"\n"):
        if len(line) > max_line_bytes:
            stats.oversized_lines += 1
        else:
            kept.append(line)
    return b"\n".join(kept)


class EventLogReader:
    """Reads a job's event logs incrementally, remembering where each file ended.

    Each :meth:`read` yields only the events appended since the previous call
    (new run files are picked up too); ``stats`` accumulates over all calls,
    except torn tails, which describe the latest read only.
    """

    def __init__(
        self, job_dir: str | os.PathLike[str], *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    ) -> None:
        self.job_dir = Path(job_dir)
        self.max_line_bytes = max_line_bytes
        self.offsets: dict[Path, int] = {}
        self.stats = ReadStats()

    @property
    def files(self) -> list[Path]:
        """The log files read so far, in read order."""
        return list(self.offsets)

    def read(self, *, transient: bool = False) -> Iterator[Sequence[AnyEvent]]:
        """Yield blocks of events appended since the last call, in write order
        (``transient``: see :func:`iter_range`)."""
        self.stats.torn_tail_lines = 0
        for path in find_event_logs(self.job_dir):
            start = self.offsets.setdefault(path, 0)
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size < start:
                start = self.offsets[path] = 0
            for events, offset in iter_range(
                path,
                start,
                stats=self.stats,
                max_line_bytes=self.max_line_bytes,
                transient=transient,
            ):
                self.offsets[path] = offset
                yield events
