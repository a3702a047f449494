"""Drift between two runs of a pipeline, op by op: ``dj-observe diff``.

A run is summarised from its snapshot (the one fold; per-op figures from
:mod:`dj_observe.opstats`, the same the report and the metrics show). A *baseline* is the
median of a pipeline's last completed jobs under an outputs directory. :func:`compare` lines
two summaries up op by op and marks each change that passes the threshold: retention by
absolute difference (0.1 = ten points), rows and durations by relative change (0.1 = 10 %;
durations only beyond :data:`DURATION_FLOOR` seconds, so that the jitter of short runs is not
drift), failed op runs and partitions by any increase, and an op present in one run only. An op
*drifted* when what it does changed (its retention, durations, failures, or it ran in one run
only); its rows in and out follow from the ops before it, so their changes are marked but name
the op that caused them, not this one.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dj_observe.jobs import find_job_dirs
from dj_observe.opstats import op_stats
from dj_observe.snapshot import ProcessingSnapshotAnalyzer, ProcessingStatus
from dj_observe.tracker import JobDirectoryError

__all__ = [
    "DEFAULT_THRESHOLD",
    "DURATION_FLOOR",
    "Change",
    "Comparison",
    "OpComparison",
    "OpFigures",
    "RunSummary",
    "baseline",
    "compare",
    "summarise",
]

DEFAULT_THRESHOLD = 0.1
DURATION_FLOOR = 5.0
"""Seconds: a duration change smaller than this is never drift, whatever its ratio (the
default; a run on a noisy machine may want a larger one)."""

_OP_FIELDS = ("rows_in", "rows_out", "retention", "p50_seconds", "p95_seconds", "failed_runs")
_BEHAVIOUR = frozenset({"retention", "p50_seconds", "p95_seconds", "failed_runs"})
"""The figures an op's own work changes (its rows in and out follow from the ops before it)."""
_RUN_FIELDS = ("partitions", "failed_partitions", "wall_seconds", "rows_exported")


@dataclass(frozen=True)
class OpFigures:
    """One op of a run (a baseline's are medians, hence floats)."""

    rows_in: float
    rows_out: float
    retention: float | None
    p50_seconds: float | None
    p95_seconds: float | None
    failed_runs: float


@dataclass(frozen=True)
class RunSummary:
    """What :func:`compare` compares: a job, or a baseline of several (``jobs``)."""

    label: str
    pipeline: str | None
    status: str
    start_time: float | None
    partitions: float
    failed_partitions: float
    wall_seconds: float | None
    rows_exported: float | None
    ops: dict[str, OpFigures]
    jobs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Change:
    """One figure in both runs; ``drift`` when the change passes the threshold."""

    name: str
    a: float | None
    b: float | None
    drift: bool

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


@dataclass(frozen=True)
class OpComparison:
    op: str
    changes: list[Change]
    only_in: str | None = None
    """``"a"`` or ``"b"`` for an op that ran in one of the two only."""

    @property
    def drift(self) -> bool:
        return self.only_in is not None or any(
            change.drift for change in self.changes if change.name in _BEHAVIOUR
        )


@dataclass(frozen=True)
class Comparison:
    a: RunSummary
    b: RunSummary
    threshold: float
    run: list[Change]
    ops: list[OpComparison]
    duration_floor: float = DURATION_FLOOR

    @property
    def drift(self) -> bool:
        return any(change.drift for change in self.run) or any(op.drift for op in self.ops)

    def to_json_dict(self) -> dict[str, Any]:
        def changes(items: list[Change]) -> dict[str, Any]:
            return {
                c.name: {"a": c.a, "b": c.b, "change": c.delta, "drift": c.drift} for c in items
            }

        return {
            "a": asdict(self.a),
            "b": asdict(self.b),
            "threshold": self.threshold,
            "duration_floor": self.duration_floor,
            "drift": self.drift,
            "run": changes(self.run),
            "ops": [
                {"op": op.op, "only_in": op.only_in, "drift": op.drift, **changes(op.changes)}
                for op in self.ops
            ],
        }


def summarise(job_dir: str | os.PathLike[str]) -> RunSummary:
    """A job directory's figures, from its snapshot."""
    snapshot = ProcessingSnapshotAnalyzer(job_dir, workers=1).generate_snapshot()
    stats = op_stats(snapshot.state)
    ops = {
        name: OpFigures(
            rows_in=entry.rows_in,
            rows_out=entry.rows_out,
            retention=entry.retention,
            p50_seconds=entry.p50,
            p95_seconds=entry.p95,
            failed_runs=entry.failed,
        )
        for name, entry in stats.items()
        if entry.runs
    }
    last = next(reversed(ops.values()), None)
    return RunSummary(
        label=snapshot.job_id,
        pipeline=snapshot.state.pipeline,
        status=snapshot.overall_status.value,
        start_time=snapshot.job_start_time,
        partitions=snapshot.total_partitions,
        failed_partitions=snapshot.failed_partitions,
        wall_seconds=snapshot.total_duration,
        rows_exported=last.rows_out if last is not None else None,
        ops=ops,
        jobs=[snapshot.job_id],
    )


