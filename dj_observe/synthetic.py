"""Deterministic generator of realistic job directories.

Writes what a partitioned Data-Juicer job leaves behind: event lines in
Data-Juicer's exact format (``json.dumps`` separators, key order of its
``Event`` dataclass, top-level ``None`` fields dropped), interleaved partitions,
checkpoints, failures, a crash with a torn last line, a resumed second run, and
optionally ``job_summary.json`` and ``dag_execution_plan.json``.  Two styles:

* ``"spec"``: the full vocabulary of the spec (partition creation events,
  absolute op indices, a terminal job event), in ``events.jsonl``;
* ``"data_juicer"``: what ``dj-process`` 1.6.1 really writes (per-run
  ``events_<ts>.jsonl`` files, ``job_start`` twice, op indices counted within a
  checkpoint group, rows only in ``op_complete`` metadata, no terminal event
  when a partition fails).

Used by ``dj-observe demo``, the tests and the benchmarks.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from dj_observe.events import FIELD_ORDER

__all__ = ["DEFAULT_OPS", "JobSpec", "events_for", "write_job"]

DEFAULT_OPS = (
    "clean_links_mapper",
    "clean_email_mapper",
    "whitespace_normalization_mapper",
    "punctuation_normalization_mapper",
    "text_length_filter",
    "words_num_filter",
    "special_characters_filter",
    "document_deduplicator",
)

_ENCODE = json.JSONEncoder().encode


@dataclass
class JobSpec:
    """What to generate.  Every choice is drawn from ``seed``: same spec, same bytes."""

    job_id: str = "20250809_040053_a001de"
    partitions: int = 8
    ops: tuple[str, ...] = DEFAULT_OPS
    samples_per_partition: int = 5000
    parallelism: int = 3
    checkpoint: str = "every_op"
    failed_partitions: dict[int, int] = field(default_factory=dict)
    """Partition id -> index of the op that raises on it."""
    style: Literal["spec", "data_juicer"] = "spec"
    crash_after_events: int | None = None
    """Stop the first run after this many events, leaving a torn last line."""
    resume: bool = False
    """After a crash, write a second run that resumes the job and finishes it."""
    summary: bool = True
    dag_plan: bool = True
    seed: int = 0
    start_time: float = 1754712053.496651
    pid: int = 48213


class _Clock:
    def __init__(self, start: float, rng: random.Random) -> None:
        self.now = start
        self.rng = rng

    def tick(self, low: float = 0.0005, high: float = 0.004) -> float:
        self.now += self.rng.uniform(low, high)
        return round(self.now, 6)


class _Writer:
    """Builds events in Data-Juicer's key order and line format."""

    def __init__(self, spec: JobSpec, clock: _Clock) -> None:
        self.spec = spec
        self.clock = clock
        self.serial = 0

    def line(self, event_type: str, message: str, thread: int, **fields: Any) -> str:
        ts = self.clock.tick()
        self.serial += 1
        fields.update(
            event_type=event_type,
            timestamp=ts,
            message=message,
            event_id=f"{event_type}_{int(ts)}_{self.serial:08x}",
            job_id=self.spec.job_id,
            process_id=self.spec.pid,
            thread_id=140209876543232 + thread,
        )
        ordered = {key: fields[key] for key in FIELD_ORDER if fields.get(key) is not None}
        return _ENCODE(ordered) + "\n"


@dataclass
class _Run:
    """One executor run: which partitions it processes and from which op."""

    number: int
    start_ops: dict[int, int]
    resuming: bool


