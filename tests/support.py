"""Helpers shared by the tests: hand-written event logs, folds and comparable views."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dj_observe.eventlog import ReadStats, decode_block
from dj_observe.snapshot import ProcessingSnapshotAnalyzer, partition_status
from dj_observe.state import JobState, Status

VOLATILE_METADATA = ("snapshot_generated_at", "seconds_since_last_event")
"""Snapshot fields that depend on the wall clock at generation time."""


def ev(event_type: str, ts: float | None = None, **fields: Any) -> dict[str, Any]:
    """One event as the JSON object Data-Juicer writes (``None`` fields dropped)."""
    data: dict[str, Any] = {"event_type": event_type}
    if ts is not None:
        data["timestamp"] = ts
    data.update({key: value for key, value in fields.items() if value is not None})
    return data


def to_lines(events: Iterable[dict[str, Any] | str | bytes]) -> bytes:
    """Events (dicts, or raw lines) as log bytes, one line each, newline-terminated."""
    out = []
    for item in events:
        if isinstance(item, dict):
            out.append(json.dumps(item).encode())
        elif isinstance(item, str):
            out.append(item.encode())
        else:
            out.append(item)
    return b"".join(line + b"\n" for line in out)


def write_log(job_dir: Path, events: Iterable[Any], name: str = "events.jsonl") -> Path:
    """Write a job directory holding one log file; returns the job directory."""
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / name).write_bytes(to_lines(events))
    return job_dir


def append_log(job_dir: Path, events: Iterable[Any], name: str = "events.jsonl") -> None:
    with (job_dir / name).open("ab") as handle:
        handle.write(to_lines(events))


def fold(events: Iterable[dict[str, Any]], state: JobState | None = None) -> JobState:
    """Fold events the way the reader does (block decoding, then ``JobState.apply_all``)."""
    state = JobState() if state is None else state
    block = to_lines(events)
    if block:
        state.apply_all(decode_block(block, ReadStats()))
    return state


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, tuple):
        return tuple(_clean(item) for item in value)
    return value


def state_view(state: JobState, *, counters: bool = True) -> dict[str, Any]:
    """What a consumer can read from a state, as comparable plain data.

    ``counters=False`` leaves out what replaying events legitimately adds to
    (events applied, counts by type, checkpoints saved/loaded, attempts, resumes).
    """
    ended = state.status in (Status.COMPLETED, Status.FAILED)
    partitions = {}
    for pid, part in sorted(state.partitions.items()):
        entry = dataclasses.asdict(partition_status(state, part))
        entry["status_code"] = state.partition_status(part)
        entry["ops"] = [tuple(_clean(field) for field in run) for run in state.op_runs(part)]
        entry["start_time"] = part.start_time
        entry["end_time"] = part.end_time
        entry["size_bytes"] = part.size_bytes
        entry["error_type"] = part.error_type
        entry["resumed"] = part.resumed
        entry["loaded_checkpoint_idx"] = part.loaded_checkpoint_idx
        entry["last_event_time"] = part.last_event_time
        if counters:
            entry["attempts"] = part.attempts
        partitions[pid] = entry
    view = {
        "job_id": state.job_id,
        "job_status": state.job_status(),
        "status": state.status,
        # End and duration are read only once the job has ended (see the snapshot's timing).
        "error_message": state.error_message,
        "start_time": state.start_time,
        "end_time": state.end_time if ended else None,
        "duration": state.duration if state.status == Status.COMPLETED else None,
        "first_event_time": state.first_event_time,
        "last_event_time": state.last_event_time,
        "last_checkpoint_time": state.last_checkpoint_time,
        "executor_type": state.executor_type,
        "work_dir": state.work_dir,
        "config_file": state.config_file,
        "checkpoint_strategy": state.checkpoint_strategy,
        "planned_partitions": state.planned_partitions,
        "planned_ops": state.planned_ops,
        "process_ids": sorted(state.process_ids),
        "total_partitions": state.total_partitions,
        "ops_per_partition": state.ops_per_partition,
        "op_names": state.op_names,
        "pipeline_positions": state.pipeline_positions(),
        "partition_counts": state.partition_counts(),
        "op_counts": state.op_counts(),
        "checkpointed_ops": state.checkpointed_op_count(),
        "partitions": partitions,
    }
    if counters:
        view.update(
            events_applied=state.events_applied,
            event_counts=dict(sorted(state.event_counts.items())),
            resume_count=state.resume_count,
            checkpoints_saved=state.checkpoints_saved,
            checkpoints_loaded=state.checkpoints_loaded,
        )
    return view


def stable(document: dict[str, Any]) -> dict[str, Any]:
    """A snapshot document without the fields that depend on when it was generated."""
    document = json.loads(json.dumps(document))
    for key in VOLATILE_METADATA:
        document["metadata"].pop(key, None)
    return document


def snapshot_doc(job_dir: Path, *, workers: int = 1) -> dict[str, Any]:
    """The snapshot JSON of a job directory, as a dict."""
    analyzer = ProcessingSnapshotAnalyzer(job_dir, workers=workers)
    return analyzer.to_json_dict(analyzer.generate_snapshot())


def log_lines(job_dir: Path) -> list[bytes]:
    """Every newline-terminated line of the job's log files (any order of files)."""
    lines = []
    for path in sorted(job_dir.glob("events*.jsonl")):
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        lines.extend(line for line in complete.split(b"\n") if line.strip())
    return lines
