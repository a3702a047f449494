"""Executors that run the whole dataset at once: the job is one partition, 0.

Data-Juicer's ``default`` and ``ray`` executors log no partition events; a measured
``partition_start`` after ``job_start`` and its end before the job's end give the
job's op runs the partition every view expects.
"""

from __future__ import annotations

from typing import Any

from dj_observe.integrations.data_juicer.adapter import Adapter

__all__ = ["PARTITION", "SinglePartitionWatch"]

PARTITION = 0


class SinglePartitionWatch:
    """Brackets the job's op runs with partition 0's start and end."""

    source = "driver"

    def __init__(self, event_logger: Any, adapter: Adapter) -> None:
        self.event_logger = event_logger
        self.adapter = adapter

    def emit(self, event_type: str, **fields: Any) -> None:
        self.adapter.measured(self.event_logger, {"event_type": event_type, **fields}, self.source)

    def before(self, record: dict[str, Any]) -> None:
        kind = record.get("event_type")
        if kind == "job_complete":
            self.emit("partition_complete", partition_id=PARTITION)
        elif kind == "job_failed":
            self.emit(
                "partition_failed",
                partition_id=PARTITION,
                status="failed",
                error_message=record.get("error_message") or record.get("message"),
            )

    def after(self, record: dict[str, Any]) -> None:
        if record.get("event_type") == "job_start":
            self.emit("partition_start", partition_id=PARTITION)
