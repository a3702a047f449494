"""Data-Juicer's ``default`` executor: each op's run measured in the driver, as it runs.

The default executor runs its ops one after another on a Hugging Face dataset
(``NestedDataset.process``); the whole job is one partition.  Each op's ``run`` is
timed and its rows counted around the call: ``op_start`` (rows in) when it begins,
``op_complete`` with its duration and rows out when it returns, ``op_failed`` with
the stack trace when it raises.  A fused op (``op_fusion``) is one run, under its
fused name.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from dj_observe.integrations.data_juicer.adapter import Adapter
from dj_observe.integrations.data_juicer.patching import wrap
from dj_observe.integrations.data_juicer.single_partition import (
    PARTITION,
    SinglePartitionWatch,
    guard_run,
)
from dj_observe.procstats import peak_rss_bytes

__all__ = ["DefaultWatch", "watch"]

_OP_CLASSES = ("OP", "Mapper", "Filter", "Deduplicator", "Selector", "Grouper", "Aggregator")
_active = threading.local()  # .runs: the ops of the NestedDataset.process call in progress
_monitored = threading.local()  # .active, .complete: an op run inside Monitor.monitor_func
_current: DefaultWatch | None = None


class DefaultWatch(SinglePartitionWatch):
    """Measures the op runs of one default executor's job."""

    raised_by: str | None = None

    def failure_type(self) -> str | None:
        return self.raised_by

    def measure(
        self, op: Any, idx: int, run: Callable[..., Any], args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        """Call ``run`` (the op's own), with its ``op_start`` before and its end after."""
        name = getattr(op, "_name", None) or type(op).__name__
        fields = {"partition_id": PARTITION, "operation_name": name, "operation_idx": idx}
        rows_in = _rows(args[0] if args else kwargs.get("dataset"))
        started = time.time()
        self._safely(self.emit, "op_start", timestamp=started, input_rows=rows_in, **fields)
        cpu = time.process_time()
        try:
            result = run(*args, **kwargs)
        except BaseException as exc:
            self.raised_by = type(exc).__name__
            self._safely(
                self.emit,
                "op_failed",
                status="failed",
                duration=time.time() - started,
                input_rows=rows_in,
                error_message=f"{type(exc).__name__}: {exc}",
                error_type=type(exc).__name__,
                stack_trace=traceback.format_exc(),
                **fields,
            )
            raise
        complete = {
            "status": "success",
            "duration": time.time() - started,
            "input_rows": rows_in,
            "output_rows": _rows(result),
            "metadata": {
                "cpu_seconds": round(time.process_time() - cpu, 6),
                "peak_rss_bytes": peak_rss_bytes(),
            },
            **fields,
        }
        if getattr(_monitored, "active", False):
            _monitored.complete = complete  # sent with Data-Juicer's monitor figures
        else:
            self._safely(self.emit, "op_complete", **complete)
        return result

    def monitored(self, complete: dict[str, Any], utilisation: Any) -> None:
        """The op's end, with what Data-Juicer's own monitor sampled while it ran."""
        figures = monitor_figures(utilisation)
        if figures:
            complete["metadata"]["monitor"] = figures
        self._safely(self.emit, "op_complete", **complete)

    def _safely(self, call: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        try:
            call(*args, **kwargs)
        except Exception as exc:
            self.adapter.failed(exc)


def watch(executor: Any, event_logger: Any, adapter: Adapter) -> DefaultWatch:
    """Measure ``executor``'s op runs from now on."""
    global _current
    from data_juicer.core import monitor
    from data_juicer.core.data import dj_dataset
    from data_juicer.ops import base_op

    wrap(dj_dataset.NestedDataset, "process", _wrap_process)
    wrap(monitor.Monitor, "monitor_func", _wrap_monitor_func)
    for name in _OP_CLASSES:
        wrap(getattr(base_op, name), "run", _wrap_run)
    _current = DefaultWatch(event_logger, adapter)
    guard_run(executor, _current)
    return _current


def _wrap_process(original: Callable[..., Any]) -> Callable[..., Any]:
    def process(self: Any, operators: Any, *args: Any, **kwargs: Any) -> Any:
        ops = operators if isinstance(operators, list) else [operators]
        outer = getattr(_active, "runs", None)
        _active.runs = {id(op): idx for idx, op in enumerate(ops or [])}
        try:
            return original(self, operators, *args, **kwargs)
        finally:
            _active.runs = outer

    return process


def _wrap_run(original: Callable[..., Any]) -> Callable[..., Any]:
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        runs = getattr(_active, "runs", None)
        watch = _current
        if watch is None or not runs or id(self) not in runs:
            return original(self, *args, **kwargs)
        idx = runs.pop(id(self))  # an op that calls its base class's run is measured once
        return watch.measure(self, idx, lambda *a, **k: original(self, *a, **k), args, kwargs)

    return run


def _wrap_monitor_func(original: Callable[..., Any]) -> Callable[..., Any]:
    def monitor_func(func: Any, args: Any = None, sample_interval: float = 0.5) -> Any:
        _monitored.active, _monitored.complete = True, None
        try:
            ret, utilisation = original(func, args, sample_interval)
        finally:
            _monitored.active = False
        complete, watch = _monitored.complete, _current
        if complete is not None and watch is not None:
            watch.monitored(complete, utilisation)
        return ret, utilisation

    return monitor_func


_MONITOR_FIELDS = {  # Data-Juicer's sample key -> ours (averaged and maxed over the op's run)
    "CPU util.": "cpu_utilization",
    "Mem. util.": "memory_utilization",
    "GPU util.": "gpu_utilization",
}


def monitor_figures(utilisation: Any) -> dict[str, float]:
    """Average and peak of the machine's CPU, memory and GPU use while the op ran, from
    the samples of Data-Juicer's ``Monitor`` (fractions of 1; GPUs pooled)."""
    samples = utilisation.get("resource") if isinstance(utilisation, dict) else None
    values: dict[str, list[float]] = {}
    for sample in samples if isinstance(samples, list) else []:
        for key, name in _MONITOR_FIELDS.items():
            value = sample.get(key) if isinstance(sample, dict) else None
            for number in value if isinstance(value, list) else [value]:
                if isinstance(number, (int, float)) and not isinstance(number, bool):
                    values.setdefault(name, []).append(float(number))
    figures = {}
    for name, numbers in values.items():
        figures[f"{name}_avg"] = round(sum(numbers) / len(numbers), 4)
        figures[f"{name}_max"] = round(max(numbers), 4)
    return figures


def _rows(dataset: Any) -> int | None:
    try:
        return len(dataset)
    except Exception:
        return None
