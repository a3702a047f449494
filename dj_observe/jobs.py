"""Job tools: find the jobs under an outputs directory, tell which are running.

``JobListing(base_dir)``: ``list_jobs()``, ``list_running_jobs()`` and
``load_event_logs()`` (also importable as ``JobUtils``, its former name; Data-Juicer's
one-job ``JobUtils(job_id, work_dir=None, base_dir=None)`` is
:class:`dj_observe.job.common.JobUtils`).  A job is running when its
log has no terminal status and a process that wrote it (its ``process_id``) is
still alive and older than the job's last event (so a recycled pid does not count).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from dj_observe.eventlog import find_event_logs
from dj_observe.events import Event, event_from_dict
from dj_observe.state import JobState, Status
from dj_observe.tracker import JobDirectoryError, JobTracker

__all__ = ["JobInfo", "JobListing", "JobUtils", "find_job_dirs", "list_running_jobs"]

MAX_DEPTH = 3
"""How deep below the outputs directory job directories are looked for."""


@dataclass(frozen=True)
class JobInfo:
    """One job as listed by ``dj-observe jobs``."""

    job_id: str
    work_dir: str
    status: str
    running: bool
    total_partitions: int
    completed_partitions: int
    failed_partitions: int
    start_time: float | None
    last_event_time: float | None
    process_ids: list[int] = field(default_factory=list)

    @property
    def progress_percentage(self) -> float:
        if not self.total_partitions:
            return 0.0
        return round(100.0 * self.completed_partitions / self.total_partitions, 2)

    @property
    def age_seconds(self) -> float | None:
        """Seconds since the job's last event."""
        return (
            None if self.last_event_time is None else max(0.0, time.time() - self.last_event_time)
        )


def _has_event_log(path: Path) -> bool:
    try:
        return bool(find_event_logs(path))
    except OSError:
        return False


def find_job_dirs(base_dir: str | os.PathLike[str], max_depth: int = MAX_DEPTH) -> list[Path]:
    """Directories under ``base_dir`` (or ``base_dir`` itself) that hold an event log."""
    root = Path(base_dir)
    if root.exists() and not root.is_dir():
        raise JobDirectoryError(f"not a directory: {root} (give the directory of job directories)")
    if not root.is_dir():
        raise JobDirectoryError(f"outputs directory not found: {root}")
    if _has_event_log(root):
        return [root]
    found: list[Path] = []
    level = [root]
    for _ in range(max_depth):
        below: list[Path] = []
        for directory in level:
            try:
                children = sorted(p for p in directory.iterdir() if p.is_dir())
            except OSError:
                continue
            for child in children:
                (found if _has_event_log(child) else below).append(child)
        level = below
    return found


def _alive(pid: int, last_event_time: float | None) -> bool:
    try:
        process = psutil.Process(pid)
        started = process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    if process.status() == psutil.STATUS_ZOMBIE:
        return False
    return last_event_time is None or started <= last_event_time + 1.0


def _info(job_dir: Path) -> JobInfo:
    tracker = JobTracker(job_dir, workers=1)
    state: JobState = tracker.refresh()
    status = state.job_status()
    counts = state.partition_counts()
    pids = sorted(state.process_ids)
    running = status == Status.IN_PROGRESS and any(
        _alive(pid, state.last_event_time) for pid in pids
    )
    return JobInfo(
        job_id=state.job_id or job_dir.name,
        work_dir=str(job_dir),
        status=status.label,
        running=running,
        total_partitions=state.total_partitions,
        completed_partitions=counts[Status.COMPLETED],
        failed_partitions=counts[Status.FAILED],
        start_time=state.start_time if state.start_time is not None else state.first_event_time,
        last_event_time=state.last_event_time,
        process_ids=pids,
    )


class JobListing:
    """Jobs under one outputs directory (or a single job directory)."""

    def __init__(self, base_dir: str | os.PathLike[str] = "./outputs") -> None:
        self.base_dir = Path(base_dir)

    def job_dirs(self) -> list[Path]:
        return find_job_dirs(self.base_dir)

    def list_jobs(self) -> list[JobInfo]:
        """Every job, newest first."""
        jobs = []
        for job_dir in self.job_dirs():
            try:
                jobs.append(_info(job_dir))
            except (JobDirectoryError, OSError):
                continue
        return sorted(jobs, key=lambda job: job.start_time or 0.0, reverse=True)

    def list_running_jobs(self) -> list[JobInfo]:
        """Jobs that have not ended and whose process is still alive."""
        return [job for job in self.list_jobs() if job.running]

    def iter_events(self, job_id: str | None = None) -> Iterator[Event]:
        """Events of one job (by id or directory name), or of every job, in write order;
        whole events (the fold's reader keeps only the fields it reads)."""
        from dj_observe.job.common import iter_event_dicts

        for job_dir in self.job_dirs():
            if job_id is not None and job_dir.name != job_id:
                continue
            for data in iter_event_dicts(job_dir):
                event = event_from_dict(data)
                if event is not None:
                    yield event

    def load_event_logs(self, job_id: str | None = None) -> list[Event]:
        """All events of one job, or of every job under the outputs directory."""
        return list(self.iter_events(job_id))


def list_running_jobs(base_dir: str | os.PathLike[str] = "./outputs") -> list[JobInfo]:
    """Module-level shortcut: ``JobListing(base_dir).list_running_jobs()``."""
    return JobListing(base_dir).list_running_jobs()


JobUtils = JobListing
"""The former name of :class:`JobListing`."""
