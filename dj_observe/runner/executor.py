"""The reference executor: a partitioned job on Ray, observed through the hook.

The driver cuts the dataset into partitions (Parquet files in the job
directory), runs each partition through the pipeline as Ray tasks, and hands
every event the tasks stream back to :class:`~dj_observe.hook.ObservabilityHook`
as it arrives.  Global ops (the exact document deduplicator) are convergence
points: every partition finishes the segment before it, the driver decides which
rows survive, then the partitions go on.  The executor is only a client of the
hook's public API.

Resuming (``run(config, job_id=...)`` on an existing job directory) skips the
partitions that completed and continues the others after their last checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
from loguru import logger

from dj_observe.hook import ObservabilityHook
from dj_observe.logging import close_logger, setup_logger
from dj_observe.redact import Redactor, redact_yaml
from dj_observe.runner.config import JobConfig
from dj_observe.runner.dataset import load_dataset, write_table
from dj_observe.runner.ops import build_global_op, build_op
from dj_observe.runner.ray_runtime import start_ray
from dj_observe.runner.resources import PartitionSizeOptimizer
from dj_observe.runner.worker import SegmentResult, SegmentTask, checkpoint_path, run_segment
from dj_observe.sinks.logline import EventLineSink
from dj_observe.state import Status
from dj_observe.tracker import JobTracker

__all__ = ["JobResult", "run_job"]

PARTITIONS_DONE = "_complete"
"""Written once every partition file exists: a resumed job reuses partitions only then."""

FAIL_ENV = "DJ_OBSERVE_FAIL"
"""Fault injection for tests and demos: ``PARTITION:OP[:ATTEMPTS]`` items, comma-separated."""


@dataclass
class JobResult:
    """What a run did."""

    job_id: str
    job_dir: Path
    status: str
    export_path: Path | None
    partitions: int
    failed_partitions: list[int] = field(default_factory=list)
    resumed: bool = False
    duration: float = 0.0


@dataclass
class _Segment:
    ops: list[tuple[int, str, dict[str, Any]]]
    starts_with_global: bool


def _segments(ops: list[tuple[str, dict[str, Any]]]) -> list[_Segment]:
    """Cut the pipeline before every global op (the driver's convergence points)."""
    segments: list[_Segment] = []
    for index, (name, args) in enumerate(ops):
        is_global = _is_global(name)
        if not segments or is_global:
            segments.append(_Segment([], is_global))
        segments[-1].ops.append((index, name, args))
    return segments


def _is_global(name: str) -> bool:
    return bool(getattr(build_op(name, {}), "is_global", False))


def _checkpoint_after(config: JobConfig, count: int) -> list[int]:
    strategy = config.checkpoint.strategy if config.checkpoint.enabled else "disabled"
    if strategy == "every_op":
        return list(range(count))
    if strategy == "every_n_ops":
        return [index for index in range(count) if (index + 1) % config.checkpoint.n_ops == 0]
    if strategy == "every_partition":
        return [count - 1]
    return []


def _faults() -> dict[int, tuple[int, int]]:
    faults: dict[int, tuple[int, int]] = {}
    for item in filter(None, os.environ.get(FAIL_ENV, "").split(",")):
        parts = [int(part) for part in item.split(":")]
        faults[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else 1 << 30)
    return faults


def new_job_id() -> str:
    return f"{_dt.datetime.now(_dt.timezone.utc):%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6]}"


class _Driver:
    def __init__(
        self,
        config: JobConfig,
        job_id: str,
        hook: ObservabilityHook,
        job_dir: Path,
        on_progress: Callable[[], None],
    ) -> None:
        self.config = config
        self.job_id = job_id
        self.hook = hook
        self.job_dir = job_dir
        self.on_progress = on_progress
        self.ops = config.ops
        self.checkpoints = _checkpoint_after(config, len(self.ops))
        self.faults = _faults()
        self.attempts: dict[int, int] = {}
        self.failed: dict[int, str] = {}

    def _emit(self, fields: dict[str, Any]) -> None:
        self.hook.emit(fields)
        self.on_progress()

    def run_segment(
        self,
        segment: _Segment,
        number: int,
        sources: dict[int, str],
        masks: dict[int, list[bool]] | None,
        fingerprint_next: tuple[str, dict[str, Any]] | None,
        ops_by_pid: dict[int, list[tuple[int, str, dict[str, Any]]]],
    ) -> dict[int, SegmentResult]:
        """Run one segment on every partition in ``sources``; retries failed partitions."""
        import ray

        # SPREAD: partitions go to every node of a cluster, not the driver's first.
        remote = ray.remote(num_returns="streaming", max_retries=0, scheduling_strategy="SPREAD")(
            run_segment
        )
        results: dict[int, SegmentResult] = {}
        stage = self.job_dir / "stages" / f"segment_{number}"
        pending: dict[ray.ObjectRefGenerator, int] = {}

        def submit(pid: int, source: str, ops: list[tuple[int, str, dict[str, Any]]]) -> None:
            attempt = self.attempts[pid] = self.attempts.get(pid, 0) + 1
            fault = self.faults.get(pid)
            fail_at = {}
            if fault is not None and attempt <= fault[1]:
                fail_at = {fault[0]: f"injected failure on partition {pid} at op {fault[0]}"}
            task = SegmentTask(
                partition_id=pid,
                source=source,
                ops=ops,
                text_key=self.config.text_key,
                checkpoint_dir=str(self.job_dir / "checkpoints"),
                checkpoint_after=self.checkpoints,
                output=str(stage / f"partition_{pid:06d}.parquet"),
                keep_mask=None if masks is None else masks.get(pid),
                fingerprint_output=fingerprint_next is not None,
                fingerprint_op=fingerprint_next,
                attempt=attempt,
                fail_at=fail_at,
            )
            pending[remote.remote(task)] = pid

        for pid, source in sorted(sources.items()):
            submit(pid, source, ops_by_pid[pid])
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            generator = ready[0]
            assert isinstance(generator, ray.ObjectRefGenerator)  # pending holds nothing else
            pid = pending[generator]
            item: dict[str, Any] | SegmentResult
            try:
                item = ray.get(next(generator))
            except StopIteration:
                del pending[generator]
                continue
            except ray.exceptions.RayError as exc:  # the worker died
                del pending[generator]
                item = SegmentResult(pid, "", 0, failed=True, error=f"{type(exc).__name__}: {exc}")
            if isinstance(item, dict):
                self._emit(item)
                continue
            if not item.failed:
                results[pid] = item
                continue
            del pending[generator]
            if self.attempts[pid] <= self.config.retries:
                resume = self._last_checkpoint(pid, segment)
                source, ops = resume if resume else (sources[pid], segment.ops)
                self._emit(
                    {
                        "event_type": "partition_resume",
                        "partition_id": pid,
                        "retry_count": self.attempts[pid],
                        "message": f"Partition {pid} retried (attempt {self.attempts[pid] + 1})",
                    }
                )
                submit(pid, source, ops)
            else:
                self.failed[pid] = item.error or "failed"
        return results

    def _last_checkpoint(
        self, pid: int, segment: _Segment
    ) -> tuple[str, list[tuple[int, str, dict[str, Any]]]] | None:
        """The latest checkpoint inside ``segment`` and the ops after it."""
        for position in range(len(segment.ops) - 1, -1, -1):
            index, name, _ = segment.ops[position]
            path = checkpoint_path(self.job_dir / "checkpoints", pid, index, name)
            if path.exists():
                rest = segment.ops[position + 1 :]
                return (str(path), rest) if rest else None
        return None


def run_job(
    config: JobConfig,
    *,
    job_id: str | None = None,
    ray_address: str | None = None,
    on_progress: Callable[[ObservabilityHook], None] | None = None,
) -> JobResult:
    """Run (or resume) a job; returns when it ended.  Events go through the hook."""
    job_id = job_id or config.job_id or new_job_id()
    job_dir = Path(config.work_dir) / job_id
    resuming = (job_dir / "events.jsonl").exists()
    job_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    setup_logger(job_dir)
    hook = ObservabilityHook(config.observability_config(job_dir, job_id), sinks=[EventLineSink()])
    progress = (lambda: on_progress(hook)) if on_progress else (lambda: None)
    logger.info("job {} in {} ({})", job_id, job_dir, "resuming" if resuming else "new")
    try:
        start_ray(ray_address, config.np)
        ray_up = time.time()
        return _run(config, job_id, job_dir, hook, resuming, (started, ray_up), progress)
    finally:
        hook.close()
        close_logger()


def _run(
    config: JobConfig,
    job_id: str,
    job_dir: Path,
    hook: ObservabilityHook,
    resuming: bool,
    ray_start: tuple[float, float],
    progress: Callable[[], None],
) -> JobResult:
    started, ray_up = ray_start
    _backup_config(config, job_dir, hook.redact)
    earlier = JobTracker(job_dir, workers=1).refresh() if resuming else None
    previous = earlier.partitions if earlier else {}
    # a resumed job's time runs from its first start, as the snapshot of its logs tells it
    job_started = earlier.start_time if earlier and earlier.start_time is not None else started
    table, size, plan, partitions = _plan_partitions(config, job_dir, resuming)
    planned = time.time()
    count = len(partitions) if table is None else max(1, -(-table.num_rows // size))
    results_dir = job_dir / "results"
    done = {
        pid
        for pid, part in previous.items()
        if part.status == Status.COMPLETED
        and (results_dir / f"partition_{pid:06d}.parquet").exists()
    }
    meta = {
        "operations": [name for name, _ in config.ops],
        "num_partitions": count,
        "project_name": config.project_name,
        "executor_type": "ray_partitioned",
        "checkpoint_strategy": config.checkpoint.strategy
        if config.checkpoint.enabled
        else "disabled",
        "config_file": [config.source] if config.source else None,
        "is_resuming": resuming,
        "partitioning": plan,
        **({"original_start_time": job_started} if resuming else {}),
    }
    if resuming:
        hook.emit(
            "job_restart",
            message=f"Job {job_id} resumed: {len(done)} of {count} partitions already completed",
            metadata=meta,
            timestamp=started,
        )
    else:  # the job started with the command, before the Ray runtime was up (as its summary says)
        hook.job_start(message=f"Job {job_id} started", metadata=meta, timestamp=started)
    _log_phase(hook, "ray_start", started, ray_up)  # both timed before the log began
    _log_phase(hook, "dataset_load", ray_up, planned)
    _write_plan(config, job_dir, hook, count)
    if table is not None:
        with _phase(hook, "partitioning"):
            partitions = _write_partitions(table, size, job_dir, hook)
        del table
    _write_summary(config, job_dir, job_id, "running", job_started)
    driver = _Driver(config, job_id, hook, job_dir, progress)
    segments = _segments(config.ops)
    sources: dict[int, str] = {}
    for pid in sorted(set(partitions) - done):
        resume = driver._last_checkpoint(pid, segments[0]) if resuming else None
        sources[pid] = partitions[pid] if resume is None else resume[0]
        if resume is not None:
            hook.emit(
                "checkpoint_load",
                partition_id=pid,
                checkpoint_path=resume[0],
                operation_name=Path(resume[0]).stem.split("_", 2)[2],
                operation_idx=int(Path(resume[0]).stem.split("_")[1]),
                message=f"Checkpoint loaded for partition {pid}",
            )
            hook.emit(
                "partition_resume",
                partition_id=pid,
                message=f"Partition {pid} resumed after its last checkpoint",
            )
        else:
            hook.partition_start(pid, sample_count=pq.read_metadata(partitions[pid]).num_rows)
    masks: dict[int, list[bool]] | None = None
    for number, segment in enumerate(segments):
        if not sources:
            break
        following = segments[number + 1].ops[0] if number + 1 < len(segments) else None
        fingerprint_op = (following[1], following[2]) if following else None
        ops_by_pid = {
            pid: _remaining(driver, pid, segment, sources[pid], partitions) for pid in sources
        }
        results = driver.run_segment(segment, number, sources, masks, fingerprint_op, ops_by_pid)
        for pid in [pid for pid in sources if pid in driver.failed]:
            hook.partition_failed(pid, driver.failed[pid])
            sources.pop(pid)
        if driver.failed and config.on_partition_failure == "fail":
            sources = {}
            break
        sources = {pid: results[pid].output for pid in sources}
        if fingerprint_op is not None:
            prints = {pid: results[pid].fingerprints or [] for pid in sources}
            prints.update(_stage_fingerprints(job_dir, number, done, fingerprint_op, config))
            masks = {pid: mask for pid, mask in _keep_masks(prints).items() if pid in sources}
    for pid, path in sorted(sources.items()):
        results_dir.mkdir(parents=True, exist_ok=True)
        result = results_dir / f"partition_{pid:06d}.parquet"
        shutil.copyfile(path, result.with_name(f".{result.name}.tmp"))
        result.with_name(f".{result.name}.tmp").replace(result)
        hook.partition_complete(pid, output_rows=pq.read_metadata(path).num_rows)
        progress()
    return _finish(config, job_dir, job_id, hook, driver, partitions, job_started, resuming)


def _remaining(
    driver: _Driver, pid: int, segment: _Segment, source: str, partitions: dict[int, str]
) -> list[tuple[int, str, dict[str, Any]]]:
    """The segment's ops still to run for a partition that may resume from a checkpoint."""
    if source == partitions.get(pid) or "checkpoints" not in Path(source).parts:
        return segment.ops
    done = int(Path(source).stem.split("_")[1])
    return [op for op in segment.ops if op[0] > done]


def _stage_fingerprints(
    job_dir: Path, number: int, pids: set[int], op: tuple[str, dict[str, Any]], config: JobConfig
) -> dict[int, list[str]]:
    """Fingerprints of partitions that completed in an earlier run (their stage files)."""
    prints = {}
    dedup = build_global_op(op[0], {"text_key": config.text_key, **op[1]})
    for pid in pids:
        stage = job_dir / "stages" / f"segment_{number}" / f"partition_{pid:06d}.parquet"
        if stage.exists():
            prints[pid] = [str(v) for v in dedup.fingerprints(pq.read_table(stage)).to_pylist()]
    return prints


def _keep_masks(fingerprints: dict[int, list[str]]) -> dict[int, list[bool]]:
    """First occurrence wins, in partition order."""
    seen: set[str] = set()
    masks: dict[int, list[bool]] = {}
    for pid in sorted(fingerprints):
        mask = []
        for value in fingerprints[pid]:
            mask.append(value not in seen)
            seen.add(value)
        masks[pid] = mask
    return masks


def _finish(
    config: JobConfig,
    job_dir: Path,
    job_id: str,
    hook: ObservabilityHook,
    driver: _Driver,
    partitions: dict[int, str],
    started: float,
    resuming: bool,
) -> JobResult:
    results = sorted((job_dir / "results").glob("partition_*.parquet"))
    failed = sorted(driver.failed)
    complete = len(results) == len(partitions)
    export: Path | None = None
    if complete or (failed and config.on_partition_failure == "continue"):
        export = Path(config.export_path)
        with _phase(hook, "export"):
            rows = _export([str(path) for path in results], export)
        hook.emit(
            "processing_complete",
            message=f"Exported {rows} rows to {export}",
            output_path=str(export),
            metadata={"output_rows": rows},
        )
    ended = time.time()  # the job's one end: its last event and its summary both say so
    duration = ended - started
    if failed:
        error = f"{len(failed)} partition(s) failed: " + "; ".join(
            f"partition {pid}: {driver.failed[pid]}" for pid in failed[:3]
        )
        hook.job_failed(error, duration=duration, timestamp=ended)
        status = "failed"
    else:
        hook.job_complete(
            duration=duration, timestamp=ended, output_path=str(export) if export else None
        )
        status = "completed"
    hook.flush(10.0)
    _write_summary(
        config,
        job_dir,
        job_id,
        status,
        started,
        end_time=ended,
        duration=duration,
        error_message=None if status == "completed" else "partitions failed",
    )
    return JobResult(job_id, job_dir, status, export, len(partitions), failed, resuming, duration)


def _log_phase(hook: ObservabilityHook, name: str, start: float, end: float, **ending: Any) -> None:
    """A phase of the job outside its ops, as a ``phase_start`` / ``phase_complete`` pair."""
    fields = {"metadata": {"phase": name}}
    hook.emit("phase_start", timestamp=start, **fields)
    hook.emit("phase_complete", timestamp=end, **fields, **ending)


@contextmanager
def _phase(hook: ObservabilityHook, name: str) -> Iterator[None]:
    """Time the block as the phase ``name``; one that raises is logged as failed."""
    start = time.time()
    try:
        yield
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        _log_phase(hook, name, start, time.time(), status="failed", error_message=error)
        raise
    _log_phase(hook, name, start, time.time())


def _plan_partitions(
    config: JobConfig, job_dir: Path, resuming: bool
) -> tuple[pa.Table | None, int, dict[str, Any], dict[int, str]]:
    """How to cut the dataset: ``(table, rows per partition, why, existing partitions)``.

    A resumed job keeps the partitions it already wrote (``table`` is then ``None``).
    """
    directory = job_dir / "partitions"
    complete = resuming and (directory / PARTITIONS_DONE).exists()
    existing = sorted(directory.glob("partition_*.parquet")) if complete else []
    if existing:
        paths = {int(path.stem.split("_")[1]): str(path) for path in existing}
        return (
            None,
            0,
            {"reasoning": {"partition_size": "resumed: the partitions written by the first run"}},
            paths,
        )
    table = load_dataset(config.dataset_path, config.text_key)
    size = config.partition.size
    plan: dict[str, Any]
    if config.partition.mode == "auto" or config.resource_optimization.auto_configure:
        advice = PartitionSizeOptimizer(max_size_mb=config.partition.max_size_mb)
        recommendation = advice.get_partition_recommendations(table)
        size = max(1, int(recommendation["recommended_partition_size"]))
        plan = {
            "size": size,
            "reasoning": recommendation["reasoning"],
            "recommended_worker_count": recommendation["recommended_worker_count"],
            "estimated_partition_mb": recommendation["estimated_partition_mb"],
        }
        logger.info(
            "resource-aware partitioning: {} rows per partition ({})",
            size,
            "; ".join(f"{key}: {why}" for key, why in recommendation["reasoning"].items()),
        )
    else:
        plan = {"size": size, "reasoning": {"partition_size": "manual: partition.size"}}
    return table, size, plan, {}


def _write_partitions(
    table: pa.Table, size: int, job_dir: Path, hook: ObservabilityHook
) -> dict[int, str]:
    """Cut ``table`` into Parquet partitions (kept for resume); returns id -> path."""
    directory = job_dir / "partitions"
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for pid, offset in enumerate(range(0, max(table.num_rows, 1), size)):
        hook.emit("partition_creation_start", partition_id=pid, message=f"Creating partition {pid}")
        piece = table.slice(offset, size)
        path = directory / f"partition_{pid:06d}.parquet"
        temporary = path.with_name(f".{path.name}.tmp")
        pq.write_table(piece, temporary)
        temporary.replace(path)
        paths[pid] = str(path)
        hook.emit(
            "partition_creation_complete",
            partition_id=pid,
            sample_count=piece.num_rows,
            metadata={"sample_count": piece.num_rows, "partition_size_bytes": piece.nbytes},
            message=f"Created partition {pid} with {piece.num_rows} rows",
        )
    (directory / PARTITIONS_DONE).write_text(f"{len(paths)}\n")
    return paths


def _write_plan(config: JobConfig, job_dir: Path, hook: ObservabilityHook, partitions: int) -> None:
    """``dag_execution_plan.json``: the ops as nodes, their edges, the order and the groups."""
    hook.emit(
        "dag_build_start",
        message="DAG build started from the pipeline",
        metadata={"ast_node_count": len(config.ops)},
    )
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, Any]] = []
    groups: list[list[str]] = []
    previous = None
    for index, (name, args) in enumerate(config.ops):
        node_id = f"op_{index + 1:03d}_{name}"
        is_global = _is_global(name)
        nodes[node_id] = {
            "node_id": node_id,
            "operation_name": name,
            "op_name": name,
            "node_type": "global_operation" if is_global else "partition_operation",
            "config": hook.redact({"config": args})["config"],
            "dependencies": [previous] if previous else [],
            "execution_order": index + 1,
            "partitions": partitions,
        }
        if previous:
            edges.append(
                {
                    "source_id": previous,
                    "target_id": node_id,
                    "edge_type": "convergence" if is_global else "sequential",
                }
            )
        if is_global or not groups:
            groups.append([])
        groups[-1].append(node_id)
        previous = node_id
    plan = {
        "nodes": nodes,
        "edges": edges,
        "execution_plan": list(nodes),
        "parallel_groups": groups,
        "metadata": {
            "created_at": time.time(),
            "total_nodes": len(nodes),
            "total_edges": len(edges),
            "parallel_groups_count": len(groups),
        },
    }
    path = job_dir / "dag_execution_plan.json"
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(msgspec.json.format(msgspec.json.encode(plan), indent=2))
    temporary.replace(path)
    hook.emit(
        "dag_build_complete",
        message=f"DAG build completed: {len(nodes)} nodes, {len(edges)} edges",
        metadata={
            "dag_node_count": len(nodes),
            "dag_edge_count": len(edges),
            "parallel_groups_count": len(groups),
        },
    )
    hook.emit(
        "dag_execution_plan_saved",
        message=f"DAG execution plan saved to {path}",
        metadata={"plan_path": str(path), "node_count": len(nodes)},
    )


def _backup_config(config: JobConfig, job_dir: Path, redact: Redactor) -> None:
    """A copy of the config in the job directory, its secrets redacted."""
    if config.source and Path(config.source).is_file():
        text = Path(config.source).read_text(encoding="utf-8", errors="replace")
        (job_dir / Path(config.source).name).write_text(redact_yaml(text, redact), "utf-8")


def _write_summary(
    config: JobConfig, job_dir: Path, job_id: str, status: str, started: float, **extra: Any
) -> None:
    source = config.source or "config.yaml"
    summary = {
        "job_id": job_id,
        "start_time": started,
        "work_dir": str(job_dir),
        "config_file": [source],
        "backed_up_config_path": str(job_dir / Path(source).name),
        "executor_type": "ray_partitioned",
        "status": status,
        "resumption_command": f"dj-observe run {source} --job-id {job_id}",
        "event_log_file": str(job_dir / "events.jsonl"),
        "event_log_dir": str(job_dir / "logs"),
        "checkpoint_dir": str(job_dir / "checkpoints"),
        "metadata_dir": str(job_dir / "metadata"),
        **extra,
    }
    temporary = job_dir / ".job_summary.json.tmp"
    temporary.write_bytes(msgspec.json.format(msgspec.json.encode(summary), indent=2))
    temporary.replace(job_dir / "job_summary.json")


def _export(paths: Iterable[str], target: Path) -> int:
    tables = [pq.read_table(path) for path in paths]
    table = pa.concat_tables(tables) if tables else pa.table({})
    write_table(table, target)
    rows: int = table.num_rows
    return rows
