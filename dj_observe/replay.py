"""Replay: feed an existing event log through the same sinks as the live hook.

The log is read with the tolerant reader and every event goes through the same
:class:`~dj_observe.dispatch.Dispatcher`, so metrics and spans equal those of
the live run (same ids, names, timestamps, attributes and values).  This is what
gives traces and dashboards to jobs that ran without the hook.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dj_observe.dispatch import Dispatcher, HookStats, Sink
from dj_observe.eventlog import EventLogReader, ReadStats
from dj_observe.tracker import JobDirectoryError

__all__ = ["JobFollower", "ReplayResult", "replay"]


@dataclass
class ReplayResult:
    """What a replay read and handed to the sinks."""

    job_id: str
    events: int
    stats: ReadStats


class JobFollower:
    """Feeds one job directory's appended events to a dispatcher, call after call."""

    def __init__(self, job_dir: str | os.PathLike[str], dispatcher: Dispatcher) -> None:
        self.job_dir = Path(job_dir)
        if not self.job_dir.is_dir():
            raise JobDirectoryError(f"job directory not found: {self.job_dir}")
        self.reader = EventLogReader(self.job_dir)
        self.dispatcher = dispatcher
        self.job_id: str | None = None
        self.events = 0

    def poll(self) -> int:
        """Dispatch what was appended since the last poll; returns how many events."""
        count = 0
        for events in self.reader.read():
            for event in events:
                if self.job_id is None:
                    self.job_id = event.job_id or self.job_dir.name
                self.dispatcher.dispatch(event, self.job_id)
                count += 1
        self.events += count
        return count


def replay(
    job_dir: str | os.PathLike[str], sinks: list[Sink], stats: HookStats | None = None
) -> ReplayResult:
    """Replay a job's log through ``sinks``, then flush them (the caller closes them)."""
    dispatcher = Dispatcher(sinks, stats)
    follower = JobFollower(job_dir, dispatcher)
    follower.poll()
    if not follower.reader.offsets:
        raise JobDirectoryError(f"no event log (events.jsonl) in {follower.job_dir}")
    dispatcher.flush()
    return ReplayResult(
        follower.job_id or follower.job_dir.name, follower.events, follower.reader.stats
    )
