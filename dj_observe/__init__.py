"""dj-observe: observability for Data-Juicer-style data jobs.

The public names below are imported from their modules on first use (PEP 562), so that
``import dj_observe.<module>`` and the ``dj-observe`` command pay only for what they use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})
