"""Folding a log on several processes (dj_observe.parallel) gives the sequential answer."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
from pathlib import Path

import pytest
from support import append_log, ev, snapshot_doc, stable, state_view, to_lines, write_log

import dj_observe.snapshot
import dj_observe.tracker
from dj_observe import ProcessingSnapshotAnalyzer
from dj_observe.eventlog import EventLogReader, ReadStats, iter_range
from dj_observe.parallel import fold_in_parallel, split_ranges
from dj_observe.snapshot import write_json
from dj_observe.state import JobState
from dj_observe.synthetic import JobSpec, events_for


@pytest.fixture
def two_cores(monkeypatch):
    """Let fold_in_parallel use two workers whatever this machine reports."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)


@pytest.fixture
def parallel_folds(monkeypatch, two_cores):
    """Force the tracker's parallel fold on small logs and record whether it ran."""
    calls: list[bool] = []
    original = dj_observe.tracker.fold_in_parallel

    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(result)
        return result

    monkeypatch.setattr(dj_observe.tracker, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(dj_observe.tracker, "fold_in_parallel", recording)
    return calls


def numbered_lines(start: int, count: int) -> bytes:
    return to_lines(
        ev("op_start", float(n), partition_id=n % 3, operation_name=f"op{n % 5}", padding="x" * n)
        for n in range(start, start + count)
    )


def complete_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].splitlines(keepends=True)


def read_ranges(groups) -> list[float]:
    stamps = []
    for ranges in groups:
        for piece in ranges:
            for events, _ in iter_range(piece.path, piece.start, piece.end, stats=ReadStats()):
                stamps.extend(event.timestamp for event in events)
    return stamps


# -- cutting the log into ranges ---------------------------------------------------------


@pytest.mark.parametrize("parts", [1, 2, 3, 5, 8])
def test_ranges_of_one_file_cover_every_line_once(job_dir, parts):
    path = job_dir / "events.jsonl"
    path.write_bytes(numbered_lines(0, 40))
    groups = split_ranges([path], parts)
    pieces = [piece for ranges in groups for piece in ranges]
    assert pieces[0].start == 0
    assert pieces[-1].end == path.stat().st_size
    for before, after in itertools.pairwise(pieces):
        assert before.end == after.start
    assert 1 <= len(groups) <= parts
    assert read_ranges(groups) == [float(n) for n in range(40)]


@pytest.mark.parametrize("parts", [2, 3])
def test_range_boundaries_fall_on_line_starts(job_dir, parts):
    path = job_dir / "events.jsonl"
    path.write_bytes(numbered_lines(0, 30))
    starts = {0}
    for line in complete_lines(path):
        starts.add(max(starts) + len(line))
    for ranges in split_ranges([path], parts):
        for piece in ranges:
            assert piece.start in starts
            assert piece.end in starts


@pytest.mark.parametrize("parts", [1, 2, 3, 4])
def test_ranges_of_several_files_cover_every_line_once_in_order(job_dir, parts):
    files = []
    for number, (start, count) in enumerate([(0, 7), (100, 25), (200, 1)]):
        path = job_dir / f"events_2025080{number}_000000.jsonl"
        path.write_bytes(numbered_lines(start, count))
        files.append(path)
    groups = split_ranges(files, parts)
    expected = [float(n) for n in [*range(7), *range(100, 125), 200]]
    assert read_ranges(groups) == expected


def test_ranges_stop_before_a_torn_tail(job_dir):
    path = job_dir / "events.jsonl"
    path.write_bytes(numbered_lines(0, 10) + b'{"event_type": "op_st')
    groups = split_ranges([path], 2)
    assert groups[-1][-1].end == len(numbered_lines(0, 10))
    assert read_ranges(groups) == [float(n) for n in range(10)]


def test_files_without_a_complete_line_get_no_range(job_dir):
    empty = job_dir / "events_20250101_000000.jsonl"
    empty.write_bytes(b"")
    torn = job_dir / "events_20250102_000000.jsonl"
    torn.write_bytes(b'{"event_type": "x"')
    whole = job_dir / "events.jsonl"
    whole.write_bytes(numbered_lines(0, 5))
    pieces = [piece for ranges in split_ranges([empty, torn, whole], 2) for piece in ranges]
    assert {piece.path for piece in pieces} == {whole}


# -- folding in parallel equals folding in sequence ---------------------------------------


def write_spec_resume(root: Path, **spec) -> Path:
    """A spec-style crash + resume in one events.jsonl, appended as a real executor would."""
    job = root / "spec-resume"
    job.mkdir(parents=True)
    (job / "events.jsonl").write_text(
        "".join(line for _, line in events_for(JobSpec(crash_after_events=70, resume=True, **spec)))
    )
    return job


def with_torn_tail(job: Path) -> Path:
    last = sorted(job.glob("events*.jsonl"))[-1]
    with last.open("ab") as handle:
        handle.write(b'{"event_type": "op_complete", "timestamp": 17547')
    return job


JOBS = {
    "spec_failures_crash": lambda make_job, root: make_job(
        job_id="spec-crash", partitions=5, failed_partitions={1: 3, 4: 0}, crash_after_events=120
    ),
    "dj_failures_crash_resume": lambda make_job, root: with_torn_tail(
        make_job(
            job_id="dj-resume",
            style="data_juicer",
            partitions=5,
            failed_partitions={2: 5},
            crash_after_events=90,
            resume=True,
            summary=False,
            seed=8,
        )
    ),
    "spec_failures_crash_resume": lambda make_job, root: with_torn_tail(
        write_spec_resume(root, partitions=5, failed_partitions={3: 2}, seed=12)
    ),
}


