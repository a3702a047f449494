"""Hostile or broken log content: no view crashes, ``serve`` keeps serving, output stays bounded.

Each test writes what a real job can produce (a number out of float range, rich markup
or terminal escape sequences in an error message or op name, a 4 MB message, one line
larger than half of a 64 MiB log) and drives the public interface on it.
"""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from support import (
    LOOPBACK,
    Pushgateway,
    TtyStringIO,
    ev,
    free_port,
    sample,
    samples,
    scrape,
    wait_until,
    write_log,
)

from dj_observe.cli import main
from dj_observe.dispatch import HookStats
from dj_observe.eventlog import DEFAULT_MAX_LINE_BYTES
from dj_observe.exposition import MetricsEndpoint, PushgatewaySink
from dj_observe.hook import ObservabilityHook
from dj_observe.serve import JobsExporter

HUGE_INT = "1" + "0" * 400
"""A JSON number far outside float's range."""


def huge(line: str) -> str:
    """``line`` with every ``HUGE`` replaced by :data:`HUGE_INT`."""
    return line.replace("HUGE", HUGE_INT)


def run(*argv: str, stdout: io.StringIO | None = None) -> tuple[int, str, str]:
    out = stdout if stdout is not None else io.StringIO()
    err = io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def hostile_job(
    job_dir: Path, *, error: str = "boom", op: str = "clean_links_mapper", job_id: str = "hostile"
) -> Path:
    """A finished job with one failed partition whose error and op name are ``error``/``op``."""
    return write_log(
        job_dir,
        [
            ev("job_start", 1_700_000_000.0, job_id=job_id, total_partitions=2),
            ev("partition_start", 1_700_000_001.0, partition_id=0),
            ev("op_start", 1_700_000_001.0, partition_id=0, operation_name=op, operation_idx=0),
            ev(
                "op_failed",
                1_700_000_002.0,
                partition_id=0,
                operation_name=op,
                operation_idx=0,
                error_message=error,
            ),
            ev("partition_failed", 1_700_000_002.0, partition_id=0, error_message=error),
            ev("partition_start", 1_700_000_001.0, partition_id=1),
            ev("partition_complete", 1_700_000_003.0, partition_id=1),
            ev("job_failed", 1_700_000_004.0, error_message=error),
        ],
    )


def views(job_dir: Path, tmp_path: Path, stream_factory=io.StringIO) -> dict[str, str]:
    """Every command's output on ``job_dir``: snapshot JSON and tables, jobs, watch, report."""
    out: dict[str, str] = {}
    for name, argv in {
        "snapshot": ("snapshot", str(job_dir)),
        "human": ("snapshot", "--human-readable", str(job_dir)),
        "jobs": ("jobs", str(job_dir.parent)),
        "watch": ("watch", str(job_dir), "--interval", "0.05"),
        "replay": ("replay", str(job_dir)),
        "report": ("report", str(job_dir), "-o", str(tmp_path / "report.html")),
    }.items():
        code, text, err = run(*argv, stdout=stream_factory())
        assert code in (0, 4), f"{name} exited {code}: {err}"
        assert "Traceback" not in err
        out[name] = text
    out["report"] = (tmp_path / "report.html").read_text()
    return out


# -- numbers out of range ------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        huge(
            '{"event_type":"op_start","timestamp":HUGE,"partition_id":0,"operation_name":"a",'
            '"operation_idx":0}'
        ),
        '{"event_type":"op_complete","timestamp":1700000002,"partition_id":0,'
        '"operation_name":"a","operation_idx":0,"duration":1e400}',
        huge(
            '{"event_type":"op_complete","timestamp":"HUGE","partition_id":HUGE,"input_rows":HUGE}'
        ),
        huge(
            '{"event_type":"job_start","timestamp":"9999-12-31T23:59:59+00:00","metadata":'
            '{"duration_seconds":HUGE}}'
        ),
    ],
)
def test_a_number_out_of_float_range_is_not_fatal_to_any_view(job_dir, tmp_path, line):
    hostile_job(job_dir)
    with (job_dir / "events.jsonl").open("a") as log:
        log.write(line + "\n")
    out = views(job_dir, tmp_path)
    assert json.loads(out["snapshot"])["job_info"]["job_id"] == "hostile"


