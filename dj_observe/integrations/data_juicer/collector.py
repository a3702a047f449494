"""The driver's side of :mod:`.measure`: the workers' tallies, added up per op run.

The driver plans each op run (its steps: the functions the op handed to Ray
Data); a thread reads what the workers appended and emits the run's measured
``op_start`` as soon as its first tally arrives, while the plan streams.  When
Data-Juicer says a run ended (its own ``op_complete`` or a failure), :meth:`settle`
reads until the tallies add up (each op's rows in equal the previous op's rows
out, the first op's rows in equal what Data-Juicer counted) or
:data:`SETTLE_TIMEOUT` passed, then emits the run's ``op_complete`` (or
``op_failed`` with the worker's stack trace).

A run's rows in are its first step's, its rows out its last step's; its
``duration`` is the seconds its functions ran, summed over the workers (the op's
own cost, not its wall-clock span, which overlaps its neighbours' when Ray
streams); ``start_time``/``end_time`` are its first and last call.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from dj_observe.integrations.data_juicer.measure import Tally

__all__ = ["SETTLE_TIMEOUT", "Collector", "OpRunTotals"]

POLL_INTERVAL = 0.25
SETTLE_TIMEOUT = 1.5
"""Seconds :meth:`Collector.settle` waits for the workers' last tallies."""

_DECODER = msgspec.json.Decoder(Tally)

Emit = Callable[..., None]


@dataclass
class OpRunTotals:
    """One op run on one partition, added up from its steps' tallies."""

    partition_id: int
    op_name: str
    op_idx: int
    steps: int = 0
    rows_in: dict[int, int] = field(default_factory=dict)  # by step
    rows_out: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    first_start: float | None = None
    last_end: float | None = None
    error: str | None = None
    stack_trace: str | None = None
    peak_rss_bytes: int = 0
    started: bool = False
    ended: bool = False

    @property
    def input_rows(self) -> int:
        return self.rows_in.get(0, 0)

    @property
    def output_rows(self) -> int:
        return self.rows_out.get(self.steps - 1, 0) if self.steps else 0

    def add(self, tally: Tally) -> None:
        self.rows_in[tally.step] = self.rows_in.get(tally.step, 0) + tally.rows_in
        self.rows_out[tally.step] = self.rows_out.get(tally.step, 0) + tally.rows_out
        self.seconds += tally.seconds
        self.cpu_seconds += tally.cpu_seconds
        if self.first_start is None or tally.first_start < self.first_start:
            self.first_start = tally.first_start
        if self.last_end is None or tally.last_end > self.last_end:
            self.last_end = tally.last_end
        self.peak_rss_bytes = max(self.peak_rss_bytes, tally.peak_rss_bytes)
        if tally.error is not None:
            self.error, self.stack_trace = tally.error, tally.stack_trace


