"""Executors that run the whole dataset at once: the job is one partition, 0.

Data-Juicer's ``default`` and ``ray`` executors log no partition events; a measured
``partition_start`` after ``job_start`` and its end before the job's end give the
job's op runs the partition every view expects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dj_observe.integrations.data_juicer.adapter import Adapter
from dj_observe.integrations.data_juicer.patching import wrap

__all__ = ["PARTITION", "SinglePartitionWatch", "guard_run"]

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
                error_type=self.failure_type() or record.get("error_type"),
            )

    def after(self, record: dict[str, Any]) -> None:
        if record.get("event_type") == "job_start":
            self.emit("partition_start", partition_id=PARTITION)

    def failure_type(self) -> str | None:
        """The exception class of the op that raised, as measured (``None``: not known)."""
        return None

    def raised(self, exc: BaseException) -> None:
        """The executor's ``run`` raised: Data-Juicer logs no end, so the partition fails."""
        self.before(
            {
                "event_type": "job_failed",
                "error_message": f"{type(exc).__name__}: {exc}",
                "error_type": type(exc).__name__,
            }
        )


_current: SinglePartitionWatch | None = None


def guard_run(executor: Any, watch: SinglePartitionWatch) -> None:
    """Let ``watch`` see an exception that ends ``executor.run`` (it is re-raised as is)."""
    global _current
    _current = watch
    wrap(type(executor), "run", _wrap_run)


def _wrap_run(original: Callable[..., Any]) -> Callable[..., Any]:
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except BaseException as exc:
            watch = _current
            if watch is not None:
                try:
                    watch.raised(exc)
                except Exception as error:
                    watch.adapter.failed(error)
            raise

    return run