@pytest.mark.parametrize("name", sorted(JOBS))
def test_parallel_snapshot_equals_sequential_snapshot(name, make_job, tmp_path, parallel_folds):
    job = JOBS[name](make_job, tmp_path)
    sequential = snapshot_doc(job, workers=1)
    assert parallel_folds == []
    parallel = snapshot_doc(job, workers=2)
    assert parallel_folds == [True]
    assert stable(parallel) == stable(sequential)


def test_parallel_snapshot_counts_the_torn_tail(make_job, parallel_folds):
    job = with_torn_tail(make_job(partitions=4, failed_partitions={0: 2}))
    metadata = snapshot_doc(job, workers=2)["metadata"]
    assert parallel_folds == [True]
    assert metadata["torn_tail_lines"] == 1
    assert metadata["events_analyzed"] == len(complete_lines(job / "events.jsonl"))


def test_parallel_snapshot_again_reads_only_appended_events(job_dir, parallel_folds):
    write_log(
        job_dir,
        [ev("job_start", 1.0, metadata={"operations": ["a"]})]
        + [ev("partition_start", 2.0 + pid, partition_id=pid) for pid in range(20)],
    )
    analyzer = ProcessingSnapshotAnalyzer(job_dir, workers=2)
    analyzer.generate_snapshot()
    assert parallel_folds == [True]
    append_log(
        job_dir, [ev("partition_complete", 30.0 + pid, partition_id=pid) for pid in range(20)]
    )
    doc = analyzer.to_json_dict(analyzer.generate_snapshot())
    assert doc["metadata"]["events_analyzed"] == 41
    assert doc["progress_summary"]["completed_partitions"] == 20
    assert doc["overall_status"] == "in_progress"


def test_fold_in_parallel_then_reading_the_rest_equals_a_sequential_fold(make_job, two_cores):
    job = with_torn_tail(make_job(style="data_juicer", partitions=4, crash_after_events=80))
    reader = EventLogReader(job)
    state = JobState()
    assert fold_in_parallel(reader, state, workers=2, min_bytes=0) is True
    for events in reader.read():
        state.apply_all(events)
    sequential_reader = EventLogReader(job)
    sequential = JobState()
    for events in sequential_reader.read():
        sequential.apply_all(events)
    assert state_view(state) == state_view(sequential)
    assert reader.stats.events == sequential_reader.stats.events
    assert reader.stats.torn_tail_lines == sequential_reader.stats.torn_tail_lines == 1


def test_fold_in_parallel_leaves_small_logs_alone(make_job, two_cores):
    job = make_job(partitions=2)
    reader = EventLogReader(job)
    state = JobState()
    assert fold_in_parallel(reader, state, workers=2, min_bytes=1 << 40) is False
    assert state.events_applied == 0
    assert reader.offsets == {}


def test_fold_in_parallel_with_one_worker_does_nothing(make_job):
    job = make_job(partitions=2)
    reader = EventLogReader(job)
    state = JobState()
    assert fold_in_parallel(reader, state, workers=1, min_bytes=0) is False
    assert state.events_applied == 0


@pytest.mark.parametrize("indent", [2, 0])
def test_render_in_two_processes_writes_the_same_bytes_to_a_file_a_pipe_and_memory(
    make_job, tmp_path, monkeypatch, indent
):
    """The halves rendered by a forked child reach every kind of output intact:
    a file and a pipe (copied by ``sendfile``) and an in-memory buffer (by reads)."""
    monkeypatch.setattr(dj_observe.snapshot, "PARALLEL_RENDER_MIN_OPS", 1)
    monkeypatch.setattr(dj_observe.snapshot, "PARTITIONS_PER_BATCH", 3)
    monkeypatch.setattr(dj_observe.snapshot, "fork_is_safe", lambda: True)  # threads of other tests
    children = []
    forked = dj_observe.snapshot.ForkedOutput

    def recording(*args, **kwargs):
        children.append(forked(*args, **kwargs))
        return children[-1]

    monkeypatch.setattr(dj_observe.snapshot, "ForkedOutput", recording)
    job = make_job(style="data_juicer", partitions=11, failed_partitions={4: 2}, seed=3)
    snapshot = ProcessingSnapshotAnalyzer(job, workers=1).generate_snapshot()

    def rendered(workers: int, sink: str) -> bytes:
        if sink == "memory":
            buffer = io.BytesIO()
            write_json(snapshot, buffer, indent=indent, workers=workers)
            return buffer.getvalue()
        path = tmp_path / f"out-{sink}.json"
        if sink == "file":
            with path.open("wb") as handle:
                handle.write(b"#")  # a stream already written to: the copy follows its position
                write_json(snapshot, handle, indent=indent, workers=workers)
            return path.read_bytes()[1:]
        with path.open("wb") as received:
            cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=received)
            write_json(snapshot, cat.stdin, indent=indent, workers=workers)
            cat.stdin.close()
            assert cat.wait(timeout=30) == 0
        return path.read_bytes()

    expected = rendered(1, "memory")
    assert json.loads(expected)["progress_summary"]["total_partitions"] == 11
    assert children == []
    for sink in ("memory", "file", "pipe"):
        assert rendered(2, sink) == expected, sink
    assert len(children) == 3
