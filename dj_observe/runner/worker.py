"""What runs inside a Ray worker: one partition through one segment of the pipeline.

A segment is a run of ops between two global ops (a global op, such as the
exact document deduplicator, needs every partition and is the driver's
convergence point).  The task is a Ray *streaming generator*: it yields each
event as it happens (with the worker's own clock, pid and thread), so the
driver's hook sees them while partitions run, and yields a :class:`SegmentResult`
last.  Each op's duration and input/output rows are measured where it runs;
checkpoints are Parquet files written atomically.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dj_observe.procstats import peak_rss_bytes
from dj_observe.runner.ops import GlobalOp, build_global_op, build_op

__all__ = ["SegmentResult", "SegmentTask", "checkpoint_path", "run_segment"]

MAX_TRACE_CHARS = 16_000


@dataclass(frozen=True)
class SegmentTask:
    """One partition's share of one segment."""

    partition_id: int
    source: str
    """Parquet file with the rows to start from (the partition, a checkpoint or a stage)."""
    ops: list[tuple[int, str, dict[str, Any]]]
    """``(pipeline index, op name, arguments)``; a global op may only come first."""
    text_key: str
    checkpoint_dir: str
    checkpoint_after: list[int]
    """Pipeline indices after which a checkpoint is saved."""
    output: str
    keep_mask: list[bool] | None = None
    """For a segment that starts with a global op: which rows the driver decided to keep."""
    fingerprint_output: bool = False
    """Return the fingerprints of the output rows (the next segment starts with a dedup)."""
    fingerprint_op: tuple[str, dict[str, Any]] | None = None
    attempt: int = 1
    fail_at: dict[int, str] = field(default_factory=dict)
    """Test hook: raise this message at these op indices (from ``DJ_OBSERVE_FAIL``)."""


@dataclass
class SegmentResult:
    """The last item a segment task yields."""

    partition_id: int
    output: str
    rows: int
    fingerprints: list[str] | None = None
    failed: bool = False
    error: str | None = None


def checkpoint_path(
    checkpoint_dir: str | Path, partition_id: int, op_index: int, name: str
) -> Path:
    return (
        Path(checkpoint_dir) / f"partition_{partition_id:06d}" / f"op_{op_index:03d}_{name}.parquet"
    )


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, temporary)
    temporary.replace(path)


def _event(event_type: str, task: SegmentTask, **fields: Any) -> dict[str, Any]:
    metadata = {"node_id": _node_id(), **fields.pop("metadata", {})}
    return {
        "event_type": event_type,
        "timestamp": time.time(),
        "partition_id": task.partition_id,
        "process_id": os.getpid(),
        "thread_id": threading.get_ident(),
        "metadata": metadata,
        **fields,
    }


def _node_id() -> str | None:
    """The Ray node this task runs on (``None`` outside Ray)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:
        return None


def run_segment(task: SegmentTask) -> Iterator[dict[str, Any] | SegmentResult]:
    """Run the task's ops in order, yielding events and, last, the :class:`SegmentResult`."""
    table = pq.read_table(task.source)
    for index, name, args in task.ops:
        op = build_op(name, {"text_key": task.text_key, **args})
        rows_in = table.num_rows
        yield _event(
            "op_start",
            task,
            operation_name=name,
            operation_idx=index,
            input_rows=rows_in,
            retry_count=task.attempt - 1,
            message=f"Operation {name} (idx {index}) started on partition {task.partition_id}",
        )
        started, cpu = time.perf_counter(), time.process_time()
        try:
            if index in task.fail_at:
                raise RuntimeError(task.fail_at[index])
            if isinstance(op, GlobalOp) and task.keep_mask is not None:
                table = op.keep(table, pa.array(task.keep_mask, pa.bool_()))
            else:
                table = op.process(table)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            yield _event(
                "op_failed",
                task,
                operation_name=name,
                operation_idx=index,
                status="failed",
                error_message=error,
                retry_count=task.attempt - 1,
                duration=time.perf_counter() - started,
                stack_trace=traceback.format_exc()[-MAX_TRACE_CHARS:],
                metadata={"error_type": type(exc).__name__},
                message=f"Operation {name} (idx {index}) failed on partition "
                f"{task.partition_id}: {error}",
            )
            yield SegmentResult(task.partition_id, task.output, 0, failed=True, error=error)
            return
        duration = time.perf_counter() - started
        yield _event(
            "op_complete",
            task,
            operation_name=name,
            operation_idx=index,
            status="success",
            duration=duration,
            input_rows=rows_in,
            output_rows=table.num_rows,
            metadata={
                "cpu_seconds": round(time.process_time() - cpu, 6),
                "peak_rss_bytes": peak_rss_bytes(),
            },
            message=f"Operation {name} (idx {index}) completed on partition "
            f"{task.partition_id} - {rows_in}\u2192{table.num_rows} rows in "
            f"{duration:.3f}s",
        )
        if index in task.checkpoint_after:
            path = checkpoint_path(task.checkpoint_dir, task.partition_id, index, name)
            _write(table, path)
            yield _event(
                "checkpoint_save",
                task,
                operation_name=name,
                operation_idx=index,
                checkpoint_path=str(path),
                message=f"Checkpoint saved for operation {name} (idx {index}) on "
                f"partition {task.partition_id}",
            )
    _write(table, Path(task.output))
    fingerprints = None
    if task.fingerprint_output and task.fingerprint_op is not None:
        name, args = task.fingerprint_op
        dedup = build_global_op(name, {"text_key": task.text_key, **args})
        fingerprints = [str(value) for value in dedup.fingerprints(table).to_pylist()]
    yield SegmentResult(task.partition_id, task.output, table.num_rows, fingerprints)
