"""The trace sink: OpenTelemetry spans job -> partition -> op, timed by the events.

A span is built when its end event arrives, with the start time the fold
recorded, and handed straight to a ``BatchSpanProcessor`` (export never runs on
the caller's thread).  Trace and span ids are derived from the job id, partition,
op position and attempt (:mod:`dj_observe.ids`), so replaying a log yields the
very spans the live run emitted.  A resumed run's job span links to the
previous run's.  Checkpoint saves and loads are events on the partition span.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import msgspec
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event as SpanEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status as SpanStatus
from opentelemetry.trace.status import StatusCode
from opentelemetry.util.types import AttributeValue

from dj_observe import __version__
from dj_observe.config import ObservabilityConfig
from dj_observe.dispatch import Change, HookStats, JobFeed
from dj_observe.events import EventType, text
from dj_observe.ids import (
    job_span_id,
    op_run_span_id,
    partition_span_id,
    phase_span_id,
    trace_id,
)
from dj_observe.redact import Redactor
from dj_observe.state import JobState, PartitionState, PhaseRun, Status

__all__ = [
    "MAX_MESSAGE_CHARS",
    "CountingExporter",
    "OtlpJsonFileExporter",
    "TraceSink",
    "console_exporter",
    "trace_exporters",
]

SPAN_QUEUE_SIZE = 65536
"""Spans waiting for export; beyond this the processor drops them (and says so)."""
MAX_MESSAGE_CHARS = 4096
"""Error messages on spans are cut to this many characters."""

_SCOPE = InstrumentationScope("dj_observe", __version__)
_SCRUB = Redactor()
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_CHECKPOINTS = frozenset({EventType.CHECKPOINT_SAVE.value, EventType.CHECKPOINT_LOAD.value})


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


def _context(trace: int, span: int) -> SpanContext:
    return SpanContext(trace, span, is_remote=False, trace_flags=_SAMPLED)


class CountingExporter(SpanExporter):
    """Wraps an exporter: a failure is counted in :class:`HookStats`, never raised."""

    COOLDOWN = 5.0
    """After a failed export, batches are dropped (and counted) for this many seconds, so a
    dead or hanging collector costs one timeout, not one per batch."""

    def __init__(self, exporter: SpanExporter, stats: HookStats, name: str = "traces") -> None:
        self.exporter = exporter
        self.stats = stats
        self.name = name
        self._resume_at = 0.0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if time.monotonic() < self._resume_at:  # the destination just failed: do not wait on it
            self.stats.sink_failed(self.name, RuntimeError("destination failing, spans dropped"))
            return SpanExportResult.FAILURE
        try:
            result = self.exporter.export(spans)
        except Exception as exc:
            self._resume_at = time.monotonic() + self.COOLDOWN
            self.stats.sink_failed(self.name, exc)
            return SpanExportResult.FAILURE
        if result != SpanExportResult.SUCCESS:
            self._resume_at = time.monotonic() + self.COOLDOWN
            failure = RuntimeError(f"{type(self.exporter).__name__} could not export the spans")
            self.stats.sink_failed(self.name, failure)
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class OtlpJsonFileExporter(SpanExporter):
    """Appends spans as OTLP/JSON (one ``ExportTraceServiceRequest`` per line) to a file.

    The JSON is built directly from the spans (ids in hex, enums as integers,
    64-bit integers as strings, as the OTLP/JSON encoding asks), which is many
    times cheaper than going through protobuf's JSON mapping.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        line = msgspec.json.encode(otlp_json(spans)) + b"\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as handle:
                handle.write(line)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Each export closes the file."""


def otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """An ``ExportTraceServiceRequest`` in OTLP/JSON, grouped by resource and scope."""
    groups: dict[tuple[int, int], tuple[ReadableSpan, list[dict[str, Any]]]] = {}
    for span in spans:
        key = (id(span.resource), id(span.instrumentation_scope))
        groups.setdefault(key, (span, []))[1].append(_span_json(span))
    resource_spans = []
    for first, encoded in groups.values():
        scope = first.instrumentation_scope
        resource_spans.append(
            {
                "resource": {"attributes": _attributes_json(first.resource.attributes)},
                "scopeSpans": [
                    {
                        "scope": {"name": scope.name, "version": scope.version or ""}
                        if scope
                        else {},
                        "spans": encoded,
                    }
                ],
            }
        )
    return {"resourceSpans": resource_spans}


def _span_json(span: ReadableSpan) -> dict[str, Any]:
    context = span.context
    status: dict[str, Any] = {"code": _STATUS_CODES[span.status.status_code]}
    if span.status.description:
        status["message"] = span.status.description
    encoded: dict[str, Any] = {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
        "name": span.name,
        "kind": span.kind.value + 1,  # OTLP enum: SPAN_KIND_INTERNAL = 1
        "startTimeUnixNano": str(span.start_time),
        "endTimeUnixNano": str(span.end_time),
        "attributes": _attributes_json(span.attributes),
        "status": status,
    }
    if span.parent is not None:
        encoded["parentSpanId"] = f"{span.parent.span_id:016x}"
    if span.events:
        encoded["events"] = [
            {
                "timeUnixNano": str(event.timestamp),
                "name": event.name,
                "attributes": _attributes_json(event.attributes),
            }
            for event in span.events
        ]
    if span.links:
        encoded["links"] = [
            {
                "traceId": f"{link.context.trace_id:032x}",
                "spanId": f"{link.context.span_id:016x}",
                "attributes": _attributes_json(link.attributes),
            }
            for link in span.links
        ]
    return encoded


_STATUS_CODES = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}


def _attributes_json(attributes: Any) -> list[dict[str, Any]]:
    return [{"key": key, "value": _value_json(value)} for key, value in (attributes or {}).items()]


def _value_json(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_value_json(item) for item in value]}}
    return {"stringValue": str(value)}


class TraceSink:
    """Builds spans from changes and hands them to a batch processor per exporter."""

    name = "traces"

    def __init__(
        self,
        exporters: Sequence[SpanExporter],
        *,
        service_name: str = "dj-observe",
        pipeline: str | None = None,
        stats: HookStats | None = None,
        export_timeout_seconds: float = 10.0,
    ) -> None:
        self.stats = stats or HookStats()
        self.pipeline = pipeline
        self.export_timeout = export_timeout_seconds
        self.resource = Resource.create({"service.name": service_name})
        self.processors = [
            BatchSpanProcessor(
                CountingExporter(exporter, self.stats, f"traces:{type(exporter).__name__}"),
                max_queue_size=SPAN_QUEUE_SIZE,
                max_export_batch_size=512,
                export_timeout_millis=export_timeout_seconds * 1000,
            )
            for exporter in exporters
        ]
        self._checkpoints: dict[tuple[str, int], list[SpanEvent]] = {}
        self._pending_jobs: dict[str, tuple[JobState, float | None, Status, int]] = {}
        self._run_start: dict[str, float] = {}
        self._phases_seen: dict[tuple[str, str, int | None], int] = {}

    # -- the sink ------------------------------------------------------------------

    def on_change(self, change: Change, feed: JobFeed) -> None:
        state, event, job = feed.state, change.event, change.job_id
        kind = event.event_type
        if kind in (EventType.JOB_START, EventType.JOB_RESTART) and event.timestamp is not None:
            self._run_start.setdefault(f"{job}\x1f{state.resume_count}", event.timestamp)
        part = change.partition
        if part is not None and kind in _CHECKPOINTS:
            self._checkpoint_event(job, part, change)
        if kind == EventType.PHASE_COMPLETE:
            phase = state.phase_ended_by(event)
            if phase is not None:
                self._emit_phase(job, state, phase)
        slot = change.op_slot
        if slot is not None and change.op_ended:
            self._emit_op(job, state, slot, event.timestamp)
        if part is not None and change.partition_ended:
            self._emit_partition(job, state, part, event.timestamp, change)
        if kind in (EventType.JOB_START, EventType.JOB_RESTART):
            self._emit_pending(job)  # a new run: the previous one is over
        if kind in (EventType.JOB_COMPLETE, EventType.JOB_FAILED):
            self._pending_jobs.pop(job, None)
            if change.job_ended or change.job_before in (Status.COMPLETED, Status.FAILED):
                self._emit_job(job, state, event.timestamp, change.job_after)
        elif change.job_ended:
            # Ended because every partition did: the job's own end event may still come
            # (with the real end and error), so the span waits for it, or for flush().
            self._pending_jobs[job] = (state, event.timestamp, change.job_after, state.resume_count)

    def _checkpoint_event(self, job: str, part: PartitionState, change: Change) -> None:
        event = change.event
        if event.timestamp is None:
            return
        attributes: dict[str, AttributeValue] = {
            "dj.op.name": event.operation_name or "",
            "dj.op.index": -1 if event.operation_idx is None else event.operation_idx,
        }
        events = self._checkpoints.setdefault((job, part.partition_id), [])
        if len(events) < 1000:
            events.append(SpanEvent(event.event_type, attributes, _ns(event.timestamp)))

    def _base_attributes(self, job: str, state: JobState) -> dict[str, AttributeValue]:
        return {"dj.job.id": job, "dj.pipeline": self.pipeline or state.pipeline or ""}

    def _emit_op(self, job: str, state: JobState, slot: int, ts: float | None) -> None:
        run = state.op_run(slot)
        end = run.end_time if run.end_time is not None else ts
        if end is None:
            return
        start = run.start_time if run.start_time is not None else end
        part = state.partitions[run.partition_id]
        attributes = self._base_attributes(job, state)
        attributes.update(
            {
                "dj.partition.id": run.partition_id,
                "dj.op.name": run.operation_name,
                "dj.op.index": -1 if run.operation_idx is None else run.operation_idx,
                "dj.attempt": int(state.ops.attempts[slot]),
                "cicd.pipeline.result": "success" if run.status == Status.COMPLETED else "failure",
            }
        )
        if state.op_timed_as_group(slot):  # no per-op duration: the span covers its group
            attributes["dj.op.timing"] = "checkpoint_group"
        if run.input_rows is not None:
            attributes["dj.rows.in"] = run.input_rows
        if run.output_rows is not None:
            attributes["dj.rows.out"] = run.output_rows
        if run.cpu_seconds is not None:
            attributes["dj.op.cpu_seconds"] = run.cpu_seconds
        if run.peak_rss_bytes is not None:
            attributes["dj.op.peak_rss_bytes"] = run.peak_rss_bytes
        parent = partition_span_id(job, run.partition_id, part.attempts)
        self._submit(
            name=run.operation_name,
            trace=trace_id(job),
            span=op_run_span_id(job, state, slot),
            parent=parent,
            start=start,
            end=end,
            attributes=attributes,
            error=run.error_message if run.status == Status.FAILED else None,
        )

    def _emit_phase(self, job: str, state: JobState, phase: PhaseRun) -> None:
        """A phase outside the ops: a child of its partition's span, or of the job's."""
        if phase.end_time is None:
            return
        key = (job, phase.name, phase.partition_id)
        ordinal = self._phases_seen.get(key, 0)
        self._phases_seen[key] = ordinal + 1
        attributes = self._base_attributes(job, state)
        attributes["dj.phase"] = phase.name
        part = state.partitions.get(phase.partition_id) if phase.partition_id is not None else None
        if part is not None:
            attributes["dj.partition.id"] = part.partition_id
            parent = partition_span_id(job, part.partition_id, part.attempts)
        else:
            parent = job_span_id(job, state.resume_count)
        start = phase.start_time if phase.start_time is not None else phase.end_time
        self._submit(
            name=phase.name,
            trace=trace_id(job),
            span=phase_span_id(job, phase.name, phase.partition_id, ordinal),
            parent=parent,
            start=start,
            end=phase.end_time,
            attributes=attributes,
            error=(phase.error_message or "failed") if phase.failed else None,
        )

    def _emit_partition(
        self, job: str, state: JobState, part: PartitionState, ts: float | None, change: Change
    ) -> None:
        end = part.end_time if part.end_time is not None else ts
        if end is None:
            return
        failed = change.partition_after == Status.FAILED
        if failed:  # Data-Juicer writes no op_failed: end the op that was running, in error
            for slot in part.ops.values():
                if state.ops.status[slot] == Status.IN_PROGRESS:  # raw: not yet ended
                    self._emit_running_op_failed(job, state, slot, end, part)
        start = part.start_time if part.start_time is not None else end
        attributes = self._base_attributes(job, state)
        attributes.update(
            {
                "dj.partition.id": part.partition_id,
                "dj.attempt": part.attempts,
                "cicd.pipeline.result": "failure" if failed else "success",
            }
        )
        if part.sample_count is not None:
            attributes["dj.partition.samples"] = part.sample_count
        self._submit(
            name=f"partition {part.partition_id}",
            trace=trace_id(job),
            span=partition_span_id(job, part.partition_id, part.attempts),
            parent=job_span_id(job, state.resume_count),
            start=start,
            end=end,
            attributes=attributes,
            error=(part.error_message or "partition failed") if failed else None,
            events=self._checkpoints.pop((job, part.partition_id), []),
        )

    def _emit_running_op_failed(
        self, job: str, state: JobState, slot: int, end: float, part: PartitionState
    ) -> None:
        run = state.op_run(slot)
        attributes = self._base_attributes(job, state)
        attributes.update(
            {
                "dj.partition.id": run.partition_id,
                "dj.op.name": run.operation_name,
                "dj.op.index": -1 if run.operation_idx is None else run.operation_idx,
                "dj.attempt": int(state.ops.attempts[slot]),
                "cicd.pipeline.result": "failure",
            }
        )
        self._submit(
            name=run.operation_name,
            trace=trace_id(job),
            span=op_run_span_id(job, state, slot),
            parent=partition_span_id(job, run.partition_id, part.attempts),
            start=run.start_time if run.start_time is not None else end,
            end=end,
            attributes=attributes,
            error=part.error_message or "partition failed while the op ran",
        )

    def _emit_pending(self, job: str | None = None) -> None:
        for key in [job] if job is not None else list(self._pending_jobs):
            pending = self._pending_jobs.pop(key, None)
            if pending is not None:
                self._emit_job(key, *pending)

    def _emit_job(
        self,
        job: str,
        state: JobState,
        ts: float | None,
        status: Status,
        attempt: int | None = None,
    ) -> None:
        """The span of one run of the job (``attempt`` defaults to the current run)."""
        end = state.end_time if state.end_time is not None else ts
        if end is None:
            return
        attempt = state.resume_count if attempt is None else attempt
        start = self._run_start.pop(f"{job}\x1f{attempt}", None)
        if start is None:
            start = state.start_time if state.start_time is not None else end
        failed = status == Status.FAILED
        attributes = self._base_attributes(job, state)
        attributes.update(
            {
                "dj.attempt": attempt,
                "cicd.pipeline.result": "failure" if failed else "success",
            }
        )
        if state.executor_type:
            attributes["dj.executor"] = state.executor_type
        links = []
        if attempt > 0:
            previous = _context(trace_id(job), job_span_id(job, attempt - 1))
            links.append(Link(previous, {"dj.link": "previous_attempt"}))
        self._submit(
            name=f"job {job}",
            trace=trace_id(job),
            span=job_span_id(job, attempt),
            parent=None,
            start=start,
            end=end,
            attributes=attributes,
            error=(state.error_message or "job failed") if failed else None,
            links=links,
        )

    def _submit(
        self,
        *,
        name: str,
        trace: int,
        span: int,
        parent: int | None,
        start: float,
        end: float,
        attributes: dict[str, AttributeValue],
        error: str | None,
        events: list[SpanEvent] | None = None,
        links: list[Link] | None = None,
    ) -> None:
        span_events = list(events or [])
        status = SpanStatus(StatusCode.OK)
        if error is not None:
            # A replayed log may hold what the hook would have redacted.
            message = _SCRUB.text((text(error) or "failed")[: 4 * MAX_MESSAGE_CHARS])
            message = message[:MAX_MESSAGE_CHARS]
            span_events.append(
                SpanEvent(
                    "exception",
                    {
                        "exception.type": message.split(":", 1)[0][:128],
                        "exception.message": message,
                    },
                    _ns(end),
                )
            )
            status = SpanStatus(StatusCode.ERROR, message[:256])
        readable = ReadableSpan(
            name=name,
            context=_context(trace, span),
            parent=_context(trace, parent) if parent is not None else None,
            resource=self.resource,
            attributes=attributes,
            events=span_events,
            links=links or [],
            kind=SpanKind.INTERNAL,
            status=status,
            start_time=_ns(start),
            end_time=_ns(max(start, end)),
            instrumentation_scope=_SCOPE,
        )
        for processor in self.processors:
            processor.on_end(readable)

    def flush(self, timeout: float | None = None) -> None:
        """Emit job spans still waiting for their end event; export, waiting up to ``timeout``."""
        self._emit_pending()
        limit = self.export_timeout if timeout is None else timeout
        _bounded(lambda: [p.force_flush(int(limit * 1000)) for p in self.processors], limit)

    def close(self) -> None:
        """Flush and stop the exporters; bounded by the export timeout even if they hang."""
        self._emit_pending()
        # BatchSpanProcessor.shutdown is unannotated in opentelemetry-sdk.
        _bounded(lambda: [p.shutdown() for p in self.processors], self.export_timeout + 1.0)  # type: ignore[no-untyped-call]


def _bounded(work: Callable[[], object], timeout: float) -> bool:
    """Run ``work`` on a daemon thread and wait at most ``timeout`` seconds for it."""
    thread = threading.Thread(target=work, name="dj-observe-export-wait", daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


def trace_exporters(config: ObservabilityConfig, stats: HookStats) -> list[SpanExporter]:
    """The exporters a config asks for (``file``, ``console``, ``otlp``; ``none`` for none)."""
    exporters: list[SpanExporter] = []
    for name in dict.fromkeys(config.tracing.exporter):
        if name == "file" and config.traces_path is not None:
            exporters.append(OtlpJsonFileExporter(config.traces_path))
        elif name == "console":
            exporters.append(console_exporter(sys.stderr))
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(
                OTLPSpanExporter(
                    endpoint=config.tracing.endpoint, timeout=config.tracing.export_timeout
                )
            )
    return exporters


def console_exporter(stream: IO[str]) -> SpanExporter:
    """Spans printed as JSON, one per span, to ``stream``."""
    return ConsoleSpanExporter(out=stream)
