"""Helpers shared by the tests: hand-written event logs, folds and comparable views."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import io
import json
import math
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families

from dj_observe.cli import main
from dj_observe.eventlog import ReadStats, decode_block
from dj_observe.report import chromium_command
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


# -- live components: loopback OTLP receiver, Pushgateway, promtool, scrapes, a job driver ----

LOOPBACK = "127.0.0.1"
WAIT_SECONDS = 10.0
"""Upper bound of every wait on a real component (a healthy one answers in milliseconds)."""


class TtyStringIO(io.StringIO):
    """A stream that claims to be a terminal, so rich (and ``watch``'s Live) treat it as one."""

    def isatty(self) -> bool:
        return True


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT_SECONDS, step: float = 0.05):
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(step)


def finishes_within(seconds: float, function: Callable[[], Any]) -> bool:
    """Run ``function`` on a daemon thread; whether it returned (or raised) within ``seconds``.

    An exception in ``function`` is re-raised here, so a test sees it.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            function()
        except BaseException as exc:  # re-raised on the test's thread
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if errors:
        raise errors[0]
    return not worker.is_alive()


class OtlpReceiver:
    """A loopback OTLP/HTTP traces receiver (``POST /v1/traces``, protobuf bodies).

    Every request body is decoded with opentelemetry-proto's ``ExportTraceServiceRequest``.
    ``status`` is the HTTP status it answers (500 simulates a broken collector); ``hang``
    makes it sleep that many seconds before answering (a stuck collector), cut short when
    the receiver stops.
    """

    def __init__(self, *, status: int = 200, hang: float = 0.0) -> None:
        self.status = status
        self.hang = hang
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                elif self.headers.get("Content-Encoding") == "deflate":
                    body = zlib.decompress(body)
                code = receiver._receive(self.path, body)
                if receiver.hang:
                    receiver._stopping.wait(receiver.hang)
                reply = ExportTraceServiceResponse().SerializeToString()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/x-protobuf")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:  # the exporter gave up waiting and went away
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="otlp-receiver", daemon=True
        )

    def _receive(self, path: str, body: bytes) -> int:
        if path != "/v1/traces":
            return 404
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self._lock:
            self.paths.append(path)
            self.requests.append(request)
        return self.status

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:<port>``); traces go to ``url + "/v1/traces"``."""
        return f"http://{LOOPBACK}:{self.server.server_port}"

    @property
    def spans(self) -> list[SpanView]:
        with self._lock:
            requests = list(self.requests)
        return [span for request in requests for span in spans_of(request)]

    def wait_for_spans(self, count: int, timeout: float = 3.0) -> list[SpanView]:
        """The spans received once there are ``count`` (or ``timeout`` passed: fewer)."""
        wait_until(lambda: len(self.spans) >= count, timeout)
        return self.spans

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(WAIT_SECONDS)


