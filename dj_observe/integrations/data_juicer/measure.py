"""Measuring an op's Ray Data functions in the workers that run them.

The driver wraps each function an op hands to Ray Data (``map_batches``'s
function or callable class, ``filter``'s predicate) in a :class:`MeasuredFn`
naming the op run and the step of the op it is (a filter is a stats step and a
filtering step).  In the worker, each copy of the function counts its own calls
(rows in, rows out, seconds; CPU seconds for batches) in plain attributes, with no
lock on the way; a daemon thread appends every copy's running totals to a file of
the worker's own every :data:`FLUSH_INTERVAL` (one ``write`` of whole lines), and at
once when the function raises.  The driver's
:class:`~dj_observe.integrations.data_juicer.collector.Collector` keeps the latest
totals of each copy and adds them up.  Fused operators are measured the same way:
Ray fuses the functions into one task, and each function still counts its own calls.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from dj_observe.procstats import peak_rss_bytes

__all__ = ["FLUSH_INTERVAL", "MeasuredFn", "Step", "Tally", "measured_class"]

FLUSH_INTERVAL = 0.1
"""Seconds between two appends of a worker's totals."""


class Step(NamedTuple):
    """One function of one op run: where the totals go and what they are of."""

    directory: str
    partition_id: int
    op_name: str
    op_idx: int
    step: int


class Tally(msgspec.Struct, array_like=True):
    """One copy's totals so far (one line of its worker's file; a later line replaces it)."""

    copy: int
    partition_id: int
    op_name: str
    op_idx: int
    step: int
    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    first_start: float = 0.0
    last_end: float = 0.0
    peak_rss_bytes: int = 0
    error: str | None = None
    stack_trace: str | None = None


_ENCODER = msgspec.json.Encoder()
_copies = itertools.count(1)


class _Counter:
    """The running totals of one copy of a measured function in this process."""

    __slots__ = (
        "calls",
        "copy",
        "cpu",
        "error",
        "first_perf",
        "first_wall",
        "flushed",
        "last_perf",
        "rows_in",
        "rows_out",
        "seconds",
        "stack_trace",
        "step",
    )

    def __init__(self, step: Step) -> None:
        self.step = step
        self.copy = (os.getpid() << 20) + next(_copies)
        self.calls = self.flushed = self.rows_in = self.rows_out = 0
        self.seconds = self.cpu = 0.0
        self.first_wall, self.first_perf = time.time(), time.perf_counter()
        self.last_perf = self.first_perf
        self.error: str | None = None
        self.stack_trace: str | None = None

    def tally(self, peak: int) -> Tally:
        step, wall = self.step, self.first_wall - self.first_perf
        return Tally(
            self.copy,
            step.partition_id,
            step.op_name,
            step.op_idx,
            step.step,
            self.rows_in,
            self.rows_out,
            self.seconds,
            self.cpu,
            self.first_wall,
            wall + self.last_perf,
            peak,
            self.error,
            self.stack_trace,
        )


