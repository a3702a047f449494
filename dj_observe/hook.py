"""``ObservabilityHook``: the one object an executor calls for every event.

Each event is completed (timestamp, ids, process and thread), scrubbed of
secrets, written as one line to ``events.jsonl`` and folded; the change it made
goes to every sink (metrics, traces, extra ones).  Sinks are isolated: a sink
that fails is counted in ``dj_observe_sink_errors_total`` and logged once a
minute at most, and the job goes on.  Thread-safe; a context manager.

    with ObservabilityHook(work_dir="outputs/job1", job_id="job1") as hook:
        hook.job_start(total_partitions=4)
        hook.op_complete(0, "clean_links_mapper", 0, duration=0.2, input_rows=100,
                         output_rows=97)
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from dj_observe.config import ConfigError, ObservabilityConfig
from dj_observe.dispatch import Dispatcher, HookStats, JobFeed, QueuedDelivery, Sink
from dj_observe.events import FIELD_ORDER, Event, EventType, event_from_dict
from dj_observe.exposition import MetricsEndpoint, PushgatewaySink, wait_interruptibly
from dj_observe.redact import Redactor
from dj_observe.sidecar import Sidecar
from dj_observe.sinks.eventlog import EventLogWriter
from dj_observe.sinks.metrics import MetricsSink

__all__ = ["ObservabilityHook"]

_ENCODER = msgspec.json.Encoder(enc_hook=str)
_KNOWN_FIELDS = frozenset(FIELD_ORDER)
CLOSE_TIMEOUT = 30.0
"""Seconds ``close()`` waits for pending events to reach the sinks."""


class ObservabilityHook:
    """Fans every event out to the event log, Prometheus metrics and OpenTelemetry spans."""

    def __init__(
        self,
        config: ObservabilityConfig | Mapping[str, Any] | None = None,
        *,
        work_dir: str | os.PathLike[str] | None = None,
        job_id: str | None = None,
        pipeline: str | None = None,
        registry: CollectorRegistry | None = None,
        sinks: Iterable[Sink] = (),
    ) -> None:
        if not isinstance(config, ObservabilityConfig):
            config = ObservabilityConfig.from_dict(
                config,
                work_dir=None if work_dir is None else str(work_dir),
                job_id=job_id,
                pipeline=pipeline,
            )
        self.config = config
        self.job_id = config.job_id
        self.stats = HookStats()
        self.redact = Redactor(config.redact_keys)
        self.endpoint: MetricsEndpoint | None = None
        self.metrics: MetricsSink | None = None
        self.pusher: PushgatewaySink | None = None
        self.event_log: EventLogWriter | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._emit_lock = threading.Lock()
        self._id_prefix = uuid.uuid4().hex[:6]
        self._serial = itertools.count(1)
        built: list[Sink] = []
        if config.event_log and config.log_path is not None:
            self.event_log = EventLogWriter(config.log_path)
        self.sidecar: Sidecar | None = None
        if config.sidecar:
            if registry is not None:
                raise ConfigError("observability.sidecar: metrics live in the sidecar's registry")
            self.sidecar = Sidecar(config, self.stats)
        elif config.metrics.enabled:
            self.metrics = MetricsSink(registry, pipeline=config.pipeline, stats=self.stats)
            built.append(self.metrics)
            self._expose(config)
            if self.pusher is not None:
                built.append(self.pusher)
        if config.tracing.enabled and not config.sidecar:
            traces = self._trace_sink(config)
            if traces is not None:
                built.append(traces)
        built.extend(sinks)
        self.dispatcher = Dispatcher(built, self.stats)
        # With no sink to feed, the fold would only serve feed(); keep it for inline callers.
        self._fold_always = not config.background
        self.delivery = (
            QueuedDelivery(self.dispatcher) if config.background and self.dispatcher.sinks else None
        )

    # -- set-up --------------------------------------------------------------------

    def _expose(self, config: ObservabilityConfig) -> None:
        assert self.metrics is not None
        if config.metrics.port is not None:
            try:
                self.endpoint = MetricsEndpoint(
                    self.metrics.registry, config.metrics.host, config.metrics.port
                )
            except OSError as exc:  # port in use, address not available
                self.stats.sink_failed("metrics_endpoint", exc)
        if config.metrics.pushgateway:
            grouping = {"job_id": self.job_id} if self.job_id else None
            self.pusher = PushgatewaySink(
                self.metrics.registry,
                config.metrics.pushgateway,
                interval=config.metrics.push_interval,
                stats=self.stats,
                grouping_key=grouping,
            )

    def _trace_sink(self, config: ObservabilityConfig) -> Sink | None:
        from dj_observe.sinks.traces import TraceSink, trace_exporters

        exporters = trace_exporters(config, self.stats)
        if not exporters:
            return None
        return TraceSink(
            exporters,
            service_name=config.tracing.service_name,
            pipeline=config.pipeline,
            stats=self.stats,
            export_timeout_seconds=config.tracing.export_timeout,
        )

    @property
    def metrics_url(self) -> str | None:
        """Where /metrics is served, if it is (by the sidecar: once it has started)."""
        if self.sidecar is not None:
            return self.sidecar.metrics_url
        return self.endpoint.url if self.endpoint is not None else None

    def destinations(self) -> list[str]:
        """Where this hook's metrics and spans go, for a person: ``["/metrics at URL", ...]``."""
        found = []
        if self.metrics_url is not None:
            found.append(f"/metrics at {self.metrics_url}")
        if self.pusher is not None:
            found.append(f"pushes to {_without_credentials(self.pusher.url)}")
        tracing = self.config.tracing
        if tracing.enabled:
            if "file" in tracing.exporter and self.config.traces_path is not None:
                found.append(f"traces to {self.config.traces_path}")
            if "otlp" in tracing.exporter and tracing.endpoint:
                found.append(f"traces over OTLP to {_without_credentials(tracing.endpoint)}")
        return found

    def feed(self, job_id: str | None = None) -> JobFeed:
        """The fold of a job this hook has seen (the hook's own job by default).

        Call :meth:`flush` first when delivery is in the background.  A hook with
        no sink at all (event log only, background) does not fold.
        """
        return self.dispatcher.feed(job_id or self.job_id or "")

    # -- emitting ------------------------------------------------------------------

    def emit(
        self, event: str | EventType | Event | Mapping[str, Any], **fields: Any
    ) -> Event | None:
        """Record one event: ``emit("op_start", partition_id=0, ...)`` or ``emit(Event(...))``.

        Returns the normalised event, or ``None`` if it had no event type (counted
        as dropped).  Never raises because of a sink.
        """
        return self._record(event, fields, write=True)

    def observe(self, event: Mapping[str, Any]) -> Event | None:
        """An event another writer already logged (Data-Juicer's own event logger):
        folded and sent to the sinks like :meth:`emit`'s, but not written to this
        hook's event log."""
        return self._record(event, {}, write=False)

    def _record(
        self,
        event: str | EventType | Event | Mapping[str, Any],
        fields: dict[str, Any],
        *,
        write: bool,
    ) -> Event | None:
        try:
            data = {**event, **fields} if type(event) is dict else _fields_of(event, fields)
            line, normalised = self._line_and_event(self._complete(data))
        except Exception:  # a value no encoder takes: dropped and counted, never raised
            line, normalised = b"", None
        if normalised is None:
            with self._lock:
                self.stats.events_dropped += 1
            return None
        job = normalised.job_id or self.job_id or ""
        with self._emit_lock:  # the log and the sinks see events in the same order
            if write and self.event_log is not None:
                try:
                    self.event_log.write(line, normalised.event_type)
                except Exception as exc:
                    self.stats.sink_failed(self.event_log.name, exc)
            if self.delivery is not None:
                self.delivery.submit(normalised, job)
            elif self.dispatcher.sinks or self._fold_always:
                self.dispatcher.dispatch(normalised, job)
        if self.pusher is not None and job and "job_id" not in self.pusher.grouping_key:
            self.pusher.grouping_key["job_id"] = job
        return normalised

    def _complete(self, data: dict[str, Any]) -> dict[str, Any]:
        """The event's fields with the defaults filled in."""
        kind = data.get("event_type")
        kind = kind.value if isinstance(kind, EventType) else kind
        now = time.time()
        data["event_type"] = kind
        data.setdefault("timestamp", now)
        if data.get("job_id") is None and self.job_id:
            data["job_id"] = self.job_id
        data.setdefault("event_id", f"{kind}_{int(now)}_{self._id_prefix}{next(self._serial):x}")
        data.setdefault("process_id", _process_id())
        data.setdefault("thread_id", threading.get_ident())
        if kind == _JOB_START and self.config.pipeline:
            _name_the_pipeline(data, self.config.pipeline)
        return data

    def _line_and_event(self, record: dict[str, Any]) -> tuple[bytes, Event | None]:
        """The log line and the normalised event, secrets redacted from both.

        The usual event (only Data-Juicer's fields, of readable types) is normalised
        first and written from that, in Data-Juicer's key order; any other is redacted
        and written as given (known fields first), so nothing the caller sent is lost.
        """
        if _KNOWN_FIELDS.issuperset(record):
            try:
                event = msgspec.convert(record, Event, strict=False)
            except msgspec.ValidationError:
                pass
            else:
                if not self.redact.plain(
                    event.metadata,
                    event.op_args,
                    event.partition_meta,
                    event.config,
                    texts=(
                        event.message,
                        event.error_message,
                        event.stack_trace,
                        event.checkpoint_path,
                        event.output_path,
                        event.operation_name,
                        event.job_id,
                        event.event_id,
                        event.status,
                        event.error_type,
                    ),
                ):
                    event = msgspec.convert(self.redact(record), Event, strict=False)
                return _ENCODER.encode(event) + b"\n", event
        record = self.redact(record)
        try:
            normalised: Event | None = msgspec.convert(record, Event, strict=False)
        except msgspec.ValidationError:
            normalised = event_from_dict(record)
        return _ENCODER.encode(_in_field_order(record)) + b"\n", normalised

    # -- helpers mirroring Data-Juicer's event methods -----------------------------

    def job_start(self, *, message: str = "Job started", **fields: Any) -> Event | None:
        return self.emit(EventType.JOB_START, message=message, **fields)

    def job_complete(self, *, duration: float | None = None, **fields: Any) -> Event | None:
        message = "Job completed successfully" + (f" in {duration:.2f}s" if duration else "")
        fields.setdefault("message", message)
        return self.emit(EventType.JOB_COMPLETE, status="completed", duration=duration, **fields)

    def job_failed(self, error_message: str, **fields: Any) -> Event | None:
        fields.setdefault("message", f"Job failed: {error_message}")
        return self.emit(
            EventType.JOB_FAILED, status="failed", error_message=error_message, **fields
        )

    def partition_start(self, partition_id: int, **fields: Any) -> Event | None:
        fields.setdefault("message", f"Partition {partition_id} started processing")
        return self.emit(EventType.PARTITION_START, partition_id=partition_id, **fields)

    def partition_complete(self, partition_id: int, **fields: Any) -> Event | None:
        fields.setdefault("message", f"Partition {partition_id} completed successfully")
        return self.emit(EventType.PARTITION_COMPLETE, partition_id=partition_id, **fields)

    def partition_failed(
        self, partition_id: int, error_message: str, **fields: Any
    ) -> Event | None:
        fields.setdefault("message", f"Partition {partition_id} failed: {error_message}")
        return self.emit(
            EventType.PARTITION_FAILED,
            partition_id=partition_id,
            status="failed",
            error_message=error_message,
            **fields,
        )

    def op_start(
        self, partition_id: int, operation_name: str, operation_idx: int, **fields: Any
    ) -> Event | None:
        fields.setdefault(
            "message",
            f"Operation {operation_name} (idx {operation_idx}) started on partition {partition_id}",
        )
        return self.emit(
            EventType.OP_START,
            partition_id=partition_id,
            operation_name=operation_name,
            operation_idx=operation_idx,
            **fields,
        )

    def op_complete(
        self,
        partition_id: int,
        operation_name: str,
        operation_idx: int,
        *,
        duration: float | None = None,
        input_rows: int | None = None,
        output_rows: int | None = None,
        **fields: Any,
    ) -> Event | None:
        fields.setdefault(
            "message",
            f"Operation {operation_name} (idx {operation_idx}) "
            f"completed on partition {partition_id}",
        )
        return self.emit(
            EventType.OP_COMPLETE,
            partition_id=partition_id,
            operation_name=operation_name,
            operation_idx=operation_idx,
            status="success",
            duration=duration,
            input_rows=input_rows,
            output_rows=output_rows,
            **fields,
        )

    def op_failed(
        self,
        partition_id: int,
        operation_name: str,
        operation_idx: int,
        error_message: str,
        **fields: Any,
    ) -> Event | None:
        fields.setdefault(
            "message",
            f"Operation {operation_name} (idx {operation_idx}) "
            f"failed on partition {partition_id}: {error_message}",
        )
        return self.emit(
            EventType.OP_FAILED,
            partition_id=partition_id,
            operation_name=operation_name,
            operation_idx=operation_idx,
            status="failed",
            error_message=error_message,
            **fields,
        )

    def checkpoint_save(
        self,
        partition_id: int,
        operation_name: str,
        operation_idx: int,
        checkpoint_path: str,
        **fields: Any,
    ) -> Event | None:
        fields.setdefault(
            "message",
            f"Checkpoint saved for operation {operation_name} "
            f"(idx {operation_idx}) on partition {partition_id}",
        )
        return self.emit(
            EventType.CHECKPOINT_SAVE,
            partition_id=partition_id,
            operation_name=operation_name,
            operation_idx=operation_idx,
            checkpoint_path=checkpoint_path,
            **fields,
        )

    def checkpoint_load(
        self,
        partition_id: int,
        operation_name: str,
        operation_idx: int,
        checkpoint_path: str,
        **fields: Any,
    ) -> Event | None:
        fields.setdefault(
            "message",
            f"Checkpoint loaded for operation {operation_name} "
            f"(idx {operation_idx}) on partition {partition_id}",
        )
        return self.emit(
            EventType.CHECKPOINT_LOAD,
            partition_id=partition_id,
            operation_name=operation_name,
            operation_idx=operation_idx,
            checkpoint_path=checkpoint_path,
            **fields,
        )

    # -- lifecycle -----------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Dispatch pending events and push out what the sinks buffer (spans, pushes).

        Afterwards metrics and :meth:`feed` reflect every event emitted so far.
        """
        if self.delivery is not None:
            self.delivery.drain(timeout)
        self.dispatcher.flush(timeout)

    def close(self) -> None:
        """Flush and release everything: the log, exporters, the endpoint. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self.delivery is not None:
            self.delivery.close(CLOSE_TIMEOUT)
        self.dispatcher.close()
        if self.event_log is not None:
            try:
                self.event_log.close()
            except OSError as exc:
                self.stats.sink_failed(self.event_log.name, exc)
        if self.sidecar is not None:
            self.sidecar.close(CLOSE_TIMEOUT)
        if self.endpoint is not None:
            linger = self.config.metrics.linger
            if linger > 0:  # let a scraper see the final values
                announce(f"keeping {self.endpoint.url} up {linger:g} s (Ctrl-C ends it)")
                wait_interruptibly(linger)
            self.endpoint.close()

    def __enter__(self) -> ObservabilityHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _fields_of(
    event: str | EventType | Event | Mapping[str, Any], fields: dict[str, Any]
) -> dict[str, Any]:
    """One new dict of everything ``emit`` was given but a plain dict (the caller's stays
    as it was)."""
    if isinstance(event, Event):
        data = msgspec.structs.asdict(event)
        data.update(data.pop("extra", None) or {})
        data.update(fields)
        return data
    if isinstance(event, Mapping):
        return {**event, **fields}
    return {"event_type": str(event), **fields}