class Collector:
    """Reads the workers' tally files in ``directory`` and emits measured op events."""

    def __init__(self, directory: Path, emit: Emit, failed: Callable[[Exception], None]) -> None:
        self.directory = directory
        self.emit = emit
        self.failed = failed
        self.lock = threading.RLock()
        self.runs: dict[tuple[int, str], OpRunTotals] = {}
        self.offsets: dict[str, int] = {}
        self.last_error: str | None = None
        """The error of the last run that raised (``"RuntimeError: ..."``)."""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="dj-observe-collector", daemon=True)
        self.thread.start()

    def plan(self, partition_id: int, op_name: str, op_idx: int, steps: int) -> None:
        """The driver handed ``steps`` functions of this op run to Ray Data."""
        with self.lock:
            run = self.runs.get((partition_id, op_name))
            if run is None or run.ended:  # a retry runs again
                run = self.runs[(partition_id, op_name)] = OpRunTotals(
                    partition_id, op_name, op_idx
                )
            run.steps = max(run.steps, steps)

    def settle(
        self, partition_id: int, expected_input: int | None = None, *, failing: bool = False
    ) -> None:
        """Emit the end of every planned, unended run of the partition (see module doc).

        ``failing``: the partition failed; a run that raised ends with ``op_failed``,
        the others are left as they are (running when their partition failed)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            with self.lock:
                self._read()
                runs = self._open_runs(partition_id)
                if _consistent(runs, expected_input, failing) or time.monotonic() >= deadline:
                    for run in runs:
                        self._end(run, failing)
                    return
            time.sleep(0.02)

    def settle_all(self, *, failing: bool = False) -> None:
        with self.lock:
            partitions = {run.partition_id for run in self.runs.values() if not run.ended}
        for partition_id in sorted(partitions):
            self.settle(partition_id, failing=failing)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2.0)

    # -- inside --------------------------------------------------------------------

    def _open_runs(self, partition_id: int) -> list[OpRunTotals]:
        runs = [
            run
            for run in self.runs.values()
            if run.partition_id == partition_id and not run.ended and run.steps
        ]
        return sorted(runs, key=lambda run: run.op_idx)

    def _run(self) -> None:
        while not self.stop.wait(POLL_INTERVAL):
            try:
                with self.lock:
                    self._read()
            except Exception as exc:
                self.failed(exc)

    def _read(self) -> None:
        """Add what the workers appended since the last read; start runs seen first."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in sorted(names):
            path = self.directory / name
            offset = self.offsets.get(name, 0)
            try:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except OSError:
                continue
            whole = data.rfind(b"\n") + 1
            self.offsets[name] = offset + whole
            for line in data[:whole].splitlines():
                with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                    self._add(_DECODER.decode(line))

    def _add(self, tally: Tally) -> None:
        run = self.runs.get((tally.partition_id, tally.op_name))
        if run is None or run.ended:
            return  # not planned by this driver, or a late tally of an ended run
        run.add(tally)
        if not run.started:
            run.started = True
            self.emit(
                "op_start",
                timestamp=run.first_start,
                partition_id=run.partition_id,
                operation_name=run.op_name,
                operation_idx=run.op_idx,
            )

    def _end(self, run: OpRunTotals, failing: bool) -> None:
        run.ended = True
        if failing and run.error is None:
            return
        fields = {
            "partition_id": run.partition_id,
            "operation_name": run.op_name,
            "operation_idx": run.op_idx,
        }
        now = time.time()
        if not run.started:  # no row reached it (an empty partition): a run of nothing
            self.emit("op_start", timestamp=now, **fields)
        end = run.last_end if run.last_end is not None else now
        metadata = {
            "cpu_seconds": round(run.cpu_seconds, 6),
            "peak_rss_bytes": run.peak_rss_bytes or None,
            "first_call": run.first_start,
            "last_call": run.last_end,
        }
        if run.error is not None:
            self.last_error = run.error
            self.emit(
                "op_failed",
                timestamp=end,
                status="failed",
                duration=run.seconds,
                input_rows=run.input_rows,
                error_message=run.error,
                stack_trace=run.stack_trace,
                metadata=metadata,
                **fields,
            )
            return
        self.emit(
            "op_complete",
            timestamp=end,
            status="success",
            duration=run.seconds,
            input_rows=run.input_rows,
            output_rows=run.output_rows,
            metadata=metadata,
            **fields,
        )


def _consistent(runs: list[OpRunTotals], expected_input: int | None, failing: bool) -> bool:
    """Whether the tallies of a partition's open runs add up: nothing is still on its way."""
    if not runs or any(run.error is not None for run in runs):
        return True  # a worker appends its failure at once
    if failing:
        return False  # the failure's tally may still be on its way
    if expected_input is not None and runs[0].input_rows != expected_input:
        return False
    for run in runs:
        if any(
            run.rows_out.get(step, 0) != run.rows_in.get(step + 1, 0)
            for step in range(run.steps - 1)
        ):
            return False
    return all(before.output_rows == after.input_rows for before, after in itertools.pairwise(runs))
