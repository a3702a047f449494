"""Observe Data-Juicer's own executors, with the real numbers of each op.

Data-Juicer (``py-data-juicer``) writes each event through
``EventLogger.log_event`` in its driver process.  :func:`instrument` wraps that
method: Data-Juicer first writes its files exactly as before, then the event is
handed to one :class:`~dj_observe.hook.ObservabilityHook` per process, whose
metrics and spans are configured like any hook's (``DJ_OBSERVE_*`` and
``OTEL_*`` environment variables, or the ``config`` argument).

Data-Juicer's events do not say how long each op took or how many rows it kept
(a lazy Ray plan logs every ``op_start`` first and splits the time evenly), so
each executor is also measured where its ops run, one module each:
:mod:`.default` (each op's ``run`` in the driver), :mod:`.ray` (each op's Ray Data
functions in the workers) and :mod:`.ray_partitioned` (the same, per partition).
The measured events go to ``events_<ts>.measured.jsonl`` beside Data-Juicer's
``events_<ts>.jsonl``; the fold prefers them to Data-Juicer's op events.

One line, in Python, before the executor runs::

    from dj_observe.integrations.data_juicer import instrument; instrument()

or around the unchanged console script (see ``dj-observe instrument``)::

    dj-observe instrument -- dj-process --config my.yaml

Forwarding and measuring are fail-open: an error is counted in
``dj_observe_sink_errors_total`` (sink ``data_juicer_adapter``); Data-Juicer never
sees it.  The hook is closed at interpreter exit (spans flushed, a last push to
the Pushgateway, the /metrics endpoint kept up ``linger`` seconds).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dj_observe.config import ObservabilityConfig
from dj_observe.hook import ObservabilityHook
from dj_observe.integrations.data_juicer.adapter import (
    Adapter,
    job_info,
    original_start,
    record_of,
)
from dj_observe.integrations.data_juicer.patching import unwrap_all, wrap
from dj_observe.integrations.data_juicer.phases import watch_phases

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
AUTOLOAD_DIR = Path(__file__).parent.parent / "autoload"
"""Holds the ``sitecustomize`` that ``dj-observe instrument`` puts first on ``PYTHONPATH``."""


class DataJuicerNotInstalled(RuntimeError):
    """Data-Juicer cannot be imported."""


_adapter: Adapter | None = None


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
        module = importlib.import_module(MODULE)
    except ImportError as exc:
        raise DataJuicerNotInstalled(
            f"Data-Juicer is not installed ({exc}); pip install 'dj-observe[data-juicer]'"
        ) from exc
    if _adapter is None:
        _adapter = Adapter(config)
    patch(module)
    return _adapter.hook


def patch(module: Any) -> None:
    """Wrap ``EventLogger.log_event`` and ``EventLoggingMixin._setup_event_logging``."""
    global _adapter
    if _adapter is None:
        _adapter = Adapter(None)
    wrap(module.EventLogger, "log_event", _wrap_log_event)
    wrap(module.EventLoggingMixin, "_setup_event_logging", _wrap_setup)


def uninstrument() -> None:
    """Undo :func:`instrument` (events are no longer forwarded; an open hook is closed)."""
    global _adapter
    if MODULE not in sys.modules:
        importlib.import_module(MODULE)
    unwrap_all()
    if _adapter is not None:
        _adapter.close()
    _adapter = None


def _wrap_log_event(original: Callable[..., Any]) -> Callable[..., Any]:
    def log_event(self: Any, event: Any) -> Any:
        result = original(self, event)  # Data-Juicer's own files first, unchanged
        if _adapter is not None:
            _adapter.forward(self, event)
        return result

    return log_event


def _wrap_setup(original: Callable[..., Any]) -> Callable[..., Any]:
    def _setup_event_logging(self: Any) -> Any:
        result = original(self)
        event_logger = getattr(self, "event_logger", None)
        if event_logger is not None and _adapter is not None:
            cfg = getattr(self, "cfg", None)
            event_logger.dj_observe_pipeline = getattr(cfg, "project_name", None)
            _watch(self, event_logger, _adapter)
        return result

    return _setup_event_logging


_EXECUTOR_MODULES = {
    "DefaultExecutor": "default",
    "RayExecutor": "ray",
    "PartitionedRayExecutor": "ray_partitioned",
}


def _watch(executor: Any, event_logger: Any, adapter: Adapter) -> None:
    """Measure ``executor``'s ops with the module for its kind (fail-open)."""
    kinds = [_EXECUTOR_MODULES.get(cls.__name__) for cls in type(executor).__mro__]
    kind = next((name for name in kinds if name), None)
    if kind is None:
        return
    try:
        info = job_info(getattr(executor, "cfg", None), original_start(event_logger))
        adapter.measured(event_logger, info, "driver")
        watch_phases(event_logger, adapter)
        module = importlib.import_module(f"{__name__}.{kind}")
        adapter.watch(event_logger, module.watch(executor, event_logger, adapter))
    except Exception as exc:
        adapter.failed(exc)