def _partition_events(
    spec: JobSpec, out: _Writer, run: _Run, pid: int, rng: random.Random
) -> Iterator[str]:
    dj = spec.style == "data_juicer"
    thread = pid % max(1, spec.parallelism)
    rows = spec.samples_per_partition + rng.randint(-spec.samples_per_partition // 10, 0)
    first_op = run.start_ops[pid]
    if not dj and not run.resuming:
        yield out.line(
            "partition_creation_start", f"Creating partition {pid}", thread, partition_id=pid
        )
        yield out.line(
            "partition_creation_complete",
            f"Created partition {pid}",
            thread,
            partition_id=pid,
            metadata={"sample_count": rows, "partition_size_bytes": rows * 512},
        )
    started = out.clock.now
    if run.resuming:
        if dj and first_op > 0:
            yield out.line(
                "checkpoint_load",
                f"Loaded checkpoint from operation {first_op - 1}",
                thread,
                partition_id=pid,
                operation_name=f"op_{first_op - 1:04d}",
                operation_idx=first_op - 1,
                metadata={"checkpoint_path": _ckpt(spec, pid, first_op - 1)},
            )
        elif not dj:
            yield out.line(
                "partition_resume",
                f"Partition {pid} resumed from operation {first_op}",
                thread,
                partition_id=pid,
                metadata={"resume_operation": first_op},
            )
    kind = "partition_start"
    yield out.line(
        kind,
        f"Starting processing of partition {pid + 1}/{spec.partitions}",
        thread,
        partition_id=pid,
        metadata=None if dj else {"sample_count": rows, "start_time": started},
    )
    fail_at = spec.failed_partitions.get(pid)
    for idx in range(first_op, len(spec.ops)):
        name = spec.ops[idx]
        event_idx = 0 if dj and spec.checkpoint == "every_op" else idx
        node = f"op_{idx + 1:03d}_{name}_partition_{pid}"
        op_started = out.clock.now
        if dj:
            yield out.line(
                "dag_node_start",
                f"DAG node {node} ({name}) started execution",
                thread,
                metadata={
                    "node_id": node,
                    "op_name": name,
                    "op_type": "mapper",
                    "execution_order": idx + 1,
                    "start_time": op_started,
                },
            )
        yield out.line(
            "op_start",
            f"Operation {name} (idx {event_idx}) started on partition {pid}",
            thread,
            partition_id=pid,
            operation_name=name,
            operation_idx=event_idx,
            op_args={"dag_node_id": node},
            metadata={
                "operation_idx": event_idx,
                "start_time": op_started,
                "operation_class": name,
                "dag_node_id": node,
                **({} if dj else {"input_rows": rows}),
            },
        )
        out.clock.tick(0.01, 0.2)
        if fail_at == idx:
            error = (
                f"RayTaskError(ValueError): {name} could not process sample {rng.randint(0, rows)}"
            )
            if not dj:
                yield out.line(
                    "op_failed",
                    f"Operation {name} (idx {idx}) failed on partition {pid}: {error}",
                    thread,
                    partition_id=pid,
                    operation_name=name,
                    operation_idx=idx,
                    status="failed",
                    error_message=error,
                    retry_count=0,
                    stack_trace=_trace(name),
                    metadata={"retry_count": 0, "error_type": "ValueError"},
                )
            yield out.line(
                "partition_failed",
                f"Partition {pid} failed after 0 retries: {error}",
                thread,
                partition_id=pid,
                status="failed",
                error_message=error,
                retry_count=0,
                metadata={"retry_count": 0, "error_type": "str"},
            )
            return
        out_rows = max(0, rows - rng.randint(0, max(1, rows // 20)))
        duration = round(out.clock.now - op_started, 6)
        completion = {
            "duration_seconds": duration,
            "input_rows": rows,
            "output_rows": out_rows,
            "throughput_rows_per_second": rows / duration if duration else 0,
            "reduction_ratio": round((rows - out_rows) / rows, 4) if rows else 0,
            "checkpoint_path": None,
            "completion_time": out.clock.now,
            "operation_class": name,
            "dag_node_id": node,
        }
        if dj:
            yield out.line(
                "dag_node_complete",
                f"DAG node {node} ({name}) completed in {duration:.3f}s",
                thread,
                metadata={
                    "node_id": node,
                    "op_name": name,
                    "op_type": "mapper",
                    "execution_order": idx + 1,
                    "duration_seconds": duration,
                },
            )
        yield out.line(
            "op_complete",
            f"Operation {name} (idx {event_idx}) completed on "
            f"partition {pid} - {rows}\u2192{out_rows} rows in {duration:.3f}s",
            thread,
            partition_id=pid,
            operation_name=name,
            operation_idx=event_idx,
            status="success",
            duration=duration,
            input_rows=None if dj else rows,
            output_rows=None if dj else out_rows,
            metadata=completion,
        )
        if spec.checkpoint != "disabled":
            path = _ckpt(spec, pid, idx)
            yield out.line(
                "checkpoint_save",
                f"Saved checkpoint after operation {idx}: {name}",
                thread,
                partition_id=pid,
                operation_name=name,
                operation_idx=idx,
                checkpoint_path=None if dj else path,
                metadata={"checkpoint_path": path},
            )
        rows = out_rows
    yield out.line(
        "partition_complete",
        f"Completed processing of partition {pid + 1}/{spec.partitions}",
        thread,
        partition_id=pid,
        metadata=None
        if dj
        else {"duration_seconds": round(out.clock.now - started, 6), "output_rows": rows},
    )


def _ckpt(spec: JobSpec, pid: int, idx: int) -> str:
    return (
        f"./outputs/{spec.job_id}/checkpoints/checkpoint_op_{idx:04d}_partition_{pid:04d}.parquet"
    )


def _trace(name: str) -> str:
    return (
        "Traceback (most recent call last):\n"
        f'  File "dj_observe/runner/ops.py", line 88, in process\n'
        f"    raise ValueError('{name} could not process sample')\n"
        "ValueError: could not process sample"
    )


def _interleave(
    streams: list[Iterator[str]], parallelism: int, rng: random.Random
) -> Iterator[str]:
    """Run up to ``parallelism`` partitions at once, picking the next line at random."""
    pending = list(reversed(streams))
    active: list[Iterator[str]] = []
    while pending or active:
        while pending and len(active) < max(1, parallelism):
            active.append(pending.pop())
        stream = active[rng.randrange(len(active))]
        line = next(stream, None)
        if line is None:
            active.remove(stream)
        else:
            yield line


def _run_events(spec: JobSpec, out: _Writer, run: _Run, rng: random.Random) -> Iterator[str]:
    dj = spec.style == "data_juicer"
    meta = {
        "num_partitions": spec.partitions,
        "checkpoint_enabled": spec.checkpoint != "disabled",
        "is_resuming": run.resuming,
        "job_id": spec.job_id,
    }
    if not dj:
        meta.update(
            total_operations=len(spec.ops),
            operations=list(spec.ops),
            checkpoint_strategy=spec.checkpoint,
            executor_type="ray_partitioned",
        )
    message = (
        "Resuming partitioned dataset processing"
        if run.resuming
        else ("Starting partitioned dataset processing")
    )
    yield out.line(
        "job_restart" if run.resuming and not dj else "job_start", message, 0, metadata=meta
    )
    if dj:
        yield out.line(
            "dag_build_start",
            "DAG build started from pipeline AST",
            0,
            metadata={"ast_node_count": len(spec.ops)},
        )
        yield out.line(
            "dag_build_complete",
            f"DAG build completed: {spec.partitions * len(spec.ops)} nodes, 0 edges",
            0,
            metadata={"dag_node_count": spec.partitions * len(spec.ops)},
        )
        yield out.line(
            "job_start",
            "Job started",
            0,
            total_partitions=len(spec.ops),
            config={"executor_type": "ray_partitioned", "work_dir": spec.job_id},
            metadata={
                "total_partitions": len(spec.ops),
                "config_summary": {"executor_type": "ray_partitioned", "checkpoint_strategy": None},
            },
        )
    order = [pid for pid in range(spec.partitions) if pid in run.start_ops]
    streams = [_partition_events(spec, out, run, pid, random.Random(rng.random())) for pid in order]
    yield from _interleave(streams, spec.parallelism, rng)
    failed = [pid for pid in order if pid in spec.failed_partitions]
    if failed and dj:
        return
    duration = round(out.clock.now - spec.start_time, 6)
    if failed:
        yield out.line(
            "job_failed",
            f"Job failed: {len(failed)} partition(s) failed",
            0,
            status="failed",
            error_message=f"{len(failed)} partition(s) failed",
            duration=duration,
        )
    else:
        yield out.line(
            "job_complete",
            f"Job completed successfully in {duration:.2f}s",
            0,
            status="completed",
            duration=duration,
            metadata={"status": "completed", "duration_seconds": duration},
        )


def events_for(spec: JobSpec) -> Iterator[tuple[int, str]]:
    """``(run number, line)`` for every event the spec describes, in write order."""
    rng = random.Random(spec.seed)
    clock = _Clock(spec.start_time, rng)
    out = _Writer(spec, clock)
    first = _Run(0, dict.fromkeys(range(spec.partitions), 0), resuming=False)
    progress: dict[int, int] = {}
    for count, line in enumerate(_run_events(spec, out, first, rng)):
        if spec.crash_after_events is not None and count >= spec.crash_after_events:
            yield 0, line[: len(line) // 2]  # killed mid-write: a torn last line
            break
        _track_progress(line, progress)
        yield 0, line
    else:
        return
    if spec.resume:
        clock.tick(5, 10)
        done = {pid for pid, idx in progress.items() if idx >= len(spec.ops)}
        starts = {
            pid: min(progress.get(pid, 0), len(spec.ops) - 1)
            for pid in range(spec.partitions)
            if pid not in done
        }
        yield from ((1, line) for line in _run_events(spec, out, _Run(1, starts, True), rng))


def _track_progress(line: str, progress: dict[int, int]) -> None:
    """Remember, per partition, the op after the last checkpointed one (or completed partition)."""
    if '"checkpoint_save"' in line or '"partition_complete"' in line:
        event = json.loads(line)
        pid = event["partition_id"]
        if event["event_type"] == "partition_complete":
            progress[pid] = 1 << 30
        else:
            progress[pid] = max(progress.get(pid, 0), event["operation_idx"] + 1)


def write_job(root: str | Path, spec: JobSpec | None = None) -> Path:
    """Write a job directory for ``spec`` under ``root`` and return its path."""
    spec = spec or JobSpec()
    job_dir = Path(root) / spec.job_id
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "checkpoints").mkdir(exist_ok=True)
    (job_dir / "logs").mkdir(exist_ok=True)
    handles: dict[str, Any] = {}
    last = ""
    try:
        for run, line in events_for(spec):
            name = _log_name(spec, run)
            if name not in handles:
                handles[name] = (job_dir / name).open("w", encoding="utf-8")
            handles[name].write(line)
            last = line
    finally:
        for handle in handles.values():
            handle.close()
    if spec.dag_plan:
        _write_plan(job_dir, spec)
    if spec.summary:
        _write_summary(job_dir, spec, json.loads(last) if last.endswith("\n") else None)
    return job_dir


def _log_name(spec: JobSpec, run: int) -> str:
    if spec.style == "spec":
        return "events.jsonl"
    stamp = datetime.fromtimestamp(spec.start_time + 3600 * run, tz=timezone.utc)
    return f"events_{stamp:%Y%m%d_%H%M%S}.jsonl"


def _write_plan(job_dir: Path, spec: JobSpec) -> None:
    nodes = {}
    for pid in range(spec.partitions):
        for idx, name in enumerate(spec.ops):
            node_id = f"op_{idx + 1:03d}_{name}_partition_{pid}"
            nodes[node_id] = {
                "node_id": node_id,
                "operation_name": name,
                "node_type": "partition_operation",
                "partition_id": pid,
                "config": {},
                "dependencies": [f"op_{idx:03d}_{spec.ops[idx - 1]}_partition_{pid}"]
                if idx
                else [],
                "execution_order": idx + 1,
                "estimated_duration": 0.0,
                "metadata": {},
            }
    plan = {"nodes": nodes, "metadata": {"created_at": spec.start_time, "total_nodes": len(nodes)}}
    (job_dir / "dag_execution_plan.json").write_text(json.dumps(plan, indent=2))


def _write_summary(job_dir: Path, spec: JobSpec, last: dict[str, Any] | None) -> None:
    """Data-Juicer's summary: written at start, completed with the outcome at the end."""
    summary: dict[str, Any] = {
        "job_id": spec.job_id,
        "start_time": spec.start_time,
        "work_dir": str(job_dir),
        "config_file": ["configs/demo.yaml"],
        "executor_type": "ray_partitioned",
        "status": "running",
        "resumption_command": f"dj-observe run configs/demo.yaml --job-id {spec.job_id}",
        "event_log_file": str(job_dir / "events.jsonl"),
        "event_log_dir": str(job_dir / "logs"),
        "checkpoint_dir": str(job_dir / "checkpoints"),
        "metadata_dir": str(job_dir / "metadata"),
    }
    outcome = {"job_complete": "completed", "job_failed": "failed"}.get(
        (last or {}).get("event_type", "")
    )
    if outcome and last is not None:
        summary.update(
            status=outcome,
            end_time=last["timestamp"],
            duration=last["timestamp"] - spec.start_time,
            error_message=last.get("error_message"),
        )
    (job_dir / "job_summary.json").write_text(json.dumps(summary, indent=2))
