"""``dj-observe watch``: a live terminal view of a job, following its event log.

Each refresh folds only what was appended since the previous one
(:meth:`JobTracker.refresh`), then summarises the state into a :class:`Frame`:
status, elapsed and estimated time left, partition and op-run progress, rows/s,
running partitions, recent failures, and whether the log has gone stale.  On a
TTY the frame is redrawn in place with :class:`rich.live.Live`; otherwise one
plain line is printed per refresh that folded new events.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from dj_observe.snapshot import partition_status
from dj_observe.state import JobState, PartitionState, Status
from dj_observe.termtable import Column, FitTable, Kind
from dj_observe.textsafe import safe_text, visible
from dj_observe.timing import ENDED, human_duration, job_status, job_timing
from dj_observe.tracker import JobDirectoryError, JobTracker

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "Frame", "JobDirectoryError", "build_frame", "watch"]

EXIT_FAILED = 4
"""Exit code when the watched job ended failed."""
EXIT_INTERRUPTED = 130
"""Exit code on Ctrl-C (128 + SIGINT)."""
RECENT_FAILURES = 5
"""Failed partitions shown, most recent first."""
MAX_RUNNING_ROWS = 10
"""Running partitions listed in the live view (the plain line lists up to 5)."""
MAX_RUNNING_PLAIN = 5

_STYLE = {
    Status.COMPLETED: "green",
    Status.FAILED: "bold red",
    Status.IN_PROGRESS: "yellow",
    Status.NOT_STARTED: "dim",
}


@dataclass
class Failure:
    """One failed partition: where it failed and why."""

    partition_id: int
    operation: str | None
    error: str | None
    time: float | None


@dataclass
class Frame:
    """What one refresh shows."""

    status: Status
    elapsed: float | None
    eta: float | None
    """Seconds left: ``elapsed / done * remaining`` op runs; ``None`` before any completed."""
    partitions_done: int
    partitions_failed: int
    partitions_total: int
    ops_done: int
    ops_failed: int
    ops_total: int
    last_op: str | None
    rows_out: int
    rows_per_second: float | None
    """Output rows of the last op's completed runs, divided by ``elapsed``."""
    running: list[tuple[int, str | None, str | None]] = field(default_factory=list)
    """``(partition, op in progress, last op completed)`` of the running partitions."""
    failures: list[Failure] = field(default_factory=list)
    stale_for: float | None = None
    """Seconds since the last event, when longer than ``stale_after`` on an unfinished job."""
    events: int = 0

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.status == Status.FAILED else 0


def build_frame(
    state: JobState, now: float, stale_after: float, summary: Mapping[str, Any] | None = None
) -> Frame:
    """Summarise ``state`` as seen at ``now`` (``summary``: ``job_summary.json``'s content)."""
    summary = summary or {}
    counts = dict.fromkeys(Status, 0)
    running: list[PartitionState] = []
    failed: list[PartitionState] = []
    for _, part in sorted(state.partitions.items()):
        status = state.partition_status(part)
        counts[status] += 1
        if status == Status.IN_PROGRESS:
            running.append(part)
        elif status == Status.FAILED:
            failed.append(part)
    counts[Status.NOT_STARTED] += state.total_partitions - len(state.partitions)
    job = job_status(state, counts, summary.get("status"))

    ops = state.op_counts()
    ops_done = ops[Status.COMPLETED] + ops[Status.FAILED]
    expected = state.op_runs_expected(failed)
    remaining = 0 if job in ENDED else max(0, expected - ops_done)

    elapsed = job_timing(state, summary, job).elapsed(now, state.last_event_time)
    eta: float | None = None
    if job in ENDED:
        eta = 0.0
    elif elapsed is not None and ops[Status.COMPLETED]:
        eta = elapsed / ops[Status.COMPLETED] * remaining

    last_op = state.op_names[-1] if state.op_names else None
    rows_out = _rows_out(state, last_op)
    rate = rows_out / elapsed if elapsed else None

    stale_for = None
    last = state.last_event_time
    if job not in ENDED and last is not None and now - last > stale_after:
        stale_for = now - last

    return Frame(
        status=job,
        elapsed=elapsed,
        eta=eta,
        partitions_done=counts[Status.COMPLETED] + counts[Status.FAILED],
        partitions_failed=counts[Status.FAILED],
        partitions_total=state.total_partitions,
        ops_done=ops_done,
        ops_failed=ops[Status.FAILED],
        ops_total=ops_done + remaining,
        last_op=last_op,
        rows_out=rows_out,
        rows_per_second=rate,
        running=[_running(state, part) for part in running],
        failures=_recent_failures(state, failed),
        stale_for=stale_for,
        events=state.events_applied,
    )


