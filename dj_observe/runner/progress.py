"""What ``dj-observe run`` shows while a job runs: progress bars, or plain lines when piped."""

from __future__ import annotations

import threading
import time
from typing import IO, NamedTuple

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dj_observe.hook import ObservabilityHook
from dj_observe.state import Status
from dj_observe.textsafe import count_of

__all__ = ["RunProgress"]

PLAIN_INTERVAL = 5.0
"""Seconds between plain progress lines (when not a terminal) while no partition ends."""


class _Counts(NamedTuple):
    ended: int
    total: int
    failed: int
    running: int
    ops_done: int
    ops_total: int

    @classmethod
    def of(cls, hook: ObservabilityHook) -> _Counts:
        feed = hook.feed()
        counts = feed.counts()
        total = sum(counts.values())
        state = feed.state
        failed = (state.partitions[pid] for pid in feed.failed if pid in state.partitions)
        return cls(
            ended=counts[Status.COMPLETED] + counts[Status.FAILED],
            total=total,
            failed=counts[Status.FAILED],
            running=counts[Status.IN_PROGRESS],
            ops_done=state.ops.count(Status.COMPLETED) + state.ops.count(Status.FAILED),
            ops_total=state.op_runs_expected(failed),
        )

    def line(self) -> str:
        failed = f"{self.failed} failed" if self.failed else "none failed"
        running = f", {count_of(self.running, 'partition')} running" if self.running else ""
        return (
            f"partitions {self.ended}/{self.total} ({failed}), "
            f"op runs {self.ops_done}/{self.ops_total}{running}"
        )


class RunProgress:
    """Partitions and op runs done, updated from the hook's fold as events arrive.

    On a terminal: two live bars, redrawn with the final counts when the job ends.
    Otherwise: a line (time since the start, then the counts) whenever a partition ends, at
    least every :data:`PLAIN_INTERVAL` seconds while the job runs, and the final counts
    before the context exits.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.console = Console(file=stream)
        self.live = self.console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description:<11}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.partitions = self.progress.add_task("partitions", total=None, detail="")
        self.ops = self.progress.add_task("op runs", total=None, detail="")
        self._hook: ObservabilityHook | None = None
        self._printed: _Counts | None = None
        self._started = self._printed_at = time.monotonic()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="run-progress", daemon=True)

    def __enter__(self) -> RunProgress:
        self._started = time.monotonic()
        if self.live:
            self.progress.start()
        else:
            self._ticker.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        if self._ticker.is_alive():
            self._ticker.join()
        if self._hook is not None:  # the job ended: its hook has delivered every event
            self._show(_Counts.of(self._hook), final=True)
        if self.live:
            self.progress.stop()

    def update(self, hook: ObservabilityHook) -> None:
        """Called after each event; cheap (counts are kept by the fold)."""
        self._hook = hook
        self._show(_Counts.of(hook))

    def _tick(self) -> None:
        """Plain output: the current counts when no line came for a while (a long op)."""
        while not self._stopped.wait(PLAIN_INTERVAL / 5):
            if self._hook is not None:
                self._show(_Counts.of(self._hook), tick=True)

    def _show(self, counts: _Counts, *, final: bool = False, tick: bool = False) -> None:
        with self._lock:
            if self.live:
                self._draw(counts)
            elif self._due(counts, final, tick):
                self._printed, self._printed_at = counts, time.monotonic()
                elapsed = int(self._printed_at - self._started)
                self.console.print(
                    f"{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d} "
                    + counts.line(),
                    markup=False,
                    highlight=False,
                )

    def _draw(self, counts: _Counts) -> None:
        self.progress.update(
            self.partitions,
            completed=counts.ended,
            total=counts.total or None,
            detail=f"{counts.failed} failed" if counts.failed else "",
        )
        self.progress.update(
            self.ops,
            completed=counts.ops_done,
            total=counts.ops_total or None,
            detail=f"{count_of(counts.running, 'partition')} running" if counts.running else "",
        )

    def _due(self, counts: _Counts, final: bool, tick: bool) -> bool:
        """A plain line: the first, the final, a partition ended, or the interval passed (with
        news, or from the ticker while nothing happens)."""
        last = self._printed
        if last is None:
            return counts.total > 0 or final
        if final or counts.ended != last.ended:
            return counts != last
        waited = time.monotonic() - self._printed_at >= PLAIN_INTERVAL
        return waited and (tick or counts != last)
