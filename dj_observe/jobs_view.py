"""The ``dj-observe jobs`` table."""

from __future__ import annotations

import time
from typing import IO

import msgspec
from rich.console import Console
from rich.text import Text

from dj_observe.jobs import JobInfo
from dj_observe.snapshot import format_duration
from dj_observe.termtable import Column, FitTable, Kind
from dj_observe.textsafe import safe_text

__all__ = ["age_text", "jobs_json", "print_jobs"]

DAY = 86_400.0

_STYLE = {"completed": "green", "failed": "bold red", "in_progress": "yellow"}


_COLUMNS = (
    Column("job", Kind.ID),
    Column("status"),
    Column("partitions"),
    Column("progress", drop=2),
    Column("last event"),
    Column("running"),
    Column("work dir", Kind.ID, drop=1),
)


def print_jobs(jobs: list[JobInfo], stream: IO[str] | None = None) -> None:
    """One row per job: id, status, progress, last event age, directory.  Ids and paths a
    user copies are never cut (narrower terminals list the work directories below)."""
    console = Console(file=stream, soft_wrap=False)
    if not jobs:
        console.print(Text("No jobs found."))
        return
    table = FitTable(_COLUMNS)
    for job in jobs:
        table.add_row(
            safe_text(job.job_id),
            safe_text(job.status, _STYLE.get(job.status, "dim")),
            f"{job.completed_partitions}/{job.total_partitions}"
            + (f" ({job.failed_partitions} failed)" if job.failed_partitions else ""),
            f"{job.progress_percentage:.1f}%",
            age_text(job.age_seconds, job.last_event_time),
            "yes" if job.running else "no",
            safe_text(job.work_dir),
        )
    console.print(table)


def age_text(seconds: float | None, when: float | None) -> str:
    """``3m 2s ago``; past a day ``2d 5h ago``; past a month the date of the last event."""
    if seconds is None:
        return "-"
    if seconds < DAY:
        return f"{format_duration(seconds)} ago"
    if seconds < 30 * DAY or when is None:
        return f"{int(seconds // DAY)}d {int(seconds % DAY // 3600)}h ago"
    try:
        return time.strftime("on %Y-%m-%d", time.gmtime(when))
    except (OverflowError, OSError, ValueError):
        return f"{int(seconds // DAY)}d ago"


def jobs_json(jobs: list[JobInfo], stream: IO[str]) -> None:
    """The jobs as one JSON document (a list), for scripts."""
    document = [
        {
            "job_id": job.job_id,
            "status": job.status,
            "running": job.running,
            "total_partitions": job.total_partitions,
            "completed_partitions": job.completed_partitions,
            "failed_partitions": job.failed_partitions,
            "progress_percentage": job.progress_percentage,
            "start_time": job.start_time,
            "last_event_time": job.last_event_time,
            "seconds_since_last_event": job.age_seconds,
            "process_ids": job.process_ids,
            "work_dir": job.work_dir,
        }
        for job in jobs
    ]
    stream.write(msgspec.json.format(msgspec.json.encode(document), indent=2).decode() + "\n")
