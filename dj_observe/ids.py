"""Trace and span ids derived from what a job is, so live and replayed spans are identical.

A trace is one job (all its attempts); a span is one attempt of the job, of a
partition or of an op.  Ids are the first bytes of a BLAKE2b digest of those
coordinates: stable across processes, machines and Python versions.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dj_observe.state import JobState

__all__ = [
    "job_span_id",
    "op_run_span_id",
    "op_span_id",
    "partition_span_id",
    "phase_span_id",
    "trace_id",
    "trace_id_hex",
]


def _digest(*parts: object, size: int) -> int:
    text = "\x1f".join(str(part) for part in parts).encode("utf-8", "surrogatepass")
    value = int.from_bytes(hashlib.blake2b(text, digest_size=size).digest(), "big")
    return value or 1  # all-zero ids are invalid in OpenTelemetry


def trace_id(job_id: str) -> int:
    """128-bit trace id of a job."""
    return _digest("trace", job_id, size=16)


def trace_id_hex(job_id: str) -> str:
    return f"{trace_id(job_id):032x}"


def job_span_id(job_id: str, attempt: int) -> int:
    """64-bit span id of one run (attempt) of the job."""
    return _digest("job", job_id, attempt, size=8)


def partition_span_id(job_id: str, partition_id: int, attempt: int) -> int:
    return _digest("partition", job_id, partition_id, attempt, size=8)


def op_span_id(job_id: str, partition_id: int, op_index: int | str, attempt: int) -> int:
    return _digest("op", job_id, partition_id, op_index, attempt, size=8)


def phase_span_id(job_id: str, name: str, partition_id: int | None, ordinal: int) -> int:
    """Span id of the ``ordinal``-th phase ``name`` of the job (or of its partition)."""
    return _digest(
        "phase", job_id, name, "" if partition_id is None else partition_id, ordinal, size=8
    )


def op_run_span_id(job_id: str, state: JobState, slot: int) -> int:
    """Span id of an op run's latest attempt, keyed by its position (or name if unknown)."""
    idx = state.op_index(slot)
    key: int | str = state.ops.name[slot] if idx is None else idx
    return op_span_id(job_id, state.ops.partition[slot], key, int(state.ops.attempts[slot]))
