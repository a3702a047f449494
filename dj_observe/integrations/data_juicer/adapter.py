"""The process's one hook, and the route of every Data-Juicer event into it.

Data-Juicer's own events are *observed* (folded and sent to the sinks; its own
``events_<ts>.jsonl`` stays their record).  The events dj-observe measures itself
are *emitted*: written to ``events_<ts>.measured.jsonl`` beside Data-Juicer's file,
marked ``"measured"``, then folded, so that an offline snapshot of the directory
reads both files and agrees with what the live metrics showed.
"""

from __future__ import annotations

import atexit
import dataclasses
import enum
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from dj_observe.config import ObservabilityConfig
from dj_observe.eventlog import find_event_logs, first_job_start
from dj_observe.hook import ObservabilityHook, announce

__all__ = [
    "Adapter",
    "ExecutorWatch",
    "job_info",
    "measured_log_path",
    "original_start",
    "record_of",
]

MEASURED_SUFFIX = ".measured.jsonl"
"""How the name of a log of measured events ends."""

SINK = "data_juicer_adapter"
"""The self-metric ``sink`` label of a forwarding error."""


class ExecutorWatch(Protocol):
    """What an executor module adds around Data-Juicer's events: the measured ones."""

    def before(self, record: dict[str, Any]) -> None:
        """Called with each Data-Juicer event before it is observed."""

    def after(self, record: dict[str, Any]) -> None:
        """Called with each Data-Juicer event after it was observed."""


def record_of(event: Any) -> dict[str, Any]:
    """A Data-Juicer ``Event`` as the line it writes: non-null fields, enums as values."""
    return {
        key: value.value if isinstance(value, enum.Enum) else value
        for key, value in vars(event).items()
        if value is not None
    }


def job_info(cfg: Any, original_start: float | None = None) -> dict[str, Any]:
    """What an executor's configuration says of its job, as a ``job_info`` event's fields:
    the pipeline (``project_name``), executor, checkpoint strategy and the ops in order;
    ``original_start``: when the job this run resumes first started."""
    checkpoint = _field(cfg, "checkpoint")
    strategy = _field(checkpoint, "strategy")
    if strategy is None and _field(cfg, "use_checkpoint"):
        strategy = "every_op"  # the default executor checkpoints after every op
    operations = []
    for entry in _field(cfg, "process") or []:
        name = next(iter(entry), None) if isinstance(entry, Mapping) else entry
        if isinstance(name, str):
            operations.append(name)
    metadata = {
        "pipeline": _field(cfg, "project_name"),
        "executor_type": _field(cfg, "executor_type"),
        "checkpoint_strategy": getattr(strategy, "value", strategy),
        "operations": operations or None,
        "original_start_time": original_start,
    }
    return {
        "event_type": "job_info",
        "metadata": {key: value for key, value in metadata.items() if value is not None},
    }


def original_start(event_logger: Any) -> float | None:
    """When the job that ``event_logger``'s run resumes first started: the first
    ``job_start`` of the job directory's earlier logs (``None`` for a new job)."""
    log = getattr(event_logger, "jsonl_file", None)
    if log is None:  # another Data-Juicer version
        return None
    current = Path(log)
    try:
        logs = find_event_logs(current.parent)
    except OSError:
        return None
    earlier = [path for path in logs if path != current and not _is_measured_log(path)]
    starts = [start for start in map(first_job_start, earlier) if start is not None]
    return min(starts, default=None)


def _field(owner: Any, name: str) -> Any:
    if isinstance(owner, Mapping):
        return owner.get(name)
    return getattr(owner, name, None)


def measured_log_path(data_juicer_log: Path) -> Path:
    """Where the measured events of the run that writes ``data_juicer_log`` go."""
    return data_juicer_log.with_name(f"{data_juicer_log.stem}{MEASURED_SUFFIX}")


def _is_measured_log(path: Path) -> bool:
    return path.name.endswith(MEASURED_SUFFIX)


class Adapter:
    """The process's one hook (made on the first event, in the job's directory) and the
    executor watches that measure what Data-Juicer's events leave out."""

    def __init__(self, config: ObservabilityConfig | Mapping[str, Any] | None) -> None:
        self.config = config
        self.hook: ObservabilityHook | None = None
        self.lock = threading.Lock()
        self.watches: dict[int, ExecutorWatch] = {}  # id(event logger) -> its executor's
        self._warned = False

    def hook_for(self, event_logger: Any) -> ObservabilityHook:
        with self.lock:
            if self.hook is None:
                config = self.config
                if not isinstance(config, ObservabilityConfig):
                    config = ObservabilityConfig.from_dict(
                        config,
                        work_dir=str(event_logger.jsonl_dir),
                        job_id=getattr(event_logger, "job_id", None),
                        pipeline=getattr(event_logger, "dj_observe_pipeline", None),
                    )
                # Data-Juicer's events are in its own log; this hook's log holds the
                # measured ones only, and the sinks run in this process.
                self.hook = ObservabilityHook(
                    dataclasses.replace(
                        config,
                        event_log=True,
                        event_log_path=str(measured_log_path(Path(event_logger.jsonl_file))),
                        sidecar=False,
                    )
                )
                atexit.register(self.hook.close)
                where = "; ".join(self.hook.destinations()) or "no metrics or traces configured"
                announce(f"observing Data-Juicer job {self.hook.job_id or '(no id)'}: {where}")
            return self.hook

    def watch(self, event_logger: Any, watch: ExecutorWatch) -> None:
        """Measure the executor that logs through ``event_logger`` with ``watch``."""
        self.watches[id(event_logger)] = watch

    def forward(self, event_logger: Any, event: Any) -> None:
        """One of Data-Juicer's events, with what its executor's watch measured around it."""
        hook = self._hook(event_logger)
        if hook is None:
            return
        watch = self.watches.get(id(event_logger))
        try:
            record = record_of(event)
            if watch is not None:
                watch.before(record)
            hook.observe(record)
            if watch is not None:
                watch.after(record)
        except Exception as exc:
            hook.stats.sink_failed(SINK, exc)

    def measured(self, event_logger: Any, record: dict[str, Any], source: str) -> None:
        """An event dj-observe measured (``source``: ``"driver"`` or ``"workers"``)."""
        hook = self._hook(event_logger)
        if hook is None:
            return
        try:
            hook.emit({**record, "job_id": event_logger.job_id, "measured": source})
        except Exception as exc:
            hook.stats.sink_failed(SINK, exc)

    def failed(self, exc: Exception) -> None:
        """A measurement that went wrong: counted, never raised into Data-Juicer."""
        if self.hook is not None:
            self.hook.stats.sink_failed(SINK, exc)

    def close(self) -> None:
        if self.hook is not None:
            self.hook.close()

    def _hook(self, event_logger: Any) -> ObservabilityHook | None:
        try:
            return self.hook_for(event_logger)
        except Exception as exc:  # a bad configuration: say so once, never break the job
            if not self._warned:
                self._warned = True
                from loguru import logger

                logger.warning("dj-observe: Data-Juicer events are not observed: {}", exc)
            return None