def baseline(root: str | os.PathLike[str], run: RunSummary, *, last: int = 5) -> RunSummary:
    """The median of the ``last`` completed jobs of ``run``'s pipeline under ``root`` that
    started before it (newest first); :class:`JobDirectoryError` when there is none."""
    if last < 1:
        raise ValueError("the baseline needs at least one job")
    found = []
    for job_dir in find_job_dirs(root):
        summary = summarise(job_dir)
        if (
            summary.pipeline == run.pipeline
            and summary.label != run.label
            and summary.status == ProcessingStatus.COMPLETED.value
            and _started_before(summary, run)
        ):
            found.append(summary)
    found.sort(key=lambda s: (s.start_time is None, s.start_time or 0.0, s.label))
    chosen = found[-last:]
    if not chosen:
        raise JobDirectoryError(
            f"no completed job of pipeline {run.pipeline!r} before {run.label} under {Path(root)}"
        )
    names = list(dict.fromkeys(name for summary in chosen for name in summary.ops))
    ops = {
        name: OpFigures(**_medians([s.ops[name] for s in chosen if name in s.ops], _OP_FIELDS))
        for name in names
    }
    return RunSummary(
        label=f"baseline: median of {len(chosen)} job{'s' if len(chosen) > 1 else ''}",
        pipeline=run.pipeline,
        status=ProcessingStatus.COMPLETED.value,
        start_time=chosen[-1].start_time,
        ops=ops,
        jobs=[s.label for s in chosen],
        **_medians(chosen, _RUN_FIELDS),
    )


def compare(
    a: RunSummary,
    b: RunSummary,
    threshold: float = DEFAULT_THRESHOLD,
    duration_floor: float = DURATION_FLOOR,
) -> Comparison:
    """``b`` against ``a``, op by op (``a``'s order, then ``b``'s new ops)."""
    if not threshold >= 0:
        raise ValueError("the threshold must be a number, not negative")
    if not duration_floor >= 0:
        raise ValueError("the duration floor must be a number, not negative")
    tests = _tests(threshold, duration_floor)
    run = [
        Change(key, getattr(a, key), getattr(b, key), tests[key](getattr(a, key), getattr(b, key)))
        for key in _RUN_FIELDS
    ]
    ops = []
    for name in dict.fromkeys([*a.ops, *b.ops]):
        mine, theirs = a.ops.get(name), b.ops.get(name)
        changes = [
            Change(
                key,
                a_value := getattr(mine, key, None),
                b_value := getattr(theirs, key, None),
                mine is not None and theirs is not None and tests[key](a_value, b_value),
            )
            for key in _OP_FIELDS
        ]
        only = None if mine is not None and theirs is not None else ("a" if theirs is None else "b")
        ops.append(OpComparison(name, changes, only))
    return Comparison(a, b, threshold, run, ops, duration_floor)


def _tests(
    threshold: float, duration_floor: float
) -> dict[str, Callable[[float | None, float | None], bool]]:
    def relative(floor: float = 0.0) -> Callable[[float | None, float | None], bool]:
        def passes(a: float | None, b: float | None) -> bool:
            if a is None or b is None:
                return (a is None) != (b is None)
            if abs(b - a) <= floor:
                return False
            return abs(b - a) > threshold * abs(a) if a else b != 0

        return passes

    def absolute(a: float | None, b: float | None) -> bool:
        if a is None or b is None:
            return (a is None) != (b is None)
        return abs(b - a) > threshold

    def increase(a: float | None, b: float | None) -> bool:
        return (b or 0) > (a or 0)

    return {
        "rows_in": relative(),
        "rows_out": relative(),
        "retention": absolute,
        "p50_seconds": relative(duration_floor),
        "p95_seconds": relative(duration_floor),
        "wall_seconds": relative(duration_floor),
        "rows_exported": relative(),
        "failed_runs": increase,
        "failed_partitions": increase,
        "partitions": relative(),
    }


def _started_before(summary: RunSummary, run: RunSummary) -> bool:
    if summary.start_time is None or run.start_time is None:
        return True
    return summary.start_time < run.start_time


def _medians(items: Sequence[object], keys: Sequence[str]) -> dict[str, Any]:
    """Each of the figures ``keys`` of ``items``: its median (``None`` if none has it)."""
    return {key: _median([getattr(item, key) for item in items]) for key in keys}


def _median(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None
