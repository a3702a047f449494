"""The ``dj-observe jobs`` table."""

from __future__ import annotations

from typing import IO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dj_observe.jobs import JobInfo
from dj_observe.snapshot import format_duration
from dj_observe.textsafe import safe_text

__all__ = ["print_jobs"]

_STYLE = {"completed": "green", "failed": "bold red", "in_progress": "yellow"}


def print_jobs(jobs: list[JobInfo], stream: IO[str] | None = None) -> None:
    """One row per job: id, status, progress, last event age, directory."""
    console = Console(file=stream, soft_wrap=False)
    if not jobs:
        console.print(Text("No jobs found."))
        return
    table = Table()
    for column in ("job", "status", "partitions", "progress", "last event", "running", "work dir"):
        table.add_column(column)
    for job in jobs:
        age = format_duration(job.age_seconds)
        table.add_row(
            safe_text(job.job_id),
            safe_text(job.status, _STYLE.get(job.status, "dim")),
            f"{job.completed_partitions}/{job.total_partitions}"
            + (f" ({job.failed_partitions} failed)" if job.failed_partitions else ""),
            f"{job.progress_percentage:.1f}%",
            f"{age} ago" if age else "-",
            "yes" if job.running else "no",
            safe_text(job.work_dir),
        )
    console.print(table)