def _in_field_order(record: dict[str, Any]) -> dict[str, Any]:
    """Data-Juicer's fields first, in its order, then the others as given; no ``None``s."""
    ordered = {key: record[key] for key in FIELD_ORDER if key in record}
    ordered.update(record)
    return {key: value for key, value in ordered.items() if value is not None}


def announce(message: str) -> None:
    """One line for the person running the job, on stderr; never raises."""
    with contextlib.suppress(OSError, ValueError):  # stderr closed or gone
        print(f"dj-observe: {message}", file=sys.stderr, flush=True)


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}{sep}{host.rpartition('@')[2]}{slash}{path}" if sep else url


_pid = os.getpid()


def _process_id() -> int:
    return _pid


def _forget_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forget_pid)


_JOB_START = EventType.JOB_START.value


def _name_the_pipeline(data: dict[str, Any], pipeline: str) -> None:
    """Put the hook's pipeline in a ``job_start`` that names none, so that the log (and a
    replay of it) carries the label the live metrics had."""
    meta = data.get("metadata")
    if meta is None:
        data["metadata"] = {"pipeline": pipeline}
    elif isinstance(meta, Mapping) and not meta.get("pipeline") and not meta.get("project_name"):
        data["metadata"] = {**meta, "pipeline": pipeline}
