"""Measuring an op's Ray Data functions in the workers that run them.

The driver wraps each function an op hands to Ray Data (``map_batches``'s
function or callable class, ``filter``'s predicate) in a :class:`MeasuredFn`
naming the op run and the step of the op it is (a filter is a stats step and a
filtering step).  In the worker, every call adds its rows in, rows out, seconds
and CPU seconds to the process's tally for that step; the tally is appended to a
file of the worker's own (one ``write`` of whole lines, at most every
:data:`FLUSH_INTERVAL`, and at once when the function raises) which the driver's
:class:`~dj_observe.integrations.data_juicer.collector.Collector` reads.  Fused
operators are measured the same way: Ray fuses the functions into one task, and
each function still counts its own calls.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from dj_observe.procstats import peak_rss_bytes

__all__ = ["FLUSH_INTERVAL", "MeasuredFn", "Step", "Tally", "measured_class"]

FLUSH_INTERVAL = 0.1
"""Seconds between two appends of a worker's tallies."""


class Step(NamedTuple):
    """One function of one op run: where the tallies go and what they are of."""

    directory: str
    partition_id: int
    op_name: str
    op_idx: int
    step: int


class Tally(msgspec.Struct, array_like=True):
    """What a worker counted for one step since its last append (one line of its file)."""

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
    error: str | None = None
    stack_trace: str | None = None
    peak_rss_bytes: int = 0


_ENCODER = msgspec.json.Encoder()


class _Tallies:
    """The worker process's tallies by step, appended to its file by a daemon thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[Step, Tally] = {}
        self.files: dict[str, int] = {}
        self.thread: threading.Thread | None = None
        self.pid = os.getpid()

    def add(
        self,
        step: Step,
        rows_in: int,
        rows_out: int,
        start: float,
        wall: float,
        cpu: float,
        error: BaseException | None = None,
    ) -> None:
        with self.lock:
            tally = self.pending.get(step)
            if tally is None:
                tally = self.pending[step] = Tally(
                    step.partition_id, step.op_name, step.op_idx, step.step, first_start=start
                )
            tally.rows_in += rows_in
            tally.rows_out += rows_out
            tally.seconds += wall
            tally.cpu_seconds += cpu
            tally.last_end = start + wall
            if error is not None:
                tally.error = f"{type(error).__name__}: {error}"
                tally.stack_trace = "".join(traceback.format_exception(error))
        if error is not None:
            self.flush()
        elif self.thread is None or self.pid != os.getpid():
            self._start()

    def _start(self) -> None:
        with self.lock:
            if self.thread is not None and self.pid == os.getpid():
                return
            self.pid = os.getpid()
            self.files = {}
            self.thread = threading.Thread(target=self._run, name="dj-observe-tally", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            self.flush()

    def flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, {}
            by_directory: dict[str, list[bytes]] = {}
            peak = peak_rss_bytes() if pending else 0
            for step, tally in pending.items():
                tally.peak_rss_bytes = peak
                by_directory.setdefault(step.directory, []).append(_ENCODER.encode(tally))
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


_tallies = _Tallies()


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

    def __call__(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        return _measure(self.fn, self.step, self.predicate, batch, args, kwargs)


def _measure(
    fn: Callable[..., Any],
    step: Step,
    predicate: bool,
    batch: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    start, cpu = time.time(), time.process_time()
    rows_in = 1 if predicate else _rows(batch)
    try:
        result = fn(batch, *args, **kwargs)
    except BaseException as exc:
        _tallies.add(step, rows_in, 0, start, time.time() - start, time.process_time() - cpu, exc)
        raise
    rows_out = (1 if result else 0) if predicate else _rows(result)
    _tallies.add(step, rows_in, rows_out, start, time.time() - start, time.process_time() - cpu)
    return result


def measured_class(cls: type, step: Step) -> type:
    """A callable class for Ray Data's actors that builds ``cls`` and counts its calls."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        self.inner = cls(*args, **kwargs)

    def __call__(self: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
        return _measure(self.inner, step, False, batch, args, kwargs)

    return type(cls.__name__, (), {"__init__": __init__, "__call__": __call__})
