"""Data-Juicer's ``data_juicer.utils.job.common``, answered by the one fold.

``JobUtils(job_id, work_dir=None, base_dir=None)`` and ``list_running_jobs(base_dir)``
with Data-Juicer's names, signatures and return shapes.  Partition and job status come
from :class:`~dj_observe.state.JobState` (so they agree with the snapshot, ``watch`` and
the metrics); every ``events*.jsonl`` of a resumed job counts.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import msgspec

from dj_observe.eventlog import find_event_logs
from dj_observe.snapshot import backed_up_config
from dj_observe.state import JobState, PartitionState, Status
from dj_observe.tracker import JOB_SUMMARY, JobDirectoryError, JobTracker, SideFile

if TYPE_CHECKING:
    import psutil

__all__ = ["DEFAULT_BASE_DIR", "JobUtils", "iter_event_dicts", "list_running_jobs"]

DEFAULT_BASE_DIR = "outputs/partition-checkpoint-eventlog"
"""Data-Juicer's default outputs directory for partitioned jobs."""

DATASET_MAPPING = Path("metadata") / "dataset_mapping.json"

PID_START_SLACK_SECONDS = 1.0
"""A process counts as the job's if it started at most this long after the log first names it."""

_LINE = msgspec.json.Decoder()

# Data-Juicer's spellings of the fold's partition statuses.
_PARTITION_LABELS = {
    Status.NOT_STARTED: "unknown",
    Status.IN_PROGRESS: "processing",
    Status.COMPLETED: "completed",
    Status.FAILED: "failed",
}


