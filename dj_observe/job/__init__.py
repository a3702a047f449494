"""A drop-in for Data-Juicer's ``data_juicer.utils.job``: the same modules (``snapshot``,
``common``, ``monitor``, ``stopper``), names and signatures, answered by the one fold.

The names below are imported from their modules on first use, so that
``python -m dj_observe.job.snapshot`` runs a module the package has not imported yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dj_observe.lazy import lazy_names

if TYPE_CHECKING:
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

_MODULE_OF = {
    "JobSnapshot": "snapshot",
    "JobUtils": "common",
    "OperationStatus": "snapshot",
    "PartitionStatus": "snapshot",
    "ProcessingSnapshotAnalyzer": "snapshot",
    "ProcessingStatus": "snapshot",
    "create_snapshot": "snapshot",
    "list_running_jobs": "common",
}
"""Each public name and the module (under ``dj_observe.job``) that defines it."""

__getattr__, __dir__ = lazy_names(__name__, _MODULE_OF)
