"""What ``dj-observe run`` shows while a job runs: progress bars, or plain lines when piped."""

from __future__ import annotations

import time
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dj_observe.hook import ObservabilityHook
from dj_observe.state import Status

__all__ = ["RunProgress"]

PLAIN_INTERVAL = 5.0
"""Seconds between plain progress lines when the output is not a terminal."""


class RunProgress:
    """Partitions and op runs done, updated from the hook's fold as events arrive."""

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
        self._last_line = 0.0
        self._summary = ""

    def __enter__(self) -> RunProgress:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.live:
            self.progress.stop()
        elif self._summary:
            self.console.print(self._summary)

    def update(self, hook: ObservabilityHook) -> None:
        """Called after each event; cheap (counts are kept by the fold)."""
        feed = hook.feed()
        state = feed.state
        counts = feed.counts()
        total = sum(counts.values())
        ended = counts[Status.COMPLETED] + counts[Status.FAILED]
        ops_total = max(total * state.ops_per_partition, len(state.ops))
        ops_done = state.ops.count(Status.COMPLETED)
        failed = f"{counts[Status.FAILED]} failed" if counts[Status.FAILED] else ""
        self.progress.update(self.partitions, completed=ended, total=total or None, detail=failed)
        self.progress.update(
            self.ops,
            completed=ops_done,
            total=ops_total or None,
            detail=f"{counts[Status.IN_PROGRESS]} partitions running",
        )
        now = time.monotonic()
        if not self.live and now - self._last_line >= PLAIN_INTERVAL:
            self._last_line = now
            self.console.print(
                f"partitions {ended}/{total} ({failed or 'none failed'}), "
                f"op runs {ops_done}/{ops_total}"
            )
