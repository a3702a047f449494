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
    """One op run on one partition: the latest totals of every copy of its functions."""

    partition_id: int
    op_name: str
    op_idx: int
    steps: int = 0
    copies: dict[tuple[str, int], Tally] = field(default_factory=dict)  # (file, copy) -> latest
    started: bool = False
    ended: bool = False

    def rows_in_at(self, step: int) -> int:
        return sum(tally.rows_in for tally in self.copies.values() if tally.step == step)

    def rows_out_at(self, step: int) -> int:
        return sum(tally.rows_out for tally in self.copies.values() if tally.step == step)

    @property
    def input_rows(self) -> int:
        return self.rows_in_at(0)

    @property
    def output_rows(self) -> int:
        return self.rows_out_at(self.steps - 1) if self.steps else 0

    @property
    def seconds(self) -> float:
        return sum(tally.seconds for tally in self.copies.values())

    @property
    def cpu_seconds(self) -> float:
        return sum(tally.cpu_seconds for tally in self.copies.values())

    @property
    def first_start(self) -> float | None:
        return min((tally.first_start for tally in self.copies.values()), default=None)

    @property
    def last_end(self) -> float | None:
        return max((tally.last_end for tally in self.copies.values()), default=None)

    @property
    def peak_rss_bytes(self) -> int:
        return max((tally.peak_rss_bytes for tally in self.copies.values()), default=0)

    @property
    def failure(self) -> Tally | None:
        return next((tally for tally in self.copies.values() if tally.error is not None), None)


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
        """The driver is handing (``steps`` so far) functions of this op run to Ray Data."""
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
                    self._add(name, _DECODER.decode(line))

    def _add(self, file: str, tally: Tally) -> None:
        run = self.runs.get((tally.partition_id, tally.op_name))
        if run is None or run.ended:
            return  # not planned by this driver, or a late tally of an ended run
        run.copies[(file, tally.copy)] = tally
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
        if failing and run.failure is None:
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
        fields.update(
            timestamp=end,
            duration=run.seconds,
            input_rows=run.input_rows,
            metadata={
                "cpu_seconds": round(run.cpu_seconds, 6),
                "peak_rss_bytes": run.peak_rss_bytes or None,
                "first_call": run.first_start,
                "last_call": run.last_end,
            },
        )
        failure = run.failure
        if failure is None:
            self.emit("op_complete", status="success", output_rows=run.output_rows, **fields)
            return
        self.last_error = failure.error
        error = {"error_message": failure.error, "stack_trace": failure.stack_trace}
        self.emit("op_failed", status="failed", **error, **fields)


def _consistent(runs: list[OpRunTotals], expected_input: int | None, failing: bool) -> bool:
    """Whether the tallies of a partition's open runs add up: nothing is still on its way."""
    if not runs or any(run.failure is not None for run in runs):
        return True  # a worker appends its failure at once
    if failing:
        return False  # the failure's tally may still be on its way
    if expected_input != 0 and any(not run.copies for run in runs):
        return False  # a run none of whose calls arrived yet
    if expected_input is not None and runs[0].input_rows != expected_input:
        return False
    for run in runs:
        if any(run.rows_out_at(step) != run.rows_in_at(step + 1) for step in range(run.steps - 1)):
            return False
    return all(before.output_rows == after.input_rows for before, after in itertools.pairwise(runs))
