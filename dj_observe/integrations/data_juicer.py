"""Observe Data-Juicer's own executors: every event they log also reaches dj-observe.

Data-Juicer (``py-data-juicer``) writes each event through
``EventLogger.log_event`` in its driver process.  :func:`instrument` wraps that
method: Data-Juicer first writes its files exactly as before, then the event is
handed to one :class:`~dj_observe.hook.ObservabilityHook` per process, whose
metrics and spans are configured like any hook's (``DJ_OBSERVE_*`` and
``OTEL_*`` environment variables, or the ``config`` argument).  The hook's own
event log is off: Data-Juicer's ``events_<ts>.jsonl`` stays the record.

One line, in Python, before the executor runs::

    from dj_observe.integrations.data_juicer import instrument; instrument()

or around the unchanged console script (see ``dj-observe instrument``)::

    dj-observe instrument -- dj-process --config my.yaml

Forwarding is fail-open: an error is counted in ``dj_observe_sink_errors_total``
(sink ``data_juicer_adapter``) and logged once a minute at most; Data-Juicer
never sees it.  The hook is closed at interpreter exit (spans flushed, a last
push to the Pushgateway, the /metrics endpoint kept up ``linger`` seconds).
"""

from __future__ import annotations

import atexit
import dataclasses
import enum
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dj_observe.config import ObservabilityConfig
from dj_observe.hook import ObservabilityHook, announce

__all__ = [
    "AUTOLOAD_DIR",
    "ENABLE_VARIABLE",
    "MODULE",
    "DataJuicerNotInstalled",
    "instrument",
    "patch",
    "record_of",
    "uninstrument",
]

MODULE = "data_juicer.core.executor.event_logging_mixin"
"""The Data-Juicer module that holds ``EventLogger`` and ``EventLoggingMixin``."""
ENABLE_VARIABLE = "DJ_OBSERVE_DATA_JUICER"
"""Set to ``1`` (with ``dj-observe instrument``'s autoload directory on ``PYTHONPATH``)
to instrument every Python process that imports Data-Juicer."""
AUTOLOAD_DIR = Path(__file__).with_name("autoload")
"""Holds the ``sitecustomize`` that ``dj-observe instrument`` puts first on ``PYTHONPATH``."""
_SINK = "data_juicer_adapter"
_ORIGINAL = "__dj_observe_original__"


class DataJuicerNotInstalled(RuntimeError):
    """Data-Juicer cannot be imported."""


class _Adapter:
    """The process's one hook, created on the first event."""

    def __init__(self, config: ObservabilityConfig | Mapping[str, Any] | None) -> None:
        self.config = config
        self.hook: ObservabilityHook | None = None
        self.lock = threading.Lock()

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
                # Data-Juicer writes its own log; the sinks run in this process.
                self.hook = ObservabilityHook(
                    dataclasses.replace(config, event_log=False, sidecar=False)
                )
                atexit.register(self.hook.close)
                where = "; ".join(self.hook.destinations()) or "no metrics or traces configured"
                announce(f"observing Data-Juicer job {self.hook.job_id or '(no id)'}: {where}")
            return self.hook

    def forward(self, event_logger: Any, event: Any) -> None:
        try:
            hook = self.hook_for(event_logger)
        except Exception as exc:  # a bad configuration: say so once, never break the job
            _warn_once(exc)
            return
        try:
            hook.emit(record_of(event))
        except Exception as exc:
            hook.stats.sink_failed(_SINK, exc)


_adapter: _Adapter | None = None
_warned = False


def _warn_once(exc: Exception) -> None:
    global _warned
    if not _warned:
        _warned = True
        from loguru import logger

        logger.warning("dj-observe: Data-Juicer events are not observed: {}", exc)


def record_of(event: Any) -> dict[str, Any]:
    """A Data-Juicer ``Event`` as the line it writes: non-null fields, enums as values."""
    return {
        key: value.value if isinstance(value, enum.Enum) else value
        for key, value in vars(event).items()
        if value is not None
    }


def instrument(
    config: ObservabilityConfig | Mapping[str, Any] | None = None,
) -> ObservabilityHook | None:
    """Route every Data-Juicer event in this process through dj-observe's sinks.

    Idempotent: the first call's ``config`` is the one used.  Returns the hook if
    one was already made (it is made on the first event, in the job's directory).
    Raises :class:`DataJuicerNotInstalled` if Data-Juicer cannot be imported.
    """
    global _adapter
    try:
        import importlib

        module = importlib.import_module(MODULE)
    except ImportError as exc:
        raise DataJuicerNotInstalled(
            f"Data-Juicer is not installed ({exc}); pip install 'dj-observe[data-juicer]'"
        ) from exc
    if _adapter is None:
        _adapter = _Adapter(config)
    patch(module)
    return _adapter.hook


def patch(module: Any) -> None:
    """Wrap ``EventLogger.log_event`` and ``EventLoggingMixin._setup_event_logging``."""
    global _adapter
    if _adapter is None:
        _adapter = _Adapter(None)
    logger_class, mixin = module.EventLogger, module.EventLoggingMixin
    if not hasattr(logger_class.log_event, _ORIGINAL):
        logger_class.log_event = _wrap_log_event(logger_class.log_event)
    if not hasattr(mixin._setup_event_logging, _ORIGINAL):
        mixin._setup_event_logging = _wrap_setup(mixin._setup_event_logging)


def uninstrument() -> None:
    """Undo :func:`instrument` (events are no longer forwarded; an open hook is closed)."""
    global _adapter
    import importlib
    import sys

    module = sys.modules.get(MODULE) or importlib.import_module(MODULE)
    for owner, name in (
        (module.EventLogger, "log_event"),
        (module.EventLoggingMixin, "_setup_event_logging"),
    ):
        original = getattr(getattr(owner, name), _ORIGINAL, None)
        if original is not None:
            setattr(owner, name, original)
    if _adapter is not None and _adapter.hook is not None:
        _adapter.hook.close()
    _adapter = None


def _wrap_log_event(original: Callable[..., Any]) -> Callable[..., Any]:
    def log_event(self: Any, event: Any) -> Any:
        result = original(self, event)  # Data-Juicer's own files first, unchanged
        if _adapter is not None:
            _adapter.forward(self, event)
        return result

    setattr(log_event, _ORIGINAL, original)
    return log_event


def _wrap_setup(original: Callable[..., Any]) -> Callable[..., Any]:
    def _setup_event_logging(self: Any) -> Any:
        result = original(self)
        event_logger = getattr(self, "event_logger", None)
        if event_logger is not None:  # the pipeline name labels the job's metrics
            event_logger.dj_observe_pipeline = getattr(
                getattr(self, "cfg", None), "project_name", None
            )
        return result

    setattr(_setup_event_logging, _ORIGINAL, original)
    return _setup_event_logging
