"""Data-Juicer's ``ray_partitioned`` executor: each op measured per partition, in the workers.

The executor runs each partition in a driver thread of its own
(``_process_with_checkpointing``) as lazy Ray Data plans, one per checkpoint
group, and logs a group's ``op_start``s before it runs and its ``op_complete``s
(the group's time split evenly) after.  The partition's thread is known while it
builds its plans, so every op run is measured in the workers exactly as in
:mod:`.ray`, and the group's own events are replaced by the measured ones.  A
shared GPU execution group (several partitions in one plan,
``_process_execution_group_with_checkpointing``) is left as Data-Juicer times it:
its runs stay group-timed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dj_observe.integrations.data_juicer.adapter import Adapter
from dj_observe.integrations.data_juicer.patching import wrap
from dj_observe.integrations.data_juicer.ray import RayMeasurer, measure, set_partition

__all__ = ["watch"]


def watch(executor: Any, event_logger: Any, adapter: Adapter) -> RayMeasurer:
    """Measure ``executor``'s op runs from now on, partition by partition."""
    from data_juicer.core.executor import ray_executor_partitioned as module

    wrap(module.PartitionedRayExecutor, "_process_with_checkpointing", _wrap_partition)
    return measure(executor, event_logger, adapter)


def _wrap_partition(original: Callable[..., Any]) -> Callable[..., Any]:
    def _process_with_checkpointing(
        self: Any, dataset: Any, partition_id: int, *args: Any, **kwargs: Any
    ) -> Any:
        set_partition(partition_id)
        try:
            return original(self, dataset, partition_id, *args, **kwargs)
        finally:
            set_partition(None)

    return _process_with_checkpointing
