"""Data-Juicer's ``data_juicer.utils.job.monitor``: a job's progress, from the one fold.

``JobProgressMonitor(job_id, base_dir)`` with ``display_progress(detailed)`` and
``get_progress_data()``, ``show_job_progress(...)`` and ``main()``; the numbers are
those ``dj-observe watch`` shows (``dj-observe watch`` is the live view).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import IO, Any

from dj_observe.job.common import DEFAULT_BASE_DIR, JobUtils

__all__ = ["JobProgressMonitor", "main", "show_job_progress"]

_CONTROL = {code: f"\\x{code:02x}" for code in [*range(32), 127]}
_ICONS = {"completed": "✅", "processing": "🔄", "failed": "❌", "unknown": "❓"}


def _safe(value: Any) -> str:
    """A value for the terminal: control characters shown escaped, never interpreted."""
    return str(value).translate(_CONTROL)


class JobProgressMonitor:
    """Progress of one job (``work_dir``, or ``base_dir / job_id`` as in Data-Juicer)."""

    def __init__(
        self, job_id: str, base_dir: str = DEFAULT_BASE_DIR, *, work_dir: str | None = None
    ) -> None:
        self.job_utils = JobUtils(job_id, work_dir=work_dir, base_dir=base_dir)
        self.job_id = job_id
        self.work_dir = self.job_utils.work_dir

    def get_progress_data(self) -> dict[str, Any]:
        """``job_id``, ``job_summary``, ``dataset_mapping``, ``partition_status``,
        ``overall_progress`` (as Data-Juicer returns them)."""
        return {
            "job_id": self.job_id,
            "job_summary": self.job_utils.load_job_summary(),
            "dataset_mapping": self.job_utils.load_dataset_mapping(),
            "partition_status": self.job_utils.get_partition_status(),
            "overall_progress": self.job_utils.calculate_overall_progress(),
        }

    def display_progress(self, detailed: bool = False, stream: IO[str] | None = None) -> None:
        """Print the job's overview, progress, partitions and checkpoints."""
        out = stream or sys.stdout
        data = self.get_progress_data()
        summary, mapping = data["job_summary"] or {}, data["dataset_mapping"]
        partitions, overall = data["partition_status"], data["overall_progress"]
        lines = [
            "=" * 80,
            "DataJuicer Job Progress Monitor",
            f"Job ID: {_safe(self.job_id)}",
            "=" * 80,
            "",
            "📊 JOB OVERVIEW",
            f"   Status: {_safe(overall['job_status']).upper()}",
            f"   Dataset: {_safe(mapping.get('original_dataset_path', 'Unknown'))}",
        ]
        start = summary.get("start_time")
        if isinstance(start, (int, float)):
            lines.append(f"   Start Time: {datetime.fromtimestamp(start):%Y-%m-%d %H:%M:%S}")
        lines += [
            "",
            "🎯 OVERALL PROGRESS",
            f"   Progress: {overall['progress_percentage']:.1f}% "
            f"({overall['completed_partitions']}/{overall['total_partitions']} partitions)",
            f"   Status: {overall['completed_partitions']} completed, "
            f"{overall['processing_partitions']} processing, {overall['failed_partitions']} failed",
            f"   Samples: {overall['processed_samples']:,}/{overall['total_samples']:,}",
        ]
        if overall["estimated_remaining_seconds"]:
            minutes = overall["estimated_remaining_seconds"] / 60
            lines.append(f"   Estimated Time Remaining: {minutes:.1f} minutes")
        lines += ["", "📦 PARTITION STATUS"]
        for pid, part in sorted(partitions.items()):
            icon = _ICONS.get(part["status"], "❓")
            lines.append(f"   Partition {pid:2d}: {icon} {part['status'].upper()}")
            lines.append(f"              Samples: {part['sample_count']:,}")
            if part["current_op"]:
                current = part["current_op"]
                lines.append(
                    f"              Current: {_safe(current['name'])} (op {current['idx']})"
                )
            if part["completed_ops"]:
                lines.append(f"              Completed: {len(part['completed_ops'])} operations")
            if part["checkpoints"]:
                lines.append(f"              Checkpoints: {len(part['checkpoints'])} saved")
            if part["error_message"]:
                lines.append(f"              Error: {_safe(part['error_message'])}")
        if detailed:
            lines += ["", "🔧 OPERATION DETAILS"]
            for pid, part in sorted(partitions.items()):
                if part["completed_ops"]:
                    lines.append(f"   Partition {pid}:")
                for op in part["completed_ops"]:
                    lines.append(
                        f"     {_safe(op['name']):25s} | Duration: {op['duration']:6.1f}s | "
                        f"Throughput: {op['throughput']:6.0f} rows/s | "
                        f"Reduction: {op['reduction_ratio'] * 100:5.2f}%"
                    )
        total_checkpoints = sum(len(part["checkpoints"]) for part in partitions.values())
        lines += ["", "💾 CHECKPOINT SUMMARY", f"   Total Checkpoints: {total_checkpoints}"]
        lines += ["", f"💡 To stop this job: dj-observe stop {_safe(self.work_dir)}", "=" * 80]
        print("\n".join(lines), file=out)


def show_job_progress(
    job_id: str, base_dir: str = DEFAULT_BASE_DIR, detailed: bool = False
) -> dict[str, Any]:
    """Print a job's progress and return :meth:`JobProgressMonitor.get_progress_data`."""
    monitor = JobProgressMonitor(job_id, base_dir)
    monitor.display_progress(detailed)
    return monitor.get_progress_data()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dj_observe.job.monitor <job_id> [--base-dir D] [--detailed] [--watch]``."""
    parser = argparse.ArgumentParser(description="Monitor DataJuicer job progress")
    parser.add_argument("job_id", help="Job ID to monitor")
    parser.add_argument(
        "--base-dir", default=DEFAULT_BASE_DIR, help="Base directory of job outputs"
    )
    parser.add_argument("--detailed", action="store_true", help="Show every completed op")
    parser.add_argument("--watch", action="store_true", help="Refresh until interrupted")
    parser.add_argument("--interval", type=int, default=10, help="Seconds between refreshes")
    args = parser.parse_args(argv)
    try:
        monitor = JobProgressMonitor(args.job_id, args.base_dir)
        if not args.watch:
            monitor.display_progress(args.detailed)
            return 0
        while True:
            if sys.stdout.isatty():
                print("\x1b[2J\x1b[H", end="")
            monitor.display_progress(args.detailed)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        print("\nStopped watching.")
        return 0
    except Exception as exc:  # one line, never a traceback
        print(f"Error: {_safe(exc)}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