def _rows_out(state: JobState, op: str | None) -> int:
    if op is None:
        return 0
    total = 0
    for part in state.partitions.values():
        slot = part.ops.get(op)
        if slot is not None and state.op_status(slot) == Status.COMPLETED:
            total += max(0, state.ops.output_rows[slot])
    return total


def _running(state: JobState, part: PartitionState) -> tuple[int, str | None, str | None]:
    entry = partition_status(state, part)
    done = entry.completed_operations[-1] if entry.completed_operations else None
    return part.partition_id, entry.current_operation, done


def _recent_failures(state: JobState, failed: list[PartitionState]) -> list[Failure]:
    failed = sorted(failed, key=lambda part: (part.end_time or 0.0, part.partition_id))
    out = []
    for part in reversed(failed[-RECENT_FAILURES:]):
        entry = partition_status(state, part)
        op = entry.failed_operations[0] if entry.failed_operations else None
        out.append(Failure(part.partition_id, op, entry.error_message, part.end_time))
    return out


# -- rendering ---------------------------------------------------------------------


def _eta(frame: Frame) -> str:
    if frame.ended:
        return "-"
    return "unknown" if frame.eta is None else human_duration(frame.eta)


def _rate(frame: Frame) -> str:
    return "-" if frame.rows_per_second is None else f"{frame.rows_per_second:.0f}"


def plain_line(frame: Frame) -> str:
    """``[12.3s] in_progress partitions 3/8 ops 20/64 eta 4s rows/s 1234 running p3:op ...``"""
    elapsed = human_duration(frame.elapsed)
    running = ",".join(_plain_running(*entry) for entry in frame.running[:MAX_RUNNING_PLAIN]) or "-"
    if len(frame.running) > MAX_RUNNING_PLAIN:
        running += f",+{len(frame.running) - MAX_RUNNING_PLAIN}"
    return (
        f"[{elapsed}] {frame.status.label} "
        f"partitions {frame.partitions_done}/{frame.partitions_total} "
        f"ops {frame.ops_done}/{frame.ops_total} eta {_eta(frame)} rows/s {_rate(frame)} "
        f"running {running} failed {frame.partitions_failed}"
    )


def _plain_running(pid: int, op: str | None, done: str | None) -> str:
    """``p3:text_length_filter`` (running), ``p3:after=clean_links_mapper`` (between ops)."""
    text = f"p{pid}:{op}" if op else f"p{pid}:after={done}" if done else f"p{pid}:-"
    return visible(text)


def _failure_line(failure: Failure) -> str:
    return visible(
        f"failed p{failure.partition_id} at {failure.operation or '-'}: {failure.error or '-'}"
    )


def _stale_text(frame: Frame) -> str:
    return f"stale: no event for {frame.stale_for:.0f}s"


def _bar(label: str, done: int, total: int, failed: int) -> tuple[Text, ProgressBar, Text]:
    pct = 100.0 * done / total if total else 0.0
    detail = f"{done}/{total} ({pct:.0f}%)" + (f", {failed} failed" if failed else "")
    return (
        Text(label),
        ProgressBar(total=max(total, 1), completed=done, width=40),
        Text(detail, style="red" if failed else ""),
    )


_RUNNING_COLUMNS = (Column("partition", Kind.ID, justify="right"), Column("current op", Kind.ID))
_FAILURE_COLUMNS = (
    Column("partition", Kind.ID, justify="right"),
    Column("op", Kind.ID),
    Column("error", Kind.PROSE),
)


def render_frame(frame: Frame, job_dir: Path) -> RenderableType:
    """The live view of one frame."""
    head = Text.assemble("Job dir:   ", safe_text(job_dir), "\nStatus:    ")
    head.append(frame.status.label, style=_STYLE[frame.status])
    head.append(f"\nElapsed:   {human_duration(frame.elapsed)}")
    head.append(f"\nTime left: {_eta(frame)}")
    head.append(f"\nRows/s:    {_rate(frame)}")
    if frame.last_op:
        head.append(f" (rows out of {visible(frame.last_op)}, the last op, / elapsed)", style="dim")
    if frame.stale_for is not None:
        head.append(f"\n{_stale_text(frame)}", style="bold yellow")
    bars = Table.grid(padding=(0, 1))
    bars.add_row(
        *_bar("partitions", frame.partitions_done, frame.partitions_total, frame.partitions_failed)
    )
    bars.add_row(*_bar("op runs", frame.ops_done, frame.ops_total, frame.ops_failed))
    parts: list[RenderableType] = [head, Text(), bars]
    if frame.running:
        more = len(frame.running) - MAX_RUNNING_ROWS
        caption = f"{more} more running" if more > 0 else None
        table = FitTable(_RUNNING_COLUMNS, title="Running", caption=caption)
        for pid, op, done in frame.running[:MAX_RUNNING_ROWS]:
            table.add_row(str(pid), safe_text(op or (f"- (after {done})" if done else "-")))
        parts.append(table)
    if frame.failures:
        table = FitTable(_FAILURE_COLUMNS, title="Recent failures", title_style="bold red")
        for failure in frame.failures:
            table.add_row(
                str(failure.partition_id),
                safe_text(failure.operation or "-"),
                safe_text(failure.error or "-"),
            )
        parts.append(table)
    return Panel(Group(*parts), title="dj-observe watch", expand=False)