@pytest.mark.parametrize("timestamp", [1e18, -62135600000.0, -1e15])
def test_a_timestamp_no_calendar_holds_is_shown_as_a_number(job_dir, tmp_path, timestamp):
    write_log(job_dir, [ev("job_start", timestamp, job_id="t"), ev("job_complete", timestamp)])
    out = views(job_dir, tmp_path)
    assert f"{timestamp:g}" in out["human"]


def test_serve_keeps_serving_a_log_with_a_number_out_of_range(tmp_path):
    outputs = tmp_path / "outputs"
    hostile_job(outputs / "bad")
    with (outputs / "bad" / "events.jsonl").open("a") as log:
        log.write(huge('{"event_type":"op_start","timestamp":HUGE}\n'))
    hostile_job(outputs / "good", job_id="good")
    exporter = JobsExporter(outputs, retention=float("inf"))  # the jobs ended in 2023
    port = free_port()
    server = threading.Thread(
        target=exporter.serve_forever, args=(LOOPBACK, port, 0.05), daemon=True
    )
    server.start()
    try:
        found = wait_until(lambda: _job_samples(f"http://{LOOPBACK}:{port}/metrics"))
        with (outputs / "bad" / "events.jsonl").open("a") as log:
            log.write(huge('{"event_type":"op_complete","duration":1e400,"timestamp":HUGE}\n'))
        time.sleep(0.2)
        assert server.is_alive()
        again = _job_samples(f"http://{LOOPBACK}:{port}/metrics")
    finally:
        exporter.stop()
        server.join(5)
    labels = {"job_id": "hostile", "pipeline": "", "state": "failed"}
    assert found and sample(found, "dj_job_status", **labels) == 1
    assert (
        again
        and sample(again, "dj_events_total", job_id="hostile", pipeline="", event_type="op_start")
        is not None
    )
    assert not exporter.stats.sink_errors


def _job_samples(url: str):
    """The scrape's samples once both jobs are in it (``None`` before)."""
    try:
        found = samples(scrape(url, timeout=2))
    except OSError:
        return None
    jobs = {dict(labels).get("job_id") for _, labels in found}
    return found if {"hostile", "good"} <= jobs else None


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize(
    "fields",
    [
        {"timestamp": 10**400},
        {"duration": 10**400},
        {"input_rows": 10**400, "partition_id": -(10**400)},
        {"timestamp": "1e400", "duration": float("inf")},
        {"metadata": {"duration_seconds": 10**400}},
    ],
)
def test_hook_emit_of_a_number_out_of_range_does_not_raise(tmp_path, background, fields):
    registry = CollectorRegistry()
    with ObservabilityHook(
        {"background": background, "tracing": {"enabled": False}},
        work_dir=tmp_path,
        job_id="j",
        registry=registry,
    ) as hook:
        event = hook.emit(
            "op_complete",
            **{"partition_id": 0, "operation_name": "a", "operation_idx": 0, **fields},
        )
        hook.op_complete(0, "a", 1, duration=0.5)
    assert event is not None
    code, out, err = run("snapshot", str(tmp_path))
    assert code == 0, err
    assert json.loads(out)["metadata"]["events_analyzed"] == 2


# -- rich markup and terminal escape sequences ---------------------------------------------

MARKUP_ERROR = "could not open [/data/shard-0001.parquet] [bold]x[/bold] [link=http://e]y"
MARKUP_OP = "mapper[/link][/]"

ESCAPES = {
    "\x1b]0;owned\x07": "\\x1b]0;owned\\x07",  # OSC 0: window title
    "\x1b[2J": "\\x1b[2J",  # clear screen
    "\x1b[8m": "\\x1b[8m",  # hidden text
    "\x1b]8;;http://evil.example/\x1b\\": "\\x1b]8;;http://evil.example/\\x1b\\",  # OSC 8
    "over\rwrite": "over\\rwrite",  # carriage return
    "bidi\u202eevil": "bidi\\u202eevil",  # right-to-left override
}
HOSTILE_OP = "op" + "".join(ESCAPES)
"""An op name carrying every sequence (the fold strips CSI sequences from error messages
only, so the op name is where they all reach the views)."""

TERMINAL_VIEWS = ("human", "jobs", "watch")


@pytest.mark.parametrize("stream", [io.StringIO, TtyStringIO], ids=["piped", "terminal"])
def test_markup_in_data_is_shown_as_text(job_dir, tmp_path, stream):
    hostile_job(job_dir, error=MARKUP_ERROR, op=MARKUP_OP)
    out = views(job_dir, tmp_path, stream)
    for name in ("human", "watch"):
        flat = "".join(out[name].split())  # tables wrap long cells
        assert "[/data/shard-0001.parquet]" in flat, name
        assert MARKUP_OP in flat, name


