"""``dj-observe report``: one self-contained, offline HTML file for a job directory.

The page holds the job summary, a timeline (Gantt) of partitions and their op runs with
checkpoints and resumes, per-op durations and rows with the retention funnel, and the
failed partitions with their errors.  Everything is inline (CSS, SVG; no JavaScript, no
fonts, images or other URLs), every text taken from the log is escaped, and the body
depends only on the log except for one "generated at" line.  Jobs with more partitions
than ``max_partitions`` draw all failed partitions plus an even sample of the others.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from dj_observe.diff import Comparison
from dj_observe.opstats import OpStats, percentile
from dj_observe.report_baseline import baseline_section
from dj_observe.snapshot import JobSnapshot, ProcessingSnapshotAnalyzer
from dj_observe.state import JobState, OpRun, PartitionState, PhaseRun, Status
from dj_observe.textsafe import count_of, visible
from dj_observe.timing import human_duration

__all__ = [
    "CHROMIUM_FLAGS",
    "build_report",
    "chromium_command",
    "render_report",
    "sample_partitions",
    "write_report",
]

SKIPPED_LISTED = 10
"""Partitions whose skipped ops the summary names; the rest are counted."""

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
)
"""Headless Chromium as the tests and ``docs/make_screenshot.py`` run it: offline, as root."""

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#9c755f",
    "#bab0ac",
    "#86bcb6",
    "#ff9da7",
    "#8cd17d",
    "#a0cbe8",
)
"""Op colors (no red: red marks failures)."""
FAILED_COLOR = "#d62728"
PHASE_COLOR = "#9e9e9e"
"""Phases outside the ops (dataset load, partitioning, checkpoint writes, export)."""
PHASE_LANE = 20
FOLD_BEFORE_OPS = 0.3
"""Fold the time before the first op run into the timeline's lead when it is more than this
share of the job's span."""
LEAD_WIDTH = 110
FAILED_MIN_WIDTH = 6.0

