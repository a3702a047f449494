"""A job's status and time span: one definition, told the same by every view and metric.

The snapshot, the report, ``watch``, ``jobs`` and ``dj_job_duration_seconds`` all answer
"how long did (has) this job run" from here:

- When the job directory holds ``job_summary.json`` with a ``start_time`` (the executor
  writes it when it sets the job up), the summary is the source, as in Data-Juicer's own
  snapshot: start, end and duration as recorded there.
- Otherwise the events are: the job starts at its first ``job_start`` event (or the
  ``original_start_time`` a ``job_restart`` names; else at its first event) and ends at
  its ``job_complete`` / ``job_failed`` event (a failed job without one at its last event).
- A job's duration is its end minus its start: the time from Started to Ended that every
  view shows beside it, a resumed job's runs and the pause between them included (as in
  Data-Juicer's own snapshot).
- A running job has no end and no duration; its elapsed time runs from its start to now
  (never backwards when the clock is behind the log's timestamps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dj_observe.events import to_float
from dj_observe.state import JobState, Status

__all__ = [
    "ENDED",
    "JobTiming",
    "format_duration",
    "human_duration",
    "job_status",
    "job_timing",
]

ENDED = (Status.COMPLETED, Status.FAILED)


def job_status(state: JobState, partitions: Mapping[Status, int], recorded: object) -> Status:
    """The job's status from its events and partition counts; ``recorded`` is
    ``job_summary.json``'s ``status``, which decides only what the events leave open."""
    status = state.job_status(dict(partitions))
    if status not in ENDED:
        if recorded == "completed" and state.status is None:
            return Status.COMPLETED
        if recorded == "failed":
            return Status.FAILED
    return status


@dataclass(frozen=True, slots=True)
class JobTiming:
    """When a job started and ended, how long it ran, and where that was read."""

    start: float | None
    end: float | None
    duration: float | None
    source: str
    """``"job_summary"`` or ``"events"``."""

    def elapsed(self, now: float, last_event: float | None = None) -> float | None:
        """The duration of an ended job; of a running one, the time since its start."""
        if self.duration is not None:
            return max(0.0, self.duration)
        if self.start is None:
            return None
        end = self.end
        if end is None:
            end = max(now, last_event) if last_event is not None else now
        return max(0.0, end - self.start)


def job_timing(state: JobState, summary: Mapping[str, Any], status: Status) -> JobTiming:
    """The job's time span by the rules of this module's docstring; ``status`` as
    :func:`job_status` gave it."""
    ended = status in ENDED
    start = to_float(summary.get("start_time"))
    if start is not None:
        end = to_float(summary.get("end_time")) if ended else None
        if end is None and ended:
            end = _event_end(state)
        duration = to_float(summary.get("duration")) if ended else None
        if duration is None and end is not None:
            duration = end - start
        return JobTiming(start, end, duration, "job_summary")
    start = state.start_time if state.start_time is not None else state.first_event_time
    if not ended:
        return JobTiming(start, None, None, "events")
    end = _event_end(state)
    duration = end - start if start is not None and end is not None else None
    return JobTiming(start, end, duration, "events")


def _event_end(state: JobState) -> float | None:
    if state.status in ENDED and state.end_time is not None:
        return state.end_time
    return state.last_event_time


def format_duration(seconds: float | None) -> str | None:
    """``271.8`` -> ``"4m 31s"``; hours appear when there are any."""
    if seconds is None or seconds < 0:
        return None
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def human_duration(seconds: float | None) -> str:
    """What a view shows: ``"5.7s"`` under a minute, else :func:`format_duration`'s; ``"-"``
    when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return format_duration(seconds) or "-"