def test_a_job_id_and_directory_with_markup_are_shown_as_text(tmp_path):
    job_dir = tmp_path / "out [/red]" / "job[/]"
    write_log(job_dir, [ev("job_start", 1.0, job_id="[/bold]id"), ev("job_complete", 2.0)])
    for stream in (io.StringIO, TtyStringIO):
        out = views(job_dir, tmp_path, stream)
        assert "[/bold]id" in out["jobs"] and "[/bold]id" in out["human"]


@pytest.mark.parametrize("stream", [io.StringIO, TtyStringIO], ids=["piped", "terminal"])
def test_escape_sequences_in_data_never_reach_the_terminal(job_dir, tmp_path, stream):
    hostile_job(job_dir, error="failed" + "".join(ESCAPES), op=HOSTILE_OP, job_id=HOSTILE_OP)
    out = views(job_dir, tmp_path, stream)
    for name in (*TERMINAL_VIEWS, "report"):
        text = out[name]
        flat = "".join(text.split())
        for raw, shown in ESCAPES.items():
            assert raw not in text, (name, raw)
            assert "".join(shown.split()) in flat, (name, shown)
    if stream is io.StringIO:  # (rich's live view moves the cursor with its own \r)
        assert "\r" not in out["watch"]
    _, _, said = run("replay", str(job_dir))  # its summary line names the job
    assert "replayed" in said and not any(raw in said for raw in ESCAPES)


def test_a_4_mb_error_message_is_shortened_in_every_view(job_dir, tmp_path):
    hostile_job(job_dir, error="E" * (4 << 20), op="O" * 200_000)
    out = views(job_dir, tmp_path)
    for name in (*TERMINAL_VIEWS, "report"):
        assert len(out[name]) < 200_000, (name, len(out[name]))
    assert "chars)" in out["human"]


# -- one line longer than half of a large log ---------------------------------------------


def test_a_64_mib_log_whose_last_line_is_most_of_it_is_read(job_dir, monkeypatch):
    """The parallel fold has nothing to share out; the oversized line is skipped, counted."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    hostile_job(job_dir)
    with (job_dir / "events.jsonl").open("ab") as log:
        log.write(b'{"event_type":"op_start","message":"')
        log.write(b"x" * (DEFAULT_MAX_LINE_BYTES + 1))
        log.write(b'"}\n')
    code, out, err = run("snapshot", "--workers", "2", str(job_dir))
    assert code == 0, err
    metadata = json.loads(out)["metadata"]
    assert metadata["oversized_lines"] == 1
    assert metadata["events_analyzed"] == 8


# -- bounded output of the metrics endpoint -------------------------------------------------


def test_label_values_are_capped(tmp_path):
    registry = CollectorRegistry()
    with ObservabilityHook(
        {"tracing": {"enabled": False}}, work_dir=tmp_path, job_id="j" * 100_000, registry=registry
    ) as hook:
        for idx, op in enumerate(("a" * (1 << 20), "b" * (1 << 20))):
            hook.op_start(0, op, idx)
            hook.op_complete(0, op, idx, duration=0.1, input_rows=1, output_rows=1)
    assert len(generate_latest(registry)) < 64_000


def test_an_idle_connection_to_metrics_is_closed(tmp_path):
    endpoint = MetricsEndpoint(CollectorRegistry(), LOOPBACK, 0, request_timeout=0.3)
    try:
        with socket.create_connection((LOOPBACK, endpoint.port), timeout=5) as idle:
            idle.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never finishes the request
            began = time.monotonic()
            assert idle.recv(1024) == b""  # the server gave up on it
            assert time.monotonic() - began < 4
        scrape(endpoint.url)  # and it still answers others
    finally:
        endpoint.close()


# -- Pushgateway credentials ---------------------------------------------------------------

PUSH_PASSWORD = "push-s3cret"
PUSH_PASSWORD_HASH = "$2b$04$abcdefghijklmnopqrstuu0j7uTwN09H0M.IDovYjFgU53kZDpmJm"
"""bcrypt of ``PUSH_PASSWORD`` (cost 4), for the Pushgateway's web config."""


