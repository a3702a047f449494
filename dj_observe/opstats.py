"""Per-op figures of a job, folded from its op runs: the one definition every view shares.

How op runs count: every run counts in ``runs``, and in ``completed`` or ``failed`` by its
status. Rows and durations count only over *completed* runs (a failed run's input never came
out, so it would only lower the retention): ``rows_in`` and ``rows_out`` add up the completed
runs that reported both, ``retention`` is their ratio. The metrics sink counts the same
(``dj_op_rows_in_total`` and ``dj_op_rows_out_total`` are rows of completed op runs), so the
report, ``dj-observe diff`` and the Prometheus drift alerts agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from dj_observe.state import JobState, OpRun, Status

__all__ = ["OpStats", "op_stats", "percentile"]


@dataclass
class OpStats:
    """One op over all partitions of a job."""

    name: str
    runs: int = 0
    completed: int = 0
    failed: int = 0
    durations: list[float] = field(default_factory=list)
    """Durations of the completed runs that have one, ascending once :func:`op_stats` is done."""
    rows_in: int = 0
    rows_out: int = 0
    cpu_seconds: float | None = None
    """CPU seconds of the completed runs, where measured."""
    peak_rss_bytes: int | None = None
    """The largest peak resident memory of a process that ran a completed run."""

    def add(self, run: OpRun) -> None:
        self.runs += 1
        if run.status == Status.FAILED:
            self.failed += 1
        if run.status != Status.COMPLETED:
            return
        self.completed += 1
        if run.duration is not None:
            self.durations.append(run.duration)
        if run.input_rows is not None and run.output_rows is not None:
            self.rows_in += run.input_rows
            self.rows_out += run.output_rows
        if run.cpu_seconds is not None:
            self.cpu_seconds = (self.cpu_seconds or 0.0) + run.cpu_seconds
        if run.peak_rss_bytes is not None:
            self.peak_rss_bytes = max(self.peak_rss_bytes or 0, run.peak_rss_bytes)

    @property
    def retention(self) -> float | None:
        """Rows out / rows in (``None`` before a completed run reported rows)."""
        return self.rows_out / self.rows_in if self.rows_in else None

    @property
    def p50(self) -> float | None:
        return percentile(self.durations, 0.50)

    @property
    def p95(self) -> float | None:
        return percentile(self.durations, 0.95)


def op_stats(state: JobState) -> dict[str, OpStats]:
    """Every op of the job in pipeline order (ops the plan does not name after it)."""
    stats = {name: OpStats(name) for name in state.op_names}
    for _, part in sorted(state.partitions.items()):
        for run in state.op_runs(part):
            if run.operation_name not in stats:
                stats[run.operation_name] = OpStats(run.operation_name)
            stats[run.operation_name].add(run)
    for entry in stats.values():
        entry.durations.sort()
    return stats


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
