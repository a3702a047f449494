"""dj-observe: observability for Data-Juicer-style data jobs.

The public names below are imported from their modules on first use (PEP 562), so that
``import dj_observe.<module>`` and the ``dj-observe`` command pay only for what they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dj_observe.lazy import lazy_names

if TYPE_CHECKING:
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

_MODULE_OF = {
    "Event": "events",
    "EventLogReader": "eventlog",
    "EventType": "events",
    "JobDirectoryError": "tracker",
    "JobSnapshot": "snapshot",
    "JobState": "state",
    "JobTracker": "tracker",
    "OperationStatus": "snapshot",
    "PartitionStatus": "snapshot",
    "ProcessingSnapshotAnalyzer": "snapshot",
    "ProcessingStatus": "snapshot",
    "ReadStats": "eventlog",
    "Status": "state",
    "create_snapshot": "snapshot",
    "find_event_logs": "eventlog",
    "parse_line": "events",
}
"""Each public name and the module (under ``dj_observe``) that defines it."""

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


__getattr__, __dir__ = lazy_names(__name__, _MODULE_OF)
