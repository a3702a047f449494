"""dj-observe: observability for Data-Juicer-style data jobs."""

from dj_observe.eventlog import EventLogReader, ReadStats, find_event_logs
from dj_observe.events import Event, EventType, parse_line
from dj_observe.snapshot import (
    JobSnapshot,
    OperationStatus,
    PartitionStatus,
    ProcessingSnapshotAnalyzer,
    ProcessingStatus,
    create_snapshot,
)
from dj_observe.state import JobState, Status
from dj_observe.tracker import JobDirectoryError, JobTracker

__version__ = "0.1.0"

__all__ = [
    "Event",
    "EventLogReader",
    "EventType",
    "JobDirectoryError",
    "JobSnapshot",
    "JobState",
    "JobTracker",
    "OperationStatus",
    "PartitionStatus",
    "ProcessingSnapshotAnalyzer",
    "ProcessingStatus",
    "ReadStats",
    "Status",
    "__version__",
    "create_snapshot",
    "find_event_logs",
    "parse_line",
]