PLOT_WIDTH = 1000
LABEL_WIDTH = 90
AXIS_HEIGHT = 28
MAX_ERROR_CHARS = 4000
MAX_TEXT_CHARS = 1000
"""Characters of any other value from the log (an op name, a job id) the report shows."""
MAX_FAILED_ROWS = 1000
CHECKPOINT_MIN_BAR = 6
"""Bars thinner than this (many partitions) leave checkpoints to the bar tooltips."""

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;
background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.muted{color:#666}.note{background:#fff8e1;border:1px solid #f0d58c;padding:6px 10px;
display:inline-block;border-radius:4px}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.num{text-align:right;
font-variant-numeric:tabular-nums}
.summary td:first-child{color:#555}.summary-grid{display:flex;flex-wrap:wrap;gap:0 24px;
align-items:flex-start}
.status{font-weight:600;padding:1px 8px;border-radius:10px;color:#fff}
.status-completed{background:#2e7d32}.status-failed{background:#d62728}
.status-in_progress{background:#1565c0}.status-not_started{background:#777}
.legend span{display:inline-block;margin:0 12px 4px 0}.swatch{display:inline-block;
width:12px;height:12px;margin-right:4px;vertical-align:-1px;border-radius:2px}
svg{max-width:100%;height:auto;font:11px sans-serif}svg text{fill:#333}
.timeline .grid{stroke:#e6e6e6}.timeline .row-bg{fill:#fafafa}
.timeline text.phase-label{fill:#fff;font-size:10px}
.timeline .folded line{stroke:#777;stroke-dasharray:3 2}.failed-mark{stroke:#fff;stroke-width:1.6}
.funnel text{font-size:13px}
rect.op{stroke:#fff;stroke-width:0.3}rect.op.failed{stroke:#7f0000;stroke-width:1}
rect.op.running{opacity:0.55}
.checkpoint{fill:#222}.resume{stroke:#6a1b9a;stroke-width:2}.resume-mark{fill:#6a1b9a}
.partition-failed-label{fill:#d62728;font-weight:600}
pre.error{white-space:pre-wrap;word-break:break-word;margin:0;max-width:900px;font-size:12px}
details summary{cursor:pointer}
"""


# -- public API ----------------------------------------------------------------------


def write_report(
    job_dir: str | os.PathLike[str],
    output: str | Path,
    *,
    max_partitions: int = 500,
    comparison: Comparison | None = None,
) -> Path:
    """Write the job's HTML report to ``output`` atomically and return its path (with
    ``comparison``, the job against a baseline, under its ops)."""
    html = build_report(job_dir, max_partitions=max_partitions, comparison=comparison)
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(html)
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def build_report(
    job_dir: str | os.PathLike[str],
    *,
    max_partitions: int = 500,
    generated_at: float | None = None,
    comparison: Comparison | None = None,
) -> str:
    """The report for a job directory, as an HTML string."""
    snapshot = ProcessingSnapshotAnalyzer(job_dir, workers=1).generate_snapshot()
    return render_report(
        snapshot, max_partitions=max_partitions, generated_at=generated_at, comparison=comparison
    )


def render_report(
    snapshot: JobSnapshot,
    *,
    max_partitions: int = 500,
    generated_at: float | None = None,
    comparison: Comparison | None = None,
) -> str:
    """Render a snapshot as one HTML page (``generated_at`` defaults to the snapshot's)."""
    if max_partitions < 1:
        raise ValueError("max_partitions must be at least 1")
    data = _ReportData.collect(snapshot)
    shown = sample_partitions(data.partition_ids, data.failed_ids, max_partitions)
    when = snapshot.generated_at if generated_at is None else generated_at
    title = f"dj-observe report: {snapshot.job_id}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">{_e(snapshot.job_dir)}</p>',
        _summary_section(snapshot, data),
        _timeline_section(data, shown),
        _ops_section(data),
        baseline_section(comparison) if comparison is not None else "",
        _failed_section(data),
        f'<p class="muted generated">generated at {_iso(when)} by dj-observe</p>',
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def sample_partitions(ids: Sequence[int], failed: Iterable[int], limit: int) -> list[int]:
    """All of ``ids`` up to ``limit``; beyond it, every failed one plus an even sample."""
    ids = sorted(ids)
    if len(ids) <= limit:
        return ids
    failed_set = set(failed)
    rest = [pid for pid in ids if pid not in failed_set]
    room = max(0, limit - len(failed_set & set(ids)))
    picked: list[int] = []
    if room and rest:
        if room == 1:
            picked = [rest[0]]
        else:
            step = (len(rest) - 1) / (room - 1)
            picked = sorted({rest[round(i * step)] for i in range(room)})
    return sorted(failed_set.intersection(ids) | set(picked))


def chromium_command(binary: str, url: str, *extra: str) -> list[str]:
    """Headless Chromium with the network blocked, opening ``url`` (add ``--dump-dom`` etc.)."""
    return [binary, *CHROMIUM_FLAGS, *extra, url]


# -- data ------------------------------------------------------------------------------


@dataclass
class _ReportData:
    snapshot: JobSnapshot
    state: JobState
    origin: float | None
    horizon: float | None
    op_names: list[str]
    partition_ids: list[int]
    failed_ids: list[int]
    statuses: dict[int, Status]
    op_stats: dict[str, OpStats]

    @classmethod
    def collect(cls, snapshot: JobSnapshot) -> _ReportData:
        state = snapshot.state
        names = list(state.op_names)
        stats = {name: OpStats(name) for name in names}
        statuses: dict[int, Status] = {}
        first: float | None = None
        last: float | None = None
        for pid, part in sorted(state.partitions.items()):
            statuses[pid] = state.partition_status(part)
            for run in state.op_runs(part):
                if run.operation_name not in stats:
                    names.append(run.operation_name)
                    stats[run.operation_name] = OpStats(run.operation_name)
                stats[run.operation_name].add(run)
                for ts in (run.start_time, run.end_time, run.checkpoint_time):
                    if ts is not None:
                        first = ts if first is None else min(first, ts)
                        last = ts if last is None else max(last, ts)
        for phase in state.phases:
            for ts in (phase.start_time, phase.end_time):
                if ts is not None:
                    first = ts if first is None else min(first, ts)
                    last = ts if last is None else max(last, ts)
        origin = snapshot.job_start_time
        if first is not None and (origin is None or first < origin):
            origin = first
        if origin is None:
            origin = state.first_event_time
        ends = [t for t in (last, state.last_event_time, snapshot.job_end_time) if t is not None]
        horizon = max(ends) if ends else None
        return cls(
            snapshot=snapshot,
            state=state,
            origin=origin,
            horizon=horizon,
            op_names=names,
            partition_ids=sorted(state.partitions),
            failed_ids=[pid for pid, status in statuses.items() if status == Status.FAILED],
            statuses=statuses,
            op_stats=stats,
        )

    def color(self, name: str) -> str:
        try:
            return PALETTE[self.op_names.index(name) % len(PALETTE)]
        except ValueError:
            return PALETTE[-1]

    def rel(self, ts: float | None) -> float | None:
        """Seconds from the job's start."""
        return None if ts is None or self.origin is None else ts - self.origin


# -- sections --------------------------------------------------------------------------


def _summary_section(snap: JobSnapshot, data: _ReportData) -> str:
    state = data.state
    counts = state.partition_counts()
    status = snap.overall_status.value
    resumed = sum(1 for part in state.partitions.values() if part.resumed)
    retried = sum(1 for part in state.partitions.values() if part.attempts > 1)
    stats = snap.stats
    rows: list[tuple[str, str]] = [
        ("Status", f'<span class="status status-{_e(status)}">{_e(status)}</span>'),
        ("Job id", _e(snap.job_id)),
        ("Pipeline", _e(state.pipeline or "-")),
        ("Executor", _e(state.executor_type or "-")),
        ("Started", _iso(snap.job_start_time)),
        ("Ended", _iso(snap.job_end_time)),
        ("Duration", _e(human_duration(snap.total_duration))),
        ("Timing from", _e(snap.timing_source)),
        ("Last event", _iso(state.last_event_time)),
        (
            "Partitions",
            f"{snap.total_partitions} total: {counts[Status.COMPLETED]} completed, "
            f"{counts[Status.FAILED]} failed, {counts[Status.IN_PROGRESS]} in progress, "
            f"{counts[Status.NOT_STARTED]} not started",
        ),
        ("Ops per partition", f"{state.ops_per_partition} ({len(data.op_names)} distinct ops)"),
        (
            "Op runs",
            f"{snap.total_operations} total: {snap.completed_operations} completed, "
            f"{snap.failed_operations} failed",
        ),
        ("Failed partitions", str(snap.failed_partitions)),
        (
            "Checkpoints",
            f"{state.checkpoints_saved} saved, {state.checkpoints_loaded} loaded, "
            f"{snap.checkpointed_operations} op runs checkpointed; strategy "
            f"{_e(snap.checkpoint_strategy or '-')}; last {_iso(snap.last_checkpoint_time)}",
        ),
        (
            "Resumes",
            f"{count_of(state.resume_count, 'job restart')}, "
            f"{count_of(resumed, 'partition')} resumed, "
            f"{count_of(retried, 'partition')} with more than one attempt",
        ),
        (
            "Event log",
            f"{stats.events} events in {len(snap.log_files)} file(s); "
            f"{stats.skipped_lines} skipped lines ({stats.malformed_lines} malformed, "
            f"{stats.oversized_lines} oversized, {stats.torn_tail_lines} torn tail)",
        ),
    ]
    if snap.skipped:
        listed = list(snap.skipped.items())[:SKIPPED_LISTED]
        text = "; ".join(f"partition {pid}: {', '.join(names)}" for pid, names in listed)
        more = len(snap.skipped) - len(listed)
        rows.append(
            (
                "Skipped on resume",
                _e(text + (f"; and {more} more partitions" if more else ""))
                + " (completed without running these ops)",
            )
        )
    if snap.group_timed_operations:
        rows.append(
            (
                "Timed as groups",
                f"{snap.group_timed_operations} op runs timed only with their checkpoint "
                "group: no per-op duration",
            )
        )
    if snap.side_file_errors:
        rows.append(("Side files", _e("; ".join(snap.side_file_errors))))
    half = (len(rows) + 1) // 2
    tables = "".join(
        '<table class="summary">'
        + "".join(f"<tr><td>{key}</td><td>{value}</td></tr>" for key, value in chunk)
        + "</table>"
        for chunk in (rows[:half], rows[half:])
    )
    return f'<h2>Summary</h2><div class="summary-grid">{tables}</div>'


def _timeline_section(data: _ReportData, shown: list[int]) -> str:
    total = len(data.partition_ids)
    head = "<h2>Timeline</h2>"
    if not total or data.origin is None or data.horizon is None:
        return head + '<p class="muted">No partitions with timed events yet.</p>'
    note = ""
    if len(shown) < total:
        failed_shown = len([pid for pid in shown if data.statuses.get(pid) == Status.FAILED])
        note = (
            f'<p class="note sampled">showing {len(shown)} of {total} partitions: all failed '
            f"ones ({failed_shown}) and an even sample of the others</p>"
        )
    legend = "".join(
        f'<span><i class="swatch" style="background:{data.color(name)}"></i>{_e(name)}</span>'
        for name in data.op_names
    )
    legend += (
        f'<span><i class="swatch" style="background:{FAILED_COLOR}"></i>failed op run</span>'
        + (
            "<span>&#9670; checkpoint saved</span>"
            if _bar_height(len(shown)) >= CHECKPOINT_MIN_BAR
            else "<span>checkpoints: in the bar tooltips</span>"
        )
        + '<span style="color:#6a1b9a">&#9658; partition resumed</span>'
    )
    if data.state.phases:
        legend += (
            f'<span><i class="swatch" style="background:{PHASE_COLOR}"></i>'
            "phase outside the ops (load, partitioning, checkpoint write, export)</span>"
        )
    return (
        f'{head}{note}<p class="legend">{legend}</p>'
        f"{_timeline_svg(data, shown)}"
        '<p class="muted">x axis: seconds from job start; hover a bar for its details.</p>'
    )


@dataclass
class _Axis:
    """Seconds from the job's start to x.  When the job spent most of its time before its
    first op run (loading, partitioning), that stretch is folded into the first ``lead``
    pixels, so the op runs get the width."""

    view: float
    """Where the plot proper starts (seconds from the job's start)."""
    scale: float
    lead: float

    @classmethod
    def of(cls, data: _ReportData, span: float) -> _Axis:
        starts = [
            run.start_time
            for part in data.state.partitions.values()
            for run in data.state.op_runs(part)
            if run.start_time is not None
        ]
        first = data.rel(min(starts)) if starts else None
        view = 0.0 if first is None else first - 0.03 * (span - first)
        if first is None or first < FOLD_BEFORE_OPS * span or not 0 < view < 0.9 * span:
            return cls(0.0, PLOT_WIDTH / span, 0.0)
        return cls(view, (PLOT_WIDTH - LEAD_WIDTH) / (span - view), LEAD_WIDTH)

    def x(self, seconds: float) -> float:
        seconds = max(seconds, 0.0)
        if seconds < self.view:
            return LABEL_WIDTH + self.lead * seconds / self.view
        return LABEL_WIDTH + self.lead + (seconds - self.view) * self.scale


def _timeline_svg(data: _ReportData, shown: list[int]) -> str:
    assert data.origin is not None and data.horizon is not None
    span = max(data.horizon - data.origin, 1e-6)
    axis = _Axis.of(data, span)
    row = _row_height(len(shown))
    bar = _bar_height(len(shown))
    labels = row >= 10
    job_phases = [phase for phase in data.state.phases if phase.partition_id is None]
    lane = PHASE_LANE if job_phases else 0
    height = AXIS_HEIGHT + lane + row * len(shown) + 6
    width = LABEL_WIDTH + PLOT_WIDTH + 10
    out = [
        f'<svg class="timeline" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="timeline of partitions and ops">'
    ]
    step = _nice_step(max(span - axis.view, 1e-6))
    first_tick = math.ceil(axis.view / step) if axis.lead else 0
    for i in range(first_tick, int(span / step) + 1):
        x = axis.x(i * step)
        out.append(
            f'<line class="grid" x1="{x:.1f}" y1="{AXIS_HEIGHT - 4}" x2="{x:.1f}" '
            f'y2="{height}"/><text x="{x:.1f}" y="{AXIS_HEIGHT - 10}" '
            f'text-anchor="middle">{_seconds(i * step, step)}</text>'
        )
    if axis.lead:
        x = axis.x(axis.view)
        out.append(
            f'<g class="folded"><line x1="{x:.1f}" y1="{AXIS_HEIGHT - 4}" x2="{x:.1f}" '
            f'y2="{height}"/><text x="{LABEL_WIDTH + axis.lead / 2:.1f}" '
            f'y="{AXIS_HEIGHT - 10}" text-anchor="middle">first {_secs(axis.view)}, folded</text>'
            f"<title>{_e(f'the first {_secs(axis.view)}, before the first op run, drawn narrower')}"
            "</title></g>"
        )
    state = data.state
    if job_phases:
        out.append(_phase_lane(data, job_phases, axis))
    by_partition: dict[int, list[PhaseRun]] = {}
    for phase in state.phases:
        if phase.partition_id is not None:
            by_partition.setdefault(phase.partition_id, []).append(phase)
    for n, pid in enumerate(shown):
        part = state.partitions[pid]
        y = AXIS_HEIGHT + lane + n * row
        failed = data.statuses.get(pid) == Status.FAILED
        status = data.statuses.get(pid, Status.NOT_STARTED).label
        out.append(f'<g class="partition" data-partition="{pid}" data-status="{status}">')
        if n % 2 == 0:
            out.append(
                f'<rect class="row-bg" x="{LABEL_WIDTH}" y="{y}" width="{PLOT_WIDTH}" '
                f'height="{row}"/>'
            )
        if labels:
            cls = ' class="partition-failed-label"' if failed else ""
            out.append(
                f'<text{cls} x="{LABEL_WIDTH - 6}" y="{y + row / 2 + 4:.1f}" '
                f'text-anchor="end">p{pid}</text>'
            )
        out.append(f"<title>{_e(_partition_title(part, status))}</title>")
        top = y + (row - bar) / 2
        for run in state.op_runs(part):
            out.append(_op_rect(data, run, top, bar, axis))
        for phase in by_partition.get(pid, ()):
            out.append(_phase_rect(data, phase, top + bar * 0.6, bar * 0.4, axis, label=False))
        out.extend(_markers(data, part, run_top=top, bar=bar, axis=axis))
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def _phase_lane(data: _ReportData, phases: list[PhaseRun], axis: _Axis) -> str:
    """The job's own phases, labelled, in a lane above the partitions."""
    y = AXIS_HEIGHT + 2
    out = [
        f'<g class="phases"><text x="{LABEL_WIDTH - 6}" y="{y + 13}" text-anchor="end">job</text>'
    ]
    out.extend(_phase_rect(data, phase, y, PHASE_LANE - 6, axis, label=True) for phase in phases)
    out.append("</g>")
    return "".join(out)


def _phase_rect(
    data: _ReportData, phase: PhaseRun, top: float, height: float, axis: _Axis, *, label: bool
) -> str:
    start, end = data.rel(phase.start_time), data.rel(phase.end_time)
    if start is None:
        return ""
    end = max(start, end if end is not None else data.rel(data.horizon) or start)
    x, w = axis.x(start), max(1.0, axis.x(end) - axis.x(start))
    fill = FAILED_COLOR if phase.failed else PHASE_COLOR
    name = phase.name.replace("_", " ")
    where = "" if phase.partition_id is None else f" of partition {phase.partition_id}"
    tip = f"{name}{where}: {_rel(data, start)} to {_rel(data, end)} ({_secs(end - start)})"
    if phase.failed:
        tip += f", failed: {phase.error_message or ''}"
    text = ""
    if label and w >= 7 * len(name):
        text = (
            f'<text class="phase-label" x="{x + w / 2:.1f}" y="{top + height / 2 + 4:.1f}" '
            f'text-anchor="middle">{_e(name)}</text>'
        )
    return (
        f'<g class="phase" data-phase="{_e(phase.name)}"><rect x="{x:.2f}" y="{top:.1f}" '
        f'width="{w:.2f}" height="{height:.1f}" fill="{fill}"><title>{_e(tip)}</title></rect>'
        f"{text}</g>"
    )


def _row_height(rows: int) -> int:
    return 18 if rows <= 50 else 10 if rows <= 150 else 5


def _bar_height(rows: int) -> int:
    row = _row_height(rows)
    return max(2, row - 4 if row > 5 else row - 1)


def _op_rect(data: _ReportData, run: OpRun, top: float, bar: float, axis: _Axis) -> str:
    start = data.rel(run.start_time)
    end = data.rel(run.end_time)
    running = run.status == Status.IN_PROGRESS
    if start is None and end is not None and run.duration is not None:
        start = end - run.duration
    if start is None:
        return ""
    if end is None:
        end = data.rel(data.horizon) if running else start + (run.duration or 0.0)
    end = max(end or start, start)
    x = axis.x(start)
    failed = run.status == Status.FAILED
    w = max(FAILED_MIN_WIDTH if failed else 1.0, axis.x(end) - x)
    classes = "op failed" if failed else "op running" if running else "op"
    fill = FAILED_COLOR if failed else data.color(run.operation_name)
    rect = (
        f'<rect class="{classes}" data-op="{_e(run.operation_name)}" x="{x:.2f}" '
        f'y="{top:.1f}" width="{w:.2f}" height="{bar}" fill="{fill}">'
        f"<title>{_e(_run_title(data, run))}</title></rect>"
    )
    if failed and bar >= CHECKPOINT_MIN_BAR:  # a cross over it: seen at a glance
        cx, cy, r = x + w / 2, top + bar / 2, min(bar / 2, 4.0)
        rect += (
            f'<path class="failed-mark" d="M{cx - r:.1f} {cy - r:.1f}L{cx + r:.1f} {cy + r:.1f}'
            f'M{cx + r:.1f} {cy - r:.1f}L{cx - r:.1f} {cy + r:.1f}"/>'
        )
    return rect


def _markers(
    data: _ReportData, part: PartitionState, *, run_top: float, bar: float, axis: _Axis
) -> list[str]:
    out: list[str] = []
    size = max(1.5, min(3.0, bar / 4))
    for run in data.state.op_runs(part) if bar >= CHECKPOINT_MIN_BAR else ():
        at = data.rel(run.checkpoint_time)
        if at is None:
            continue
        x, y = axis.x(at), run_top + size  # on the bar's top edge: the bar stays visible
        out.append(
            f'<path class="checkpoint" d="M{x:.2f} {y - size:.2f}l{size:.2f} {size:.2f}'
            f'l-{size:.2f} {size:.2f}l-{size:.2f} -{size:.2f}z">'
            f"<title>{_e(f'checkpoint after {run.operation_name} at {_rel(data, at)}')}</title>"
            "</path>"
        )
    if part.resumed:
        at = data.rel(part.start_time)
        if at is not None:
            x = axis.x(at)
            where = (
                f" from checkpoint of op {part.loaded_checkpoint_idx}"
                if part.loaded_checkpoint_idx is not None
                else ""
            )
            tip = f"partition {part.partition_id} resumed at {_rel(data, at)}{where}"
            tip += f" (attempt {part.attempts})"
            out.append(
                f'<g class="resume"><line x1="{x:.2f}" y1="{run_top - 1:.1f}" x2="{x:.2f}" '
                f'y2="{run_top + bar + 1:.1f}"/><path class="resume-mark" '
                f'd="M{x - 6:.2f} {run_top:.1f}l5 {bar / 2:.1f}l-5 {bar / 2:.1f}z"/>'
                f"<title>{_e(tip)}</title></g>"
            )
    return out


def _ops_section(data: _ReportData) -> str:
    if not data.op_stats:
        return '<h2>Ops</h2><p class="muted">No op runs yet.</p>'
    head = (
        "<tr><th>#</th><th>Op</th><th>Runs</th><th>Completed</th><th>Failed</th>"
        "<th>p50</th><th>p95</th><th>Max</th><th>Rows in</th><th>Rows out</th>"
        "<th>Retention</th>"
    )
    resources = any(stats.cpu_seconds is not None for stats in data.op_stats.values())
    if resources:
        head += "<th>CPU</th><th>Peak memory</th>"
    head += "</tr>"
    rows = []
    for idx, name in enumerate(data.op_names):
        stats = data.op_stats[name]
        durations = sorted(stats.durations)
        cells = [
            str(idx),
            f'<i class="swatch" style="background:{data.color(name)}"></i>{_e(name)}',
            _num(stats.runs),
            _num(stats.completed),
            _num(stats.failed),
            _secs(percentile(durations, 0.50)),
            _secs(percentile(durations, 0.95)),
            _secs(durations[-1] if durations else None),
            _num(stats.rows_in),
            _num(stats.rows_out),
            _pct(stats.retention),
        ]
        if resources:
            cells += [_secs(stats.cpu_seconds), _bytes(stats.peak_rss_bytes)]
        tds = "".join(
            f"<td>{cell}</td>" if i == 1 else f'<td class="num">{cell}</td>'
            for i, cell in enumerate(cells)
        )
        failed_class = ' class="op-failed"' if stats.failed else ""
        rows.append(f'<tr{failed_class} data-op="{_e(name)}">{tds}</tr>')
    table = f'<table class="ops">{head}{"".join(rows)}</table>'
    note = (
        '<p class="muted">Durations, rows, retention (rows out / rows in) and CPU of the '
        "completed runs; peak memory is the largest of the processes that ran them.</p>"
    )
    return f"<h2>Ops</h2>{table}{note}{_funnel_svg(data)}"


def _funnel_svg(data: _ReportData) -> str:
    """Cumulative retention after each op: the product of per-op retentions."""
    bars: list[tuple[str, float | None, float | None]] = []
    kept = 1.0
    for name in data.op_names:
        retention = data.op_stats[name].retention
        if retention is not None:
            kept *= retention
        bars.append((name, retention, kept if retention is not None else None))
    if not any(step is not None for _, step, _ in bars):
        return '<p class="muted">No op reported both rows in and rows out yet.</p>'
    row, label, plot = 22, 260, 600
    height = row * (len(bars) + 1) + 8
    out = [
        "<h3>Retention funnel</h3>",
        f'<svg class="funnel" viewBox="0 0 {label + plot + 170} {height}" '
        f'width="{label + plot + 170}" height="{height}" role="img" '
        'aria-label="retention funnel">',
        f'<text x="{label - 8}" y="15" text-anchor="end">input</text>'
        f'<rect x="{label}" y="4" width="{plot}" height="{row - 6}" fill="#9e9e9e"/>'
        f'<text x="{label + plot + 6}" y="15">100%</text>',
    ]
    for n, (name, step, cumulative) in enumerate(bars, start=1):
        y = n * row + 4
        width = plot * (cumulative if cumulative is not None else 0.0)
        tip = f"{name}: keeps {_pct(step)} of its input; {_pct(cumulative)} of the job input"
        out.append(
            f'<g class="funnel-step" data-op="{_e(name)}"><title>{_e(tip)}</title>'
            f'<text x="{label - 8}" y="{y + 11}" text-anchor="end">{_e(_short(name, 36))}</text>'
            f'<rect x="{label}" y="{y}" width="{width:.1f}" height="{row - 6}" '
            f'fill="{data.color(name)}"/>'
            f'<text x="{label + plot + 6}" y="{y + 11}">{_pct(cumulative)} '
            f"(step {_pct(step)})</text></g>"
        )
    out.append("</svg>")
    return "".join(out)


def _failed_section(data: _ReportData) -> str:
    failed = data.failed_ids
    head = f"<h2>Failed partitions ({len(failed)})</h2>"
    if not failed:
        return head + '<p class="muted">None.</p>'
    state = data.state
    rows = []
    for pid in failed[:MAX_FAILED_ROWS]:
        part = state.partitions[pid]
        runs = [run for run in state.op_runs(part) if run.status == Status.FAILED]
        op = runs[0].operation_name if runs else "-"
        error = part.error_message or (runs[0].error_message if runs else None) or "-"
        when = _rel(data, data.rel(part.end_time)) if part.end_time is not None else "-"
        rows.append(
            f'<tr class="failed-partition" data-partition="{pid}"><td class="num">{pid}</td>'
            f"<td>{_e(op)}</td><td>{_e(part.error_type or '-')}</td>"
            f'<td class="num">{part.attempts}</td><td class="num">{when}</td>'
            f"<td>{_error_cell(error)}</td></tr>"
        )
    more = ""
    if len(failed) > MAX_FAILED_ROWS:
        more = f'<p class="note">showing the first {MAX_FAILED_ROWS} of {len(failed)}.</p>'
    return (
        f'{head}<table class="failed"><tr><th>Partition</th><th>Failed op</th>'
        "<th>Error type</th><th>Attempts</th><th>Failed at</th><th>Error</th></tr>"
        f"{''.join(rows)}</table>{more}"
    )


# -- formatting ----------------------------------------------------------------------


def _e(value: object, limit: int = MAX_TEXT_CHARS) -> str:
    """``value`` for HTML: shortened, control characters shown as escapes, then escaped."""
    return escape(visible(value, limit, lines=True), quote=True)


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    try:
        moment = datetime.fromtimestamp(ts, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return "-"
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _secs(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.3f}s" if seconds < 10 else f"{seconds:.1f}s"


def _rel(data: _ReportData, seconds: float | None) -> str:
    return "-" if seconds is None else f"+{seconds:.3f}s"


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _num(value: int) -> str:
    return f"{value:,}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _nice_step(span: float, target: int = 10) -> float:
    """A 1/2/5 x 10^k tick step giving about ``target`` ticks over ``span`` seconds."""
    raw = span / target
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _seconds(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:.{decimals}f}s"


def _partition_title(part: PartitionState, status: str) -> str:
    tip = f"partition {part.partition_id}: {status}, {part.attempts} attempt(s)"
    if part.sample_count is not None:
        tip += f", {part.sample_count:,} rows"
    if part.resumed:
        tip += ", resumed"
    if part.error_message:
        tip += f"\nerror: {_short(part.error_message, 500)}"
    return tip


def _run_title(data: _ReportData, run: OpRun) -> str:
    lines = [
        f"partition {run.partition_id} \u00b7 {run.operation_name} "
        f"(op {'-' if run.operation_idx is None else run.operation_idx}) \u00b7 "
        f"{run.status.label}",
        f"start {_rel(data, data.rel(run.start_time))}, duration {_secs(run.duration)}",
    ]
    if run.input_rows is not None or run.output_rows is not None:
        rows_in = "-" if run.input_rows is None else f"{run.input_rows:,}"
        rows_out = "-" if run.output_rows is None else f"{run.output_rows:,}"
        lines.append(f"rows {rows_in} \u2192 {rows_out}")
    if run.checkpoint_time is not None:
        lines.append(f"checkpoint at {_rel(data, data.rel(run.checkpoint_time))}")
    if run.error_message:
        lines.append(f"error: {_short(run.error_message, 500)}")
    return "\n".join(lines)


def _error_cell(error: str) -> str:
    text = _short(error, MAX_ERROR_CHARS)
    first, _, rest = text.partition("\n")
    if not rest.strip():
        return f'<pre class="error">{_e(text, MAX_ERROR_CHARS)}</pre>'
    return (
        f'<details><summary><pre class="error">{_e(first, MAX_ERROR_CHARS)}</pre></summary>'
        f'<pre class="error">{_e(rest, MAX_ERROR_CHARS)}</pre></details>'
    )
