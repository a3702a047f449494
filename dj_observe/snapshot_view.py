"""The human-readable snapshot: status, timing, progress, partitions, failures, op timings."""

from __future__ import annotations

from datetime import datetime
from typing import IO

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from dj_observe.opstats import op_stats
from dj_observe.snapshot import JobSnapshot, ProcessingStatus, format_duration, partition_status
from dj_observe.state import Status
from dj_observe.termtable import Column, FitTable, Kind
from dj_observe.textsafe import safe_text, visible
from dj_observe.timing import human_duration

__all__ = ["print_snapshot"]

MAX_PARTITION_ROWS = 20
"""Partitions listed individually; larger jobs show the failed and running ones first."""

_STYLE = {
    ProcessingStatus.COMPLETED: "green",
    ProcessingStatus.FAILED: "bold red",
    ProcessingStatus.IN_PROGRESS: "yellow",
    ProcessingStatus.NOT_STARTED: "dim",
}


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):  # a timestamp no calendar holds
        return f"{ts:g}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _status(status: ProcessingStatus) -> Text:
    return Text(status.value, style=_STYLE.get(status, ""))


def _header(snap: JobSnapshot) -> Panel:
    lines = Text.assemble("Job:      ", safe_text(snap.job_id), "\nStatus:   ")
    lines.append_text(_status(snap.overall_status))
    lines.append(f"\nStarted:  {_when(snap.job_start_time)}")
    lines.append(f"\nEnded:    {_when(snap.job_end_time)}")
    duration = human_duration(snap.total_duration)
    lines.append(f"\nDuration: {duration} (from {snap.timing_source.replace('_', ' ')})")
    since = snap.seconds_since_last_event
    if since is not None and snap.overall_status == ProcessingStatus.IN_PROGRESS:
        lines.append(f"\nLast event: {format_duration(since)} ago ({_when(snap.last_event_time)})")
    lines.append(
        f"\nPartitions: {snap.completed_partitions}/{snap.total_partitions} completed, "
        f"{snap.failed_partitions} failed, {snap.in_progress_partitions} running"
    )
    lines.append(
        f"\nOperations: {snap.completed_operations}/{snap.total_operations} completed, "
        f"{snap.failed_operations} failed, {snap.checkpointed_operations} checkpointed"
    )
    if snap.checkpoint_strategy or snap.last_checkpoint_time:
        lines.append(
            f"\nCheckpoints: strategy {visible(snap.checkpoint_strategy or '-')}, last at "
            f"{_when(snap.last_checkpoint_time)}, resumable: {'yes' if snap.resumable else 'no'}"
        )
    skipped = snap.stats.skipped_lines
    if skipped:
        lines.append(
            f"\nSkipped log lines: {skipped} (malformed, oversized or torn)", style="yellow"
        )
    for pid, names in list(snap.skipped.items())[:MAX_PARTITION_ROWS]:
        lines.append(
            f"\nPartition {pid} completed without running {visible(', '.join(names))} "
            "(skipped on resume)",
            style="bold red",
        )
    if snap.group_timed_operations:
        lines.append(
            f"\n{snap.group_timed_operations} op runs were timed only as checkpoint groups: "
            "no per-op duration",
            style="yellow",
        )
    return Panel(lines, expand=False)


_PARTITION_COLUMNS = (
    Column("partition", Kind.ID),
    Column("status"),
    Column("samples", justify="right", drop=1),
    Column("ops done"),
    Column("current op", Kind.ID),
    Column("duration", justify="right", drop=2),
)
_FAILURE_COLUMNS = (
    Column("partition", Kind.ID),
    Column("op", Kind.ID),
    Column("error", Kind.PROSE),
)
_OP_COLUMNS = (
    Column("#", justify="right", drop=1),
    Column("op", Kind.ID),
    *(Column(header, justify="right") for header in ("done", "failed", "p50")),
    Column("max", justify="right", drop=3),
    Column("rows in", justify="right", drop=2),
    Column("rows out", justify="right"),
    Column("kept", justify="right"),
)


def _partition_table(snap: JobSnapshot) -> FitTable:
    state = snap.state
    parts = sorted(
        state.partitions.values(),
        key=lambda part: (
            {Status.FAILED: 0, Status.IN_PROGRESS: 1}.get(state.partition_status(part), 2),
            part.partition_id,
        ),
    )
    more = len(parts) - MAX_PARTITION_ROWS
    caption = f"{more} more partitions not listed" if more > 0 else None
    table = FitTable(_PARTITION_COLUMNS, title="Partitions", caption=caption)
    for part in parts[:MAX_PARTITION_ROWS]:
        entry = partition_status(state, part)
        duration = None
        if entry.processing_start_time is not None and entry.processing_end_time is not None:
            duration = entry.processing_end_time - entry.processing_start_time
        table.add_row(
            str(part.partition_id),
            _status(entry.status),
            "-" if entry.sample_count is None else f"{entry.sample_count:,}",
            f"{len(entry.completed_operations)}/{max(state.ops_per_partition, 1)}",
            safe_text(entry.current_operation or "-"),
            _seconds(duration),
        )
    return table


def _failures(snap: JobSnapshot) -> FitTable | None:
    state = snap.state
    table = FitTable(_FAILURE_COLUMNS, title="Failed partitions", title_style="bold red")
    for part in sorted(state.partitions.values(), key=lambda part: part.partition_id):
        if state.partition_status(part) != Status.FAILED:
            continue
        runs = list(state.op_runs(part))
        failed = next((run for run in runs if run.status == Status.FAILED), None)
        error = part.error_message or (failed.error_message if failed else None) or "-"
        table.add_row(
            str(part.partition_id),
            safe_text(failed.operation_name if failed else "-"),
            safe_text(error),
        )
    return table if table.row_count else None


def _op_table(snap: JobSnapshot) -> FitTable:
    """Per op, as :mod:`dj_observe.opstats` counts it (rows and durations of completed runs)."""
    table = FitTable(_OP_COLUMNS, title="Operations")
    for idx, stats in enumerate(op_stats(snap.state).values()):
        table.add_row(
            str(idx),
            safe_text(stats.name),
            str(stats.completed),
            str(stats.failed),
            _seconds(stats.p50),
            _seconds(stats.durations[-1] if stats.durations else None),
            f"{stats.rows_in:,}" if stats.rows_in else "-",
            f"{stats.rows_out:,}" if stats.rows_in else "-",
            f"{100 * stats.retention:.1f}%" if stats.retention is not None else "-",
        )
    return table


def print_snapshot(snap: JobSnapshot, stream: IO[str] | None = None) -> None:
    """Print the snapshot for a person: a summary panel and tables."""
    console = Console(file=stream, soft_wrap=False)
    parts: list[RenderableType] = [_header(snap)]
    if snap.state.partitions:
        parts.append(_partition_table(snap))
    failures = _failures(snap)
    if failures is not None:
        parts.append(failures)
    if len(snap.state.ops):
        parts.append(_op_table(snap))
    console.print(Group(*parts))