class _Flusher:
    """Appends this process's counters that changed, every :data:`FLUSH_INTERVAL`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # Each copy's counter, held until its function is gone and its last call appended.
        self.alive: list[tuple[weakref.ref[MeasuredFn], _Counter]] = []
        self.files: dict[str, int] = {}
        self.pid = 0

    def register(self, owner: MeasuredFn, counter: _Counter) -> None:
        with self.lock:
            if self.pid != os.getpid():  # a new (forked) process: its own thread and files
                self.pid, self.files, self.alive = os.getpid(), {}, []
                thread = threading.Thread(target=self._run, name="dj-observe-tally", daemon=True)
                thread.start()
            self.alive.append((weakref.ref(owner), counter))

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            self.flush()

    def flush(self) -> None:
        with self.lock:
            changed = [counter for _, counter in self.alive if counter.calls != counter.flushed]
            self.alive = [
                (owner, counter)
                for owner, counter in self.alive
                if owner() is not None or counter.calls != counter.flushed
            ]
            if not changed:
                return
            peak = peak_rss_bytes()
            by_directory: dict[str, list[bytes]] = {}
            for counter in changed:
                counter.flushed = counter.calls
                line = _ENCODER.encode(counter.tally(peak))
                by_directory.setdefault(counter.step.directory, []).append(line)
            for directory, lines in by_directory.items():
                with contextlib.suppress(OSError):  # never the job's problem
                    os.write(self._file(directory), b"\n".join(lines) + b"\n")

    def _file(self, directory: str) -> int:
        fd = self.files.get(directory)
        if fd is None:
            Path(directory).mkdir(parents=True, exist_ok=True)
            name = f"{os.uname().nodename}-{os.getpid()}.jsonl"
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            fd = self.files[directory] = os.open(os.path.join(directory, name), flags, 0o644)
        return fd


_flusher = _Flusher()


def _rows(batch: Any) -> int:
    """Rows of a batch as Ray Data hands them over: Arrow, pandas, dict of columns, a row."""
    if batch is None:
        return 0
    rows = getattr(batch, "num_rows", None)
    if isinstance(rows, int):
        return rows
    if isinstance(batch, dict):
        for column in batch.values():
            try:
                return len(column)
            except TypeError:
                return 1
        return 0
    try:
        return len(batch)
    except TypeError:
        return 1


class MeasuredFn:
    """``fn`` for Ray Data, counting each call for its :class:`Step` (picklable)."""

    def __init__(self, fn: Callable[..., Any], step: Step, predicate: bool = False) -> None:
        self.fn = fn
        self.step = step
        self.predicate = predicate  # ``filter``'s function: one row in, a bool out
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self._counter: _Counter | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_counter": None}  # each copy counts for itself

    def __call__(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        counter = getattr(self, "_counter", None)
        if counter is None:
            try:
                counter = self._counter = _Counter(self.step)
                _flusher.register(self, counter)
            except Exception:  # measuring must never cost the job its batch
                return self.fn(batch, *args, **kwargs)
        if self.predicate:
            return _count_row(counter, self.fn, batch, args, kwargs)
        return _count_batch(counter, self.fn, batch, args, kwargs)


def _count_row(counter: _Counter, fn: Callable[..., Any], row: Any, args: Any, kw: Any) -> Any:
    start = time.perf_counter()
    try:
        keep = fn(row, *args, **kw)
    except BaseException as exc:
        _failed(counter, exc, 1, start)
        raise
    end = time.perf_counter()
    counter.rows_in += 1
    if keep:
        counter.rows_out += 1
    counter.seconds += end - start
    counter.last_perf = end
    counter.calls += 1
    return keep


def _count_batch(counter: _Counter, fn: Callable[..., Any], batch: Any, args: Any, kw: Any) -> Any:
    rows_in = _rows(batch)
    start, cpu = time.perf_counter(), time.process_time()
    try:
        result = fn(batch, *args, **kw)
    except BaseException as exc:
        _failed(counter, exc, rows_in, start)
        raise
    end = time.perf_counter()
    counter.cpu += time.process_time() - cpu
    counter.rows_in += rows_in
    counter.rows_out += _rows(result)
    counter.seconds += end - start
    counter.last_perf = end
    counter.calls += 1
    return result


def _failed(counter: _Counter, exc: BaseException, rows_in: int, start: float) -> None:
    """Count the call that raised and append at once: the driver settles on it."""
    end = time.perf_counter()
    counter.rows_in += rows_in
    counter.seconds += end - start
    counter.last_perf = end
    counter.error = f"{type(exc).__name__}: {exc}"
    counter.stack_trace = "".join(traceback.format_exception(exc))
    counter.calls += 1
    _flusher.flush()


def measured_class(cls: type, step: Step) -> type:
    """A callable class for Ray Data's actors that builds ``cls`` and counts its calls."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        self.inner = MeasuredFn(cls(*args, **kwargs), step)

    def __call__(self: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
        return self.inner(batch, *args, **kwargs)

    return type(cls.__name__, (), {"__init__": __init__, "__call__": __call__})