WAITING_REMINDER = 30.0
"""Piped, seconds between two "still waiting" lines while a directory has no event log."""


def _waiting(job_dir: Path, waited: float) -> str:
    return visible(
        f"waiting {waited:.0f}s for the job's first event (events.jsonl or events_*.jsonl) "
        f"in {job_dir}: is the job started, and is this its work directory?"
    )


class _PlainView:
    """One line per refresh that folded new events; stale and failures once each."""

    def __init__(self, stream: IO[str], job_dir: Path) -> None:
        self.stream = stream
        self.job_dir = job_dir
        self.started = time.monotonic()
        self.waited: float | None = None  # when the last waiting line was printed
        self.last_key: tuple[int, Status] | None = None
        self.stale_shown = False
        self.failures_shown: set[int] = set()

    def show(self, frame: Frame | None) -> None:
        if frame is None:
            now = time.monotonic()
            if self.waited is None or now - self.waited >= WAITING_REMINDER:
                self._print(_waiting(self.job_dir, now - self.started))
                self.waited = now
            return
        key = (frame.events, frame.status)
        if key != self.last_key:
            self.last_key = key
            self._print(plain_line(frame))
            for failure in reversed(frame.failures):
                if failure.partition_id not in self.failures_shown:
                    self.failures_shown.add(failure.partition_id)
                    self._print(_failure_line(failure))
        if frame.stale_for is None:
            self.stale_shown = False
        elif not self.stale_shown:
            self.stale_shown = True
            self._print(_stale_text(frame))

    def _print(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


class _LiveView:
    """Redraws the frame in place."""

    def __init__(self, live: Live, job_dir: Path) -> None:
        self.live = live
        self.job_dir = job_dir
        self.started = time.monotonic()

    def show(self, frame: Frame | None) -> None:
        if frame is None:
            view: RenderableType = Text(_waiting(self.job_dir, time.monotonic() - self.started))
        else:
            view = render_frame(frame, self.job_dir)
        self.live.update(view, refresh=True)


def watch(
    job_dir: str | os.PathLike[str],
    stdout: IO[str],
    *,
    interval: float = 1.0,
    exit_on_end: bool = True,
    stale_after: float = 60.0,
    max_refreshes: int | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Follow a job directory until its job ends (or Ctrl-C); return the exit code.

    0 when the job completed (or when ``max_refreshes`` ran out first), 4 when it
    failed, 130 on Ctrl-C.  Raises :class:`JobDirectoryError` when ``job_dir`` is
    not a readable directory; a directory without an event log yet is waited on.
    """
    path = Path(job_dir)
    tracker = JobTracker(path, workers=1)
    try:
        if stdout.isatty():
            console = Console(file=stdout, soft_wrap=False)
            with Live(
                console=console, auto_refresh=False, redirect_stdout=False, redirect_stderr=False
            ) as live:
                return _loop(
                    tracker,
                    _LiveView(live, path),
                    interval,
                    exit_on_end,
                    stale_after,
                    max_refreshes,
                    clock,
                )
        return _loop(
            tracker,
            _PlainView(stdout, path),
            interval,
            exit_on_end,
            stale_after,
            max_refreshes,
            clock,
        )
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _loop(
    tracker: JobTracker,
    view: _PlainView | _LiveView,
    interval: float,
    exit_on_end: bool,
    stale_after: float,
    max_refreshes: int | None,
    clock: Callable[[], float],
) -> int:
    refreshes = 0
    frame: Frame | None = None
    while True:
        began = time.monotonic()
        frame = _poll(tracker, clock, stale_after)
        view.show(frame)
        refreshes += 1
        if frame is not None and frame.ended and exit_on_end:
            return frame.exit_code
        if max_refreshes is not None and refreshes >= max_refreshes:
            return 0 if frame is None else frame.exit_code
        time.sleep(max(0.0, interval - (time.monotonic() - began)))


def _poll(tracker: JobTracker, clock: Callable[[], float], stale_after: float) -> Frame | None:
    """Fold what was appended; ``None`` while the directory holds no event log yet."""
    try:
        state = tracker.refresh()
    except JobDirectoryError:
        if not tracker.job_dir.is_dir():
            raise
        return None
    summary = tracker.summary.data if tracker.summary and tracker.summary.data else {}
    return build_frame(state, clock(), stale_after, summary)