def iter_event_dicts(work_dir: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every event object of every log in ``work_dir``, in write order; lines that are
    not a JSON object are skipped."""
    for line in _log_lines(work_dir):
        try:
            event = _LINE.decode(line)
        except msgspec.DecodeError:
            continue
        if isinstance(event, dict):
            yield event


def _log_lines(work_dir: str | os.PathLike[str]) -> Iterator[bytes]:
    """Every line of every log in ``work_dir``, in write order (an unreadable log: none)."""
    for path in find_event_logs(work_dir):
        try:
            handle = path.open("rb")
        except OSError:
            continue
        with handle:
            yield from handle


class _Ids(msgspec.Struct, gc=False):
    process_id: Any = None
    thread_id: Any = None
    timestamp: Any = None


_IDS = msgspec.json.Decoder(_Ids)


def process_first_seen(work_dir: str | os.PathLike[str]) -> dict[int, float | None]:
    """Each process id the logs record, with the earliest timestamp of an event naming it."""
    seen: dict[int, float | None] = {}
    for line in _log_lines(work_dir):
        try:
            ids = _IDS.decode(line)
        except msgspec.DecodeError:
            continue
        pid, ts = ids.process_id, ids.timestamp
        if not _is_int(pid) or pid <= 0:
            continue
        ts = float(ts) if _is_number(ts) else None
        known = seen.get(pid)
        if pid not in seen or (ts is not None and (known is None or ts < known)):
            seen[pid] = ts
    return seen


JOB_PROCESS_MARKS = ("python", "ray::", "dj-")
"""A job's processes are Python ones: its driver (``python``, ``dj-process``,
``dj-observe``) and Ray's workers (``ray::...``).  A pid naming anything else (a pid the
log recorded on another node, say) is not signalled."""


def is_job_process(process: psutil.Process, first_seen: float | None) -> bool:
    """Whether ``process`` can be the one the log named: alive, not a zombie, a Python or
    Ray process, and started before the log first named its pid (a recycled pid started
    later)."""
    import psutil

    try:
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        started = process.create_time()
        names = " ".join([process.name(), *process.cmdline()[:2]])
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    if not any(mark in names for mark in JOB_PROCESS_MARKS):
        return False
    return first_seen is None or started <= first_seen + PID_START_SLACK_SECONDS


class JobUtils:
    """One job's files and state (Data-Juicer's ``JobUtils``).

    ``work_dir`` is the job's directory; else ``base_dir / job_id``; else Data-Juicer's
    default outputs directory ``/ job_id``.
    """

    def __init__(
        self,
        job_id: str,
        work_dir: str | os.PathLike[str] | None = None,
        base_dir: str | None = None,
    ) -> None:
        self.job_id = job_id
        if work_dir:
            self.work_dir = Path(work_dir)
        elif base_dir:
            self.work_dir = Path(base_dir) / job_id
        else:
            self.work_dir = Path(DEFAULT_BASE_DIR) / job_id
        if not self.work_dir.exists():
            raise FileNotFoundError(f"Job directory not found: {self.work_dir}")
        self._tracker: JobTracker | None = None

    # -- files -------------------------------------------------------------------

    def load_job_summary(self) -> dict[str, Any] | None:
        """``job_summary.json``, or ``None`` when it is missing or not a JSON object."""
        return SideFile.load(self.work_dir / JOB_SUMMARY).data

    def load_dataset_mapping(self) -> dict[str, Any]:
        """``metadata/dataset_mapping.json``, or ``{}``."""
        return SideFile.load(self.work_dir / DATASET_MAPPING).data or {}

    def load_event_logs(self) -> list[dict[str, Any]]:
        """Every event of every log of the job (a resumed job has several), as dicts."""
        return list(iter_event_dicts(self.work_dir))

    # -- processes ---------------------------------------------------------------

    def extract_process_thread_ids(self) -> dict[str, set[int]]:
        """``{"process_ids": {...}, "thread_ids": {...}}`` recorded in the logs."""
        process_ids: set[int] = set()
        thread_ids: set[int] = set()
        for event in iter_event_dicts(self.work_dir):
            pid, tid = event.get("process_id"), event.get("thread_id")
            if _is_int(pid):
                process_ids.add(pid)
            if _is_int(tid):
                thread_ids.add(tid)
        return {"process_ids": process_ids, "thread_ids": thread_ids}

    def find_processes_by_ids(self, process_ids: set[int]) -> list[psutil.Process]:
        """The running processes among ``process_ids`` that are the job's: never this
        process, never one that started after the log named its pid (a recycled pid)."""
        import psutil

        first_seen = process_first_seen(self.work_dir)
        found = []
        for pid in sorted(process_ids):
            if pid == os.getpid() or not _is_int(pid) or pid <= 0:
                continue
            try:
                process = psutil.Process(pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if is_job_process(process, first_seen.get(pid)):
                found.append(process)
        return found

    def find_threads_by_ids(self, thread_ids: set[int]) -> list[threading.Thread]:
        """This process's threads among ``thread_ids`` (another process's threads end
        with their process)."""
        return [thread for thread in threading.enumerate() if thread.ident in thread_ids]

    # -- progress ----------------------------------------------------------------

    def _state(self) -> JobState:
        if self._tracker is None:
            self._tracker = JobTracker(self.work_dir, workers=1)
        try:
            return self._tracker.refresh()
        except JobDirectoryError:
            return self._tracker.state

    def get_partition_status(self) -> dict[int, dict[str, Any]]:
        """Each partition: status, samples, times, error, current op, completed ops and
        checkpoints (Data-Juicer's keys; ``status`` is ``processing`` while running)."""
        state = self._state()
        return {
            pid: _partition_entry(state, part) for pid, part in sorted(state.partitions.items())
        }

    def calculate_overall_progress(self) -> dict[str, Any]:
        """Partition counts, samples, percentage, an estimate of the time left, job status."""
        state = self._state()
        partitions = self.get_partition_status()
        counts = state.partition_counts()
        total, completed = state.total_partitions, counts[Status.COMPLETED]
        status = state.job_status(counts)
        summary = self.load_job_summary() or {}
        start = summary.get("start_time")
        if not _is_number(start):
            start = state.start_time if state.start_time is not None else state.first_event_time
        remaining = None
        if status == Status.IN_PROGRESS and completed and start is not None:
            remaining = (time.time() - start) / completed * (total - completed)
        return {
            "total_partitions": total,
            "completed_partitions": completed,
            "processing_partitions": counts[Status.IN_PROGRESS],
            "failed_partitions": counts[Status.FAILED],
            "progress_percentage": completed / total * 100 if total else 0,
            "total_samples": sum(p["sample_count"] for p in partitions.values()),
            "processed_samples": sum(
                p["sample_count"] for p in partitions.values() if p["status"] == "completed"
            ),
            "estimated_remaining_seconds": remaining,
            "job_status": status.label,
        }

    def get_operation_pipeline(self) -> list[dict[str, Any]]:
        """The job's ops in order, ``{"name", "config"}``: from the backed-up config's
        ``process`` list, else the op names the fold knows."""
        config = _process_list(backed_up_config(str(self.work_dir)))
        if config is not None:
            return config
        return [{"name": name, "config": {}} for name in self._state().op_names]


def _partition_entry(state: JobState, part: PartitionState) -> dict[str, Any]:
    status = state.partition_status(part)
    runs = list(state.op_runs(part))
    running = [run for run in runs if run.status == Status.IN_PROGRESS]
    current = None
    if status == Status.IN_PROGRESS and running:
        latest = max(running, key=lambda run: run.start_time or 0.0)
        current = {
            "name": latest.operation_name,
            "idx": latest.operation_idx,
            "start_time": latest.start_time,
        }
    ended = status in (Status.COMPLETED, Status.FAILED)
    return {
        "status": _PARTITION_LABELS[status],
        "sample_count": part.sample_count or 0,
        "start_time": part.start_time,
        "end_time": part.end_time if ended else None,
        "error_message": part.error_message,
        "current_op": current,
        "completed_ops": [_op_entry(run) for run in runs if run.status == Status.COMPLETED],
        "checkpoints": [
            {
                "operation_name": run.operation_name,
                "operation_idx": run.operation_idx,
                "checkpoint_path": "",
                "timestamp": run.checkpoint_time,
            }
            for run in runs
            if run.checkpoint_time is not None
        ],
    }


def _op_entry(run: Any) -> dict[str, Any]:
    duration = run.duration or 0
    rows_in, rows_out = run.input_rows or 0, run.output_rows or 0
    return {
        "name": run.operation_name,
        "idx": run.operation_idx,
        "duration": duration,
        "input_rows": rows_in,
        "output_rows": rows_out,
        "throughput": rows_in / duration if duration else 0,
        "reduction_ratio": (rows_in - rows_out) / rows_in if rows_in and run.output_rows else 0,
    }


def _process_list(config_path: str | None) -> list[dict[str, Any]] | None:
    import yaml

    if config_path is None:
        return None
    try:
        process = yaml.safe_load(Path(config_path).read_text()).get("process")
    except (OSError, yaml.YAMLError, AttributeError, UnicodeDecodeError):
        return None
    if not isinstance(process, list):
        return None
    ops = []
    for item in process:
        if isinstance(item, dict) and len(item) == 1:
            name, args = next(iter(item.items()))
            ops.append({"name": str(name), "config": args if isinstance(args, dict) else {}})
        elif isinstance(item, str):
            ops.append({"name": item, "config": {}})
    return ops


def list_running_jobs(base_dir: str = DEFAULT_BASE_DIR) -> list[dict[str, Any]]:
    """Every job under ``base_dir``, newest first, as Data-Juicer lists them:
    ``job_id``, ``status``, ``start_time``, ``processes`` (how many of its processes are
    alive) and ``work_dir``."""
    from dj_observe.jobs import find_job_dirs

    try:
        job_dirs = find_job_dirs(base_dir)
    except JobDirectoryError:
        return []
    jobs = []
    for job_dir in job_dirs:
        try:
            utils = JobUtils(job_dir.name, work_dir=job_dir)
            state = utils._state()
        except (OSError, JobDirectoryError):
            continue
        summary = utils.load_job_summary() or {}
        start = summary.get("start_time")
        if not _is_number(start):
            start = state.start_time if state.start_time is not None else state.first_event_time
        ids = utils.extract_process_thread_ids()["process_ids"]
        jobs.append(
            {
                "job_id": state.job_id or job_dir.name,
                "status": state.job_status().label,
                "start_time": start,
                "processes": len(utils.find_processes_by_ids(ids)),
                "work_dir": str(job_dir),
            }
        )
    return sorted(jobs, key=lambda job: job["start_time"] or 0, reverse=True)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
