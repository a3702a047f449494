"""A drop-in for Data-Juicer's ``data_juicer.utils.job``: the same modules (``snapshot``,
``common``, ``monitor``, ``stopper``), names and signatures, answered by the one fold."""

from dj_observe.job.common import JobUtils, list_running_jobs
from dj_observe.job.snapshot import (
    JobSnapshot,
    OperationStatus,
    PartitionStatus,
    ProcessingSnapshotAnalyzer,
    ProcessingStatus,
    create_snapshot,
)

__all__ = [
    "JobSnapshot",
    "JobUtils",
    "OperationStatus",
    "PartitionStatus",
    "ProcessingSnapshotAnalyzer",
    "ProcessingStatus",
    "create_snapshot",
    "list_running_jobs",
]
