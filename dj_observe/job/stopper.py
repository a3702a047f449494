"""Stop a running job by the processes its event logs recorded (Data-Juicer's
``data_juicer.utils.job.stopper``, and ``dj-observe stop``).

Each process a log names gets a graceful ``SIGTERM``; one still alive after
``timeout`` seconds gets ``SIGKILL`` only with ``force``.  A process whose start
time shows it is not the job's (its pid was recycled after the log named it) and
this process itself are never signalled.  Nothing in the job directory is
changed but ``job_summary.json``'s status, as Data-Juicer does, so the job's logs
and checkpoints stay as they were and the job resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from dj_observe.job.common import DEFAULT_BASE_DIR, JobUtils, list_running_jobs
from dj_observe.tracker import JOB_SUMMARY

__all__ = ["JobStopper", "main", "stop_job"]

KILL_WAIT_SECONDS = 5.0
"""How long a process killed with ``SIGKILL`` is waited for."""


class JobStopper:
    """Stops one job (``work_dir``, or ``base_dir / job_id`` as in Data-Juicer)."""

    def __init__(
        self, job_id: str, base_dir: str = DEFAULT_BASE_DIR, *, work_dir: str | None = None
    ) -> None:
        self.job_utils = JobUtils(job_id, work_dir=work_dir, base_dir=base_dir)
        self.job_id = job_id
        self.work_dir = self.job_utils.work_dir

    def terminate_process_gracefully(self, proc: psutil.Process, timeout: int = 10) -> bool:
        """``SIGTERM``, then ``SIGKILL`` after ``timeout`` seconds (Data-Juicer's step for
        one process); whether it is gone."""
        try:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except psutil.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=KILL_WAIT_SECONDS)
        except psutil.NoSuchProcess:
            return True
        except (psutil.AccessDenied, psutil.TimeoutExpired):
            return False
        return True

    def cleanup_job_resources(self) -> None:
        """Mark ``job_summary.json`` (when there is one) ``stopped``, atomically."""
        summary = self.job_utils.load_job_summary()
        if summary is None:
            return
        summary.update(status="stopped", stop_time=time.time(), stop_reason="manual_stop")
        target = self.work_dir / JOB_SUMMARY
        try:
            fd, temporary = tempfile.mkstemp(dir=self.work_dir, prefix=f".{JOB_SUMMARY}.")
        except OSError:
            return  # a read-only job directory keeps its summary
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(summary, handle, indent=2, default=str)
            os.replace(temporary, target)
        except OSError:
            Path(temporary).unlink(missing_ok=True)

    def stop_job(self, force: bool = False, timeout: int = 30) -> dict[str, Any]:
        """Signal the job's live processes and wait for them.

        Returns Data-Juicer's keys (``job_id``, ``success``, ``processes_found``,
        ``processes_terminated``, ``threads_found``, ``threads_terminated``, ``errors``)
        and ``stopped`` / ``still_running`` (``{"pid", "name"}`` each).  ``success``:
        some process was stopped and none of the job's is left running.
        """
        ids = self.job_utils.extract_process_thread_ids()
        results: dict[str, Any] = {
            "job_id": self.job_id,
            "success": False,
            "processes_found": len(ids["process_ids"]),
            "processes_terminated": 0,
            "threads_found": len(ids["thread_ids"]),
            "threads_terminated": 0,
            "errors": [],
            "stopped": [],
            "still_running": [],
        }
        if not ids["process_ids"]:
            results["errors"].append("No process or thread IDs found in event logs")
            return results
        processes = self.job_utils.find_processes_by_ids(ids["process_ids"])
        names = {proc.pid: _name(proc) for proc in processes}
        for proc in processes:
            try:
                proc.terminate()
            except psutil.NoSuchProcess:
                continue
            except psutil.AccessDenied:
                results["errors"].append(f"Access denied when terminating process {proc.pid}")
        gone, alive = psutil.wait_procs(processes, timeout=timeout)
        if alive and force:
            for proc in alive:
                try:
                    proc.kill()
                except psutil.NoSuchProcess:
                    continue
                except psutil.AccessDenied:
                    results["errors"].append(f"Access denied when killing process {proc.pid}")
            killed, alive = psutil.wait_procs(alive, timeout=KILL_WAIT_SECONDS)
            gone += killed
        results["stopped"] = [{"pid": proc.pid, "name": names[proc.pid]} for proc in gone]
        results["still_running"] = [{"pid": proc.pid, "name": names[proc.pid]} for proc in alive]
        results["errors"] += [f"Failed to terminate process {proc.pid}" for proc in alive]
        results["processes_terminated"] = len(gone)
        results["threads_terminated"] = len(self.job_utils.find_threads_by_ids(ids["thread_ids"]))
        if gone:
            self.cleanup_job_resources()
        results["success"] = bool(gone) and not alive
        return results


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return "?"


def stop_job(
    job_id: str, base_dir: str = DEFAULT_BASE_DIR, force: bool = False, timeout: int = 30
) -> dict[str, Any]:
    """Stop a job in one call: ``JobStopper(job_id, base_dir).stop_job(force, timeout)``."""
    return JobStopper(job_id, base_dir).stop_job(force=force, timeout=timeout)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dj_observe.job.stopper <job_id> [--base-dir D] [--force] [--timeout S]
    [--list]``: 0 when the job was stopped (or listed), 1 otherwise."""
    parser = argparse.ArgumentParser(description="Stop a DataJuicer job by its event logs")
    parser.add_argument("job_id", nargs="?", help="Job ID to stop")
    parser.add_argument(
        "--base-dir", default=DEFAULT_BASE_DIR, help="Base directory of job outputs"
    )
    parser.add_argument("--force", action="store_true", help="SIGKILL what survives the timeout")
    parser.add_argument("--timeout", type=int, default=30, help="Seconds to wait after SIGTERM")
    parser.add_argument("--list", action="store_true", help="List all jobs")
    parser.add_argument("--verbose", action="store_true", help="Accepted, as in Data-Juicer")
    args = parser.parse_args(argv)
    if args.list:
        jobs = list_running_jobs(args.base_dir)
        for job in jobs:
            print(f"{job['job_id']} | Status: {job['status']} | Processes: {job['processes']}")
        if not jobs:
            print("No DataJuicer jobs found")
        return 0
    if not args.job_id:
        parser.error("Job ID is required unless using --list")
    try:
        result = stop_job(args.job_id, args.base_dir, force=args.force, timeout=args.timeout)
    except FileNotFoundError as exc:
        print(f"Error: {exc}")
        return 1
    if result["success"]:
        print(f"✅ Job {args.job_id} stopped successfully")
        print(f"   Terminated {result['processes_terminated']} processes")
        return 0
    print(f"⚠️  Job {args.job_id} may not have been fully stopped")
    if result["errors"]:
        print(f"   Errors: {result['errors']}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