@dataclasses.dataclass(frozen=True)
class SpanView:
    """One received span as comparable plain data (ids in hex, times in ns)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start: int
    end: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    events: tuple[tuple[str, int, tuple[tuple[str, Any], ...]], ...]
    links: tuple[tuple[str, str, tuple[tuple[str, Any], ...]], ...]
    service_name: str

    def comparable(self) -> dict[str, Any]:
        """Everything but the resource (a new ``service.instance.id`` per process)."""
        view = dataclasses.asdict(self)
        view.pop("service_name")
        return view


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_any_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return {item.key: _any_value(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def _attributes(items: Iterable[Any]) -> dict[str, Any]:
    return {item.key: _any_value(item.value) for item in items}


def spans_of(request: ExportTraceServiceRequest) -> list[SpanView]:
    """The spans of one ``ExportTraceServiceRequest``."""
    views = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                views.append(
                    SpanView(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        start=span.start_time_unix_nano,
                        end=span.end_time_unix_nano,
                        attributes=_attributes(span.attributes),
                        status_code=span.status.code,
                        status_message=span.status.message,
                        events=tuple(
                            (
                                event.name,
                                event.time_unix_nano,
                                tuple(sorted(_attributes(event.attributes).items())),
                            )
                            for event in span.events
                        ),
                        links=tuple(
                            (
                                link.trace_id.hex(),
                                link.span_id.hex(),
                                tuple(sorted(_attributes(link.attributes).items())),
                            )
                            for link in span.links
                        ),
                        service_name=str(resource.get("service.name", "")),
                    )
                )
    return views


_HEX_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})


def _hex_ids_to_base64(value: Any) -> Any:
    """OTLP/JSON writes ids in hex; protobuf's JSON mapping of ``bytes`` wants base64."""
    if isinstance(value, dict):
        return {
            key: base64.b64encode(bytes.fromhex(item)).decode()
            if key in _HEX_ID_KEYS and isinstance(item, str)
            else _hex_ids_to_base64(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_hex_ids_to_base64(item) for item in value]
    return value


def read_traces_file(path: Path) -> list[SpanView]:
    """The spans of an OTLP/JSON lines file, each line parsed into ``ExportTraceServiceRequest``."""
    spans = []
    for line in path.read_text().splitlines():
        request = json_format.ParseDict(
            _hex_ids_to_base64(json.loads(line)), ExportTraceServiceRequest()
        )
        spans.extend(spans_of(request))
    return spans


def by_id(spans: Iterable[SpanView]) -> dict[str, SpanView]:
    return {span.span_id: span for span in spans}


# -- Prometheus: scrapes, samples, promtool, the Pushgateway --------------------------------------

OPENMETRICS = "application/openmetrics-text; version=1.0.0"

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def scrape(url: str, accept: str | None = None, timeout: float = 5.0) -> str:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read().decode()


def samples(text: str) -> dict[SampleKey, float]:
    """Every sample of a text exposition, keyed by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def sample(found: dict[SampleKey, float], name: str, **labels: str) -> float | None:
    """The value of one sample, ``None`` if there is none."""
    return found.get((name, tuple(sorted(labels.items()))))


def series(found: dict[SampleKey, float], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples called ``name``: labels -> value."""
    return {labels: value for (sample_name, labels), value in found.items() if sample_name == name}


def without_created(found: dict[SampleKey, float]) -> dict[SampleKey, float]:
    """Samples minus ``*_created`` (when a child was created: differs between runs)."""
    return {key: value for key, value in found.items() if not key[0].endswith("_created")}


def binary(name: str) -> str:
    """The path of an installed binary; skips the test when it is missing (a failure in CI)."""
    path = shutil.which(name)
    if path is None and os.path.exists(f"/usr/bin/{name}"):
        path = f"/usr/bin/{name}"
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    """``promtool check metrics`` on an exposition (read from stdin)."""
    return subprocess.run(
        [binary("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class LoopbackDaemon:
    """A real binary serving HTTP on a loopback port (``--web.listen-address``), logged to a file.

    Ready once ``/-/ready`` answers 200 (Prometheus, Alertmanager and the Pushgateway all have
    it); ``start_timeout`` bounds the wait. A context manager: the process is stopped on exit.
    """

    name = ""
    start_timeout = 30.0

    def __init__(self, workdir: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log = workdir / f"{self.name}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [binary(self.name), f"--web.listen-address={LOOPBACK}:{self.port}", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if not wait_until(self._ready, self.start_timeout):
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {self.log_tail()}")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return response.status == 200
        except urllib.error.HTTPError as exc:
            return exc.code == 401  # up, and asking for the credentials it was given
        except OSError:
            return False

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def get_json(self, path: str, **params: str) -> Any:
        """The JSON answer of ``GET path`` (an HTTP error's JSON body too)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 400/422: the error is in the JSON body
            return json.loads(exc.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Pushgateway(LoopbackDaemon):
    """A real ``prometheus-pushgateway`` on a loopback port, with its persistence file."""

    name = "prometheus-pushgateway"

    def __init__(self, workdir: Path, *flags: str) -> None:
        super().__init__(workdir, f"--persistence.file={workdir / 'pushgateway.persist'}", *flags)

    def samples(self) -> dict[SampleKey, float]:
        return samples(scrape(f"{self.url}/metrics"))


class Prometheus(LoopbackDaemon):
    """A real ``prometheus`` on a loopback port with ``config`` (a prometheus.yml as a dict).

    Alerts are re-sent to Alertmanager every second (``--rules.alert.resend-delay``), so a test
    with a 1 s evaluation interval sees a change there within seconds.
    """

    name = "prometheus"

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        config_file = workdir / "prometheus.yml"
        config_file.write_text(json.dumps(config))  # JSON is YAML
        super().__init__(
            workdir,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            "--rules.alert.resend-delay=1s",
        )

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant query's result; raises ``AssertionError`` with Prometheus' error."""
        answer = self.get_json("/api/v1/query", query=expr)
        assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
        return answer["data"]["result"]

    def alerts(self, state: str = "firing") -> list[dict[str, Any]]:
        """The alerts in ``state`` (firing or pending) in ``/api/v1/alerts``."""
        found = self.get_json("/api/v1/alerts")["data"]["alerts"]
        return [alert for alert in found if alert["state"] == state]


class Alertmanager(LoopbackDaemon):
    """A real ``prometheus-alertmanager`` on a loopback port, alone (no cluster port)."""

    name = "prometheus-alertmanager"

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        config_file = workdir / "alertmanager.yml"
        config_file.write_text(json.dumps(config))
        super().__init__(
            workdir,
            f"--config.file={config_file}",
            f"--storage.path={workdir / 'alertmanager-data'}",
            "--cluster.listen-address=",
        )

    def alerts(self) -> list[dict[str, Any]]:
        """``/api/v2/alerts``: every alert it holds, with ``status.inhibitedBy``."""
        return self.get_json("/api/v2/alerts")

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Send alerts the way Prometheus does (``POST /api/v2/alerts``)."""
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


class WebhookReceiver:
    """A loopback HTTP endpoint that keeps every JSON body POSTed to it, with its path.

    Alertmanager's ``webhook_configs`` post one notification per alert group: ``receiver``,
    ``status``, ``groupLabels``, ``alerts`` (each with ``status``, ``labels``, ``annotations``).
    """

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="webhook-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_port}"

    def alerts(self) -> list[tuple[str, dict[str, Any]]]:
        """(path, alert) of every alert in every notification so far, in arrival order."""
        with self._lock:
            return [(path, alert) for path, body in self.received for alert in body["alerts"]]

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(WAIT_SECONDS)


# -- a small job, emitted through the hook's public API --------------------------------------------

T0 = 1_754_712_053.5
"""Start time of driven jobs (fixed, so timestamps are known values)."""
OPS = ("clean_links_mapper", "text_length_filter")
ROWS = ((100, 90), (90, 80))
"""(rows in, rows out) of each op in ``OPS``, on every partition."""


def op_times(partition: int, op_index: int, start: float = T0) -> tuple[float, float]:
    """(start, end) timestamps of op ``op_index`` on ``partition`` in :func:`drive_job`."""
    begin = start + 10 + partition * 10 + op_index * 2 + 0.25
    return begin, begin + 1.5


def drive_job(
    hook: Any,
    *,
    partitions: int = 3,
    failed: dict[int, int] | None = None,
    error: str = "ValueError: could not process sample 7",
    ops: tuple[str, ...] = OPS,
    checkpoints: bool = True,
    start: float = T0,
    end: bool = True,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Emit a job through the hook's helpers, with known timestamps and rows.

    ``failed`` maps a partition id to the index of the op that fails on it.  The job
    ends with ``job_failed`` when some partition failed, else ``job_complete``.
    """
    failed = failed or {}
    meta = {"num_partitions": partitions, "operations": list(ops), **(metadata or {})}
    hook.job_start(timestamp=start, metadata=meta)
    for pid in range(partitions):
        base = start + 10 + pid * 10
        hook.partition_start(pid, timestamp=base)
        for idx, name in enumerate(ops):
            begin, finish = op_times(pid, idx, start)
            rows_in, rows_out = ROWS[idx % len(ROWS)]
            hook.op_start(pid, name, idx, timestamp=begin)
            if failed.get(pid) == idx:
                hook.op_failed(pid, name, idx, error, timestamp=finish)
                hook.partition_failed(pid, error, timestamp=finish + 0.125)
                break
            hook.op_complete(
                pid,
                name,
                idx,
                timestamp=finish,
                duration=finish - begin,
                input_rows=rows_in,
                output_rows=rows_out,
            )
            if checkpoints:
                hook.checkpoint_save(
                    pid, name, idx, f"/ckpt/p{pid}_op{idx}.parquet", timestamp=finish + 0.0625
                )
        else:
            hook.partition_complete(pid, timestamp=base + 9)
    if not end:
        return
    finish = start + 20 + partitions * 10
    if failed:
        hook.job_failed(f"{len(failed)} partition(s) failed", timestamp=finish)
    else:
        hook.job_complete(timestamp=finish, duration=finish - start)


def read_events(work_dir: Path) -> list[dict[str, Any]]:
    """The events of ``<work_dir>/events.jsonl``, each line parsed as JSON."""
    return [json.loads(line) for line in (work_dir / "events.jsonl").read_bytes().splitlines()]


# The recording rules in prometheus/rules/recording.yml that the dashboards may use.
RECORDING_RULES = {
    "dj_job:partition_progress:ratio",
    "dj_job:rows_out:rate1m",
    "dj_op:duration_seconds:p50",
    "dj_op:duration_seconds:p95",
    "dj_op:duration_seconds:p99",
    "dj_op:rows_retention:ratio",
    "dj_job:seconds_since_last_event",
    # drift between the jobs of a pipeline (the DjOpRetentionShift and DjOpSlowdown alerts)
    "dj_pipeline:latest_job:start_timestamp",
    "dj_pipeline_op:rows_retention:latest",
    "dj_pipeline_op:rows_retention:recent",
    "dj_op:duration_seconds:mean",
    "dj_pipeline_op:duration_seconds_mean:latest",
    "dj_pipeline_op:duration_seconds_mean:recent",
}


# -- headless Chromium ---------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
BROWSER_TIMEOUT = 60
PARTITION_GROUP = re.compile(r'<g class="partition" data-partition="(\d+)"')


def partition_groups(html: str) -> list[int]:
    """Partition ids of the report timeline's bar groups, in page order."""
    return [int(pid) for pid in PARTITION_GROUP.findall(html)]


def chromium() -> str:
    """Debian's Chromium (skipped locally when missing; CI installs it)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    return CHROMIUM


def run_chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Open ``page`` from a file URL in headless Chromium, the network blocked."""
    command = chromium_command(
        chromium(), page.resolve().as_uri(), f"--user-data-dir={profile}", *extra
    )
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
        cwd=profile.parent,
        check=False,
    )


def page_errors(stderr: str) -> list[str]:
    """Console messages, uncaught exceptions and failed loads Chromium logged for a page."""
    return [
        line
        for line in stderr.splitlines()
        if "CONSOLE" in line or "Uncaught" in line or "net::ERR" in line
    ]


# -- small real jobs of the demo config, run by `dj-observe run` -----------------------------------

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def demo_config(
    path: Path, work_dir: Path, *, rows: int = 1200, partition_size: int = 400, **keys: Any
) -> Path:
    """``configs/demo.yaml`` with ``rows`` demo rows in partitions of ``partition_size``, jobs
    under ``work_dir``, no metrics endpoint, and ``keys`` replacing top-level keys; its path."""
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config.update(
        dataset_path=f"demo://{rows}",
        work_dir=str(work_dir),
        export_path=str(work_dir / "result.jsonl"),
        observability={"tracing": {"exporter": "file"}},
        **keys,
    )
    config["partition"]["size"] = partition_size
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``dj_observe.cli.main(argv)`` in process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def progress_lines(text: str) -> list[str]:
    """The counts of ``dj-observe run``'s plain progress lines in ``text`` (after the time)."""
    return re.findall(r"^\d+:\d\d:\d\d (partitions .*)$", text, flags=re.MULTILINE)
