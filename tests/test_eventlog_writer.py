"""The event-log writer: whole lines, O_APPEND, threads and processes, fsync, torn tails."""

from __future__ import annotations

import json
import multiprocessing
import os

from support import append_log, ev, read_events, snapshot_doc

import dj_observe.sinks.eventlog as eventlog_module
from dj_observe.hook import ObservabilityHook
from dj_observe.sinks.eventlog import EventLogWriter, repair_torn_tail

QUIET = {"tracing": {"enabled": False}, "metrics": {"enabled": False}}


def _emit_from_process(work_dir: str, worker: int, count: int) -> None:
    """A separate process with its own hook on the same job directory."""
    with ObservabilityHook(QUIET, work_dir=work_dir, job_id="job1") as hook:
        for i in range(count):
            hook.op_start(
                worker, "clean_links_mapper", 0, metadata={"worker": worker, "i": i, "pad": "x" * i}
            )


def test_one_line_per_event_in_emit_order(job_dir):
    with ObservabilityHook(QUIET, work_dir=job_dir, job_id="job1") as hook:
        for pid in range(10):
            hook.partition_start(pid)

    data = (job_dir / "events.jsonl").read_bytes()
    assert data.count(b"\n") == 10
    assert [event["partition_id"] for event in read_events(job_dir)] == list(range(10))


def test_log_path_defaults_to_events_jsonl_in_the_work_dir(tmp_path):
    work_dir = tmp_path / "outputs" / "job1"  # created by the hook
    with ObservabilityHook(QUIET, work_dir=work_dir, job_id="job1") as hook:
        hook.job_start()

    assert [event["event_type"] for event in read_events(work_dir)] == ["job_start"]


def test_event_log_path_option_chooses_the_file(tmp_path):
    path = tmp_path / "elsewhere" / "log.jsonl"
    with ObservabilityHook({**QUIET, "event_log_path": str(path)}, job_id="job1") as hook:
        hook.job_start()

    assert json.loads(path.read_text())["event_type"] == "job_start"


def test_event_log_can_be_turned_off(job_dir):
    with ObservabilityHook({**QUIET, "event_log": False}, work_dir=job_dir, job_id="j") as hook:
        hook.job_start()

    assert not (job_dir / "events.jsonl").exists()


def test_existing_log_is_appended_to(job_dir):
    append_log(job_dir, [ev("job_start", 1754712053.5, job_id="job1")])
    with ObservabilityHook(QUIET, work_dir=job_dir, job_id="job1") as hook:
        hook.partition_start(0)

    assert [event["event_type"] for event in read_events(job_dir)] == [
        "job_start",
        "partition_start",
    ]


def test_lines_written_by_another_writer_in_between_are_not_overwritten(job_dir):
    """O_APPEND: every write lands at the current end of the file, wherever others wrote."""
    with ObservabilityHook(QUIET, work_dir=job_dir, job_id="job1") as hook:
        hook.partition_start(0)
        append_log(job_dir, [ev("partition_start", 1754712053.5, partition_id=1)])
        hook.partition_start(2)

    assert [event["partition_id"] for event in read_events(job_dir)] == [0, 1, 2]


def test_four_processes_appending_500_events_each_never_tear_a_line(job_dir):
    processes, per_process = 4, 500
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_emit_from_process, args=(str(job_dir), n, per_process))
        for n in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0] * processes

    data = (job_dir / "events.jsonl").read_bytes()
    assert data.endswith(b"\n")
    lines = data.splitlines()
    assert len(lines) == processes * per_process
    events = [json.loads(line) for line in lines]
    assert sorted((e["metadata"]["worker"], e["metadata"]["i"]) for e in events) == [
        (w, i) for w in range(processes) for i in range(per_process)
    ]
    assert all(e["metadata"]["pad"] == "x" * e["metadata"]["i"] for e in events)


def test_job_level_events_are_fsynced(job_dir, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    writer = EventLogWriter(job_dir / "events.jsonl")
    monkeypatch.setattr(eventlog_module.os, "fsync", counting_fsync)
    for kind in ("job_start", "op_start", "op_complete", "job_complete"):
        writer.write(json.dumps({"event_type": kind}).encode() + b"\n", kind)
    synced_before_close = len(synced)
    writer.close()

    assert synced_before_close == 2  # job_start and job_complete, not the op events
    assert [json.loads(line)["event_type"] for line in (job_dir / "events.jsonl").open()] == [
        "job_start",
        "op_start",
        "op_complete",
        "job_complete",
    ]


def test_torn_tail_is_moved_aside_before_the_first_write(job_dir):
    whole = json.dumps(ev("job_start", 1754712053.5, job_id="job1")).encode() + b"\n"
    fragment = b'{"event_type": "partition_start", "timest'
    (job_dir / "events.jsonl").write_bytes(whole + fragment)

    with ObservabilityHook(QUIET, work_dir=job_dir, job_id="job1") as hook:
        hook.partition_start(0, timestamp=1754712054.5)

    data = (job_dir / "events.jsonl").read_bytes()
    assert data.endswith(b"\n")
    events = [json.loads(line) for line in data.splitlines()]
    assert [(e["event_type"], e["timestamp"]) for e in events] == [
        ("job_start", 1754712053.5),
        ("partition_start", 1754712054.5),
    ]
    header, moved = (job_dir / "events.jsonl.torn").read_bytes().splitlines()
    assert header.startswith(b"# ")
    assert f"offset {len(whole)} of events.jsonl".encode() in header
    assert moved == fragment


def test_snapshot_counts_no_torn_tail_after_repair(job_dir):
    whole = json.dumps(ev("job_start", 1754712053.5, job_id="job1")).encode() + b"\n"
    (job_dir / "events.jsonl").write_bytes(whole + b'{"event_type": "op_st')
    assert snapshot_doc(job_dir)["metadata"]["torn_tail_lines"] == 1

    with ObservabilityHook(QUIET, work_dir=job_dir, job_id="job1") as hook:
        hook.partition_start(0, timestamp=1754712054.5)

    assert snapshot_doc(job_dir)["metadata"]["torn_tail_lines"] == 0


def test_a_log_that_is_only_a_fragment_is_emptied(job_dir):
    (job_dir / "events.jsonl").write_bytes(b'{"event_type": "job_st')

    moved = repair_torn_tail(job_dir / "events.jsonl")

    assert moved == len(b'{"event_type": "job_st')
    assert (job_dir / "events.jsonl").read_bytes() == b""
    assert b"offset 0 of events.jsonl" in (job_dir / "events.jsonl.torn").read_bytes()


def test_a_whole_log_is_left_alone(job_dir):
    data = json.dumps(ev("job_start", 1754712053.5)).encode() + b"\n"
    (job_dir / "events.jsonl").write_bytes(data)

    assert repair_torn_tail(job_dir / "events.jsonl") == 0
    assert (job_dir / "events.jsonl").read_bytes() == data
    assert not (job_dir / "events.jsonl.torn").exists()
