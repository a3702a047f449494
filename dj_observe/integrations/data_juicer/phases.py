"""The phases of a Data-Juicer job outside its ops, measured in the driver.

A real job spends much of its time before the first op and after the last: loading the
dataset, cutting it into partitions, writing checkpoints, exporting.  Each of these
Data-Juicer methods is timed around its call and becomes a ``phase_start`` /
``phase_complete`` pair (``metadata.phase``; a checkpoint write carries its partition):

===================================================  ====================
``DatasetBuilder.load_dataset``                      ``dataset_load``
``PartitionedRayExecutor._split_dataset_deterministic``  ``partitioning``
``CheckpointManager.save_ckpt``,
``RayCheckpointManager.save_checkpoint``             ``checkpoint_write``
``RayCheckpointManager.load_checkpoint``             ``checkpoint_load``
``Exporter.export``, ``RayExporter.export``          ``export``
===================================================  ====================
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any

from dj_observe.integrations.data_juicer.adapter import Adapter
from dj_observe.integrations.data_juicer.patching import wrap

__all__ = ["PHASES", "watch_phases"]

PHASES: list[tuple[str, str, str, str]] = [
    ("data_juicer.core.data.dataset_builder", "DatasetBuilder", "load_dataset", "dataset_load"),
    (
        "data_juicer.core.executor.ray_executor_partitioned",
        "PartitionedRayExecutor",
        "_split_dataset_deterministic",
        "partitioning",
    ),
    ("data_juicer.utils.ckpt_utils", "CheckpointManager", "save_ckpt", "checkpoint_write"),
    (
        "data_juicer.utils.ckpt_utils",
        "RayCheckpointManager",
        "save_checkpoint",
        "checkpoint_write",
    ),
    (
        "data_juicer.utils.ckpt_utils",
        "RayCheckpointManager",
        "load_checkpoint",
        "checkpoint_load",
    ),
    ("data_juicer.core.exporter", "Exporter", "export", "export"),
    ("data_juicer.core.ray_exporter", "RayExporter", "export", "export"),
]
"""(module, class, method, phase) for every phase measured."""

_job: tuple[Any, Adapter] | None = None  # the event logger and adapter of the current job


def watch_phases(event_logger: Any, adapter: Adapter) -> None:
    """Time the phases of the job that logs through ``event_logger`` from now on."""
    global _job
    _job = (event_logger, adapter)
    for module_name, class_name, method, phase in PHASES:
        try:
            owner = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):  # another Data-Juicer version: not this phase
            continue
        wrap(owner, method, _timed(phase))


def _timed(phase: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            job = _job
            if job is None:
                return original(self, *args, **kwargs)
            partition = kwargs.get("partition_id")
            if partition is None and phase.startswith("checkpoint_") and len(args) >= 4:
                partition = args[3]  # (dataset, op_idx, op_name, partition_id, ...)
            fields: dict[str, Any] = {"metadata": {"phase": phase}}
            if isinstance(partition, int):
                fields["partition_id"] = partition
            _emit(job, "phase_start", fields)
            try:
                result = original(self, *args, **kwargs)
            except BaseException as exc:
                _emit(
                    job,
                    "phase_complete",
                    {**fields, "status": "failed", "error_message": f"{type(exc).__name__}: {exc}"},
                )
                raise
            _emit(job, "phase_complete", fields)
            return result

        return timed

    return make


def _emit(job: tuple[Any, Adapter], event_type: str, fields: dict[str, Any]) -> None:
    event_logger, adapter = job
    try:
        record = {"event_type": event_type, "timestamp": time.time(), **fields}
        adapter.measured(event_logger, record, "driver")
    except Exception as exc:
        adapter.failed(exc)