def test_pushgateway_url_credentials_are_sent_as_basic_auth(tmp_path):
    web_config = tmp_path / "web.yml"
    web_config.write_text(f"basic_auth_users:\n  pusher: '{PUSH_PASSWORD_HASH}'\n")
    gateway = Pushgateway(tmp_path, f"--web.config.file={web_config}")
    try:
        registry = CollectorRegistry()
        stats = HookStats()
        host = gateway.url.removeprefix("http://")
        pusher = PushgatewaySink(
            registry,
            f"http://pusher:{PUSH_PASSWORD}@{host}",
            interval=3600,
            stats=stats,
            grouping_key={"job_id": "j"},
        )
        wrong = PushgatewaySink(
            registry,
            f"http://pusher:wrong@{host}",
            interval=3600,
            stats=stats,
            grouping_key={"job_id": "j"},
        )
        assert pusher.push() is True
        assert wrong.push() is False
        pusher.close()
        wrong.close()
        assert PUSH_PASSWORD not in pusher.url
        assert "wrong" not in wrong.url
        logged = gateway.log.read_text()
        assert PUSH_PASSWORD not in logged
    finally:
        gateway.stop()


# -- side files ----------------------------------------------------------------------------

SIDE_FILES = {
    "job_summary.json": "job_summary.json",
    "dag_execution_plan.json": "dag_execution_plan.json",
    "partitioning_info.json": "checkpoints/partitioning_info.json",
    "cli.yaml": "cli.yaml",
}
DEEP = {
    "json": b'{"nodes": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001,
    "yaml": b"arguments: " + b"[" * 100_000 + b"]" * 100_000,
}


def side_file_errors(job_dir: Path) -> list[str]:
    """The snapshot's ``metadata.side_file_errors`` (the snapshot must finish in time)."""
    result: list[tuple[int, str, str]] = []
    thread = threading.Thread(target=lambda: result.append(run("snapshot", str(job_dir))))
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "the snapshot hangs"
    [(code, out, err)] = result
    assert code == 0, err
    return json.loads(out)["metadata"]["side_file_errors"]


def unfinished_job(job_dir: Path) -> Path:
    """A job that has not ended: its resumption command is looked for in ``cli.yaml``."""
    return write_log(job_dir, [ev("job_start", 1.0, job_id="j", total_partitions=2)])


@pytest.mark.parametrize("name", sorted(SIDE_FILES))
def test_a_side_file_nested_100k_deep_is_an_error_not_a_traceback(job_dir, name):
    path = unfinished_job(job_dir) / SIDE_FILES[name]
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(DEEP["yaml" if name.endswith(".yaml") else "json"])
    [error] = side_file_errors(job_dir)
    assert error.startswith(f"{path.name}: ") and "deep" in error


@pytest.mark.parametrize("name", sorted(SIDE_FILES))
def test_a_fifo_as_a_side_file_is_not_read(job_dir, name):
    path = unfinished_job(job_dir) / SIDE_FILES[name]
    path.parent.mkdir(exist_ok=True)
    os.mkfifo(path)
    assert side_file_errors(job_dir) == [f"{path.name}: not a regular file"]


@pytest.mark.parametrize("name", sorted(SIDE_FILES))
def test_a_side_file_linked_to_dev_zero_is_not_read(job_dir, name):
    path = unfinished_job(job_dir) / SIDE_FILES[name]
    path.parent.mkdir(exist_ok=True)
    path.symlink_to("/dev/zero")
    assert side_file_errors(job_dir) == [f"{path.name}: not a regular file"]


def test_a_side_file_over_the_size_cap_is_not_read(job_dir, monkeypatch):
    import dj_observe.tracker

    monkeypatch.setattr(dj_observe.tracker, "MAX_SIDE_FILE_BYTES", 1000)
    (unfinished_job(job_dir) / "job_summary.json").write_text(
        json.dumps({"job_id": "j", "padding": "x" * 2000})
    )
    [error] = side_file_errors(job_dir)
    assert error.startswith("job_summary.json: larger than")


def test_jobs_lists_a_job_whose_side_files_cannot_be_read(job_dir):
    unfinished_job(job_dir)
    os.mkfifo(job_dir / "job_summary.json")
    (job_dir / "dag_execution_plan.json").symlink_to("/dev/zero")
    result: list[tuple[int, str, str]] = []
    thread = threading.Thread(target=lambda: result.append(run("jobs", str(job_dir.parent))))
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "jobs hangs"
    [(code, out, err)] = result
    assert code == 0, err
    assert "j" in out
