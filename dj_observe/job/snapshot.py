"""Data-Juicer's ``data_juicer.utils.job.snapshot``, answered by the one fold.

Switching is an import-prefix change: ``data_juicer.utils.job.snapshot`` ->
``dj_observe.job.snapshot``.  ``python -m dj_observe.job.snapshot <dir>
[--human-readable]`` prints the same document as ``dj-observe snapshot`` and exits
as Data-Juicer's does (0, or 1 on any error).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dj_observe import snapshot as _snapshot
from dj_observe.eventlog import find_event_logs
from dj_observe.events import event_from_dict
from dj_observe.job.common import iter_event_dicts
from dj_observe.snapshot import (
    JobSnapshot,
    OperationStatus,
    PartitionStatus,
    ProcessingStatus,
    operation_statuses,
    partition_statuses,
)
from dj_observe.state import JobState
from dj_observe.tracker import DAG_PLAN, JOB_SUMMARY, SideFile

__all__ = [
    "JobSnapshot",
    "OperationStatus",
    "PartitionStatus",
    "ProcessingSnapshotAnalyzer",
    "ProcessingStatus",
    "create_snapshot",
    "main",
]

_ENDED = (ProcessingStatus.COMPLETED, ProcessingStatus.FAILED)


class ProcessingSnapshotAnalyzer(_snapshot.ProcessingSnapshotAnalyzer):
    """Data-Juicer's analyzer: its loaders and analysis steps, and the fold's snapshot."""

    def __init__(
        self,
        work_dir: str | os.PathLike[str] | None = None,
        *,
        workers: int = 2,
        job_dir: str | os.PathLike[str] | None = None,
        cache: bool = False,
    ) -> None:
        super().__init__(work_dir, workers=workers, job_dir=job_dir, cache=cache)
        self.dag_file = self.work_dir / DAG_PLAN
        self.job_summary_file = self.work_dir / JOB_SUMMARY

    @property
    def events_file(self) -> Path:
        """The job's latest event log (``events.jsonl`` when there is none yet)."""
        logs = find_event_logs(self.work_dir)
        return logs[-1] if logs else self.work_dir / "events.jsonl"

    def load_events(self) -> list[dict[str, Any]]:
        """Every event of every log of the job, in write order, as dicts."""
        return list(iter_event_dicts(self.work_dir))

    def load_dag_plan(self) -> dict[str, Any]:
        """``dag_execution_plan.json`` as a dict, or ``{}``."""
        return SideFile.load(self.dag_file).data or {}

    def load_job_summary(self) -> dict[str, Any]:
        """``job_summary.json`` as a dict, or ``{}``."""
        return SideFile.load(self.job_summary_file).data or {}

    def analyze_events(
        self, events: Iterable[dict[str, Any]]
    ) -> tuple[dict[int, PartitionStatus], dict[str, OperationStatus]]:
        """Fold ``events`` (dicts, as :meth:`load_events` returns) into partition and op
        statuses; lines that are no event are skipped."""
        state = JobState()
        state.apply_all(event for event in map(_event, events) if event is not None)
        return partition_statuses(state), operation_statuses(state)

    def determine_overall_status(
        self,
        partition_statuses: dict[int, PartitionStatus],
        operation_statuses: dict[str, OperationStatus],
    ) -> ProcessingStatus:
        """The job's status from its partitions': failed once every partition ended and
        one failed, completed when all completed, in progress when any started."""
        counts = Counter(part.status for part in partition_statuses.values())
        total = len(partition_statuses)
        if not total:
            return ProcessingStatus.NOT_STARTED
        if counts[ProcessingStatus.COMPLETED] == total:
            return ProcessingStatus.COMPLETED
        if sum(counts[status] for status in _ENDED) == total:
            return ProcessingStatus.FAILED
        if counts[ProcessingStatus.NOT_STARTED] == total:
            return ProcessingStatus.NOT_STARTED
        return ProcessingStatus.IN_PROGRESS

    def calculate_statistics(
        self,
        partition_statuses: dict[int, PartitionStatus],
        operation_statuses: dict[str, OperationStatus],
    ) -> dict[str, int]:
        """Partition and op counts by status (a checkpointed op keeps its status and is
        counted in ``checkpointed_operations`` too)."""
        partitions = Counter(part.status for part in partition_statuses.values())
        operations = Counter(op.status for op in operation_statuses.values())
        return {
            "total_partitions": len(partition_statuses),
            "completed_partitions": partitions[ProcessingStatus.COMPLETED],
            "failed_partitions": partitions[ProcessingStatus.FAILED],
            "in_progress_partitions": partitions[ProcessingStatus.IN_PROGRESS],
            "total_operations": len(operation_statuses),
            "completed_operations": operations[ProcessingStatus.COMPLETED],
            "failed_operations": operations[ProcessingStatus.FAILED],
            "checkpointed_operations": sum(
                1 for op in operation_statuses.values() if op.checkpoint_time is not None
            ),
        }


def _event(data: Any) -> Any:
    return event_from_dict(data) if isinstance(data, dict) else None


def create_snapshot(
    work_dir: str | os.PathLike[str], detailed: bool = False, *, cache: bool = False
) -> JobSnapshot:
    """Snapshot a job directory in one call (``detailed`` is accepted, as in Data-Juicer)."""
    return ProcessingSnapshotAnalyzer(work_dir, cache=cache).generate_snapshot()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dj_observe.job.snapshot <work_dir> [--human-readable]``: 0, or 1 on error."""
    parser = argparse.ArgumentParser(description="Generate a Data-Juicer processing snapshot")
    parser.add_argument("work_dir", help="Path to the Data-Juicer work directory")
    parser.add_argument(
        "--human-readable",
        action="store_true",
        help="Output in human-readable format instead of JSON",
    )
    args = parser.parse_args(argv)
    if not os.path.exists(args.work_dir):
        print(f"Error: Work directory '{args.work_dir}' does not exist")
        return 1
    from dj_observe.cli import main as cli_main

    command = ["snapshot", args.work_dir] + (["--human-readable"] if args.human_readable else [])
    return 0 if cli_main(command) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
