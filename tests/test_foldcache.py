"""The persisted fold: a later poll in another process folds only what was appended,
and never answers from a log that was replaced, truncated or rewritten."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from support import append_log, ev, stable, write_log

from dj_observe import eventlog
from dj_observe.cli import main
from dj_observe.foldcache import CACHE_MAX_BYTES_VARIABLE

DJ_OBSERVE = str(Path(sys.executable).with_name("dj-observe"))


def _events(first: int, count: int, partition: int = 0) -> list[dict]:
    """``count`` op runs on ``partition``, op indexes from ``first``."""
    out = []
    for idx in range(first, first + count):
        ts = 100.0 + idx
        name = f"op{idx}"
        out.append(
            ev("op_start", ts, partition_id=partition, operation_idx=idx, operation_name=name)
        )
        out.append(
            ev(
                "op_complete",
                ts + 0.5,
                partition_id=partition,
                operation_idx=idx,
                operation_name=name,
                input_rows=10,
                output_rows=9,
            )
        )
    return out


def _poll(job_dir: Path, *options: str) -> dict:
    out, err = StringIO(), StringIO()
    assert main(["snapshot", str(job_dir), "--compact", *options], stdout=out, stderr=err) == 0, (
        err.getvalue()
    )
    return stable(json.loads(out.getvalue()))


def _fresh(job_dir: Path) -> dict:
    return _poll(job_dir, "--no-cache")


@pytest.fixture
def started(job_dir: Path) -> Path:
    write_log(
        job_dir,
        [
            ev("job_start", 99.0, job_id="j"),
            ev("partition_start", 99.5, partition_id=0),
            *_events(0, 3),
        ],
    )
    return job_dir


@pytest.fixture
def reads(monkeypatch) -> list[tuple[str, int]]:
    """``(file name, start offset)`` of every log range read in this process."""
    seen: list[tuple[str, int]] = []
    original = eventlog.iter_range

    def spy(path, start, **options):
        seen.append((Path(path).name, start))
        return original(path, start, **options)

    monkeypatch.setattr(eventlog, "iter_range", spy)
    return seen


def test_a_poll_after_appends_equals_a_fresh_fold_and_reads_only_the_appended(started, reads):
    _poll(started)
    size = (started / "events.jsonl").stat().st_size
    append_log(started, [*_events(3, 2), ev("partition_complete", 120.0, partition_id=0)])
    reads.clear()
    assert _poll(started) == _fresh(started)
    assert reads[0] == ("events.jsonl", size)


def test_nothing_appended_reads_nothing_but_the_end(started, reads):
    first = _poll(started)
    reads.clear()
    assert _poll(started) == first
    assert reads == [("events.jsonl", (started / "events.jsonl").stat().st_size)]


def test_a_truncated_log_is_folded_afresh(started, reads):
    _poll(started)
    lines = (started / "events.jsonl").read_bytes().splitlines(keepends=True)
    (started / "events.jsonl").write_bytes(b"".join(lines[:3]))
    reads.clear()
    assert _poll(started) == _fresh(started)
    assert reads[0] == ("events.jsonl", 0)


def test_a_log_rewritten_in_place_is_folded_afresh(started):
    """Same size, same inode, other bytes: the bytes before the stored offset differ."""
    _poll(started)
    path = started / "events.jsonl"
    data = path.read_bytes()
    with path.open("r+b") as handle:
        handle.write(data.replace(b"op1", b"opX"))
    assert (
        _poll(started)["operation_progress"].keys() == _fresh(started)["operation_progress"].keys()
    )
    assert "p0_op1_opX" in _poll(started)["operation_progress"]


def test_a_replaced_log_is_folded_afresh(started):
    _poll(started)
    replacement = started / "new.tmp"
    replacement.write_bytes((started / "events.jsonl").read_bytes()[:-1] + b"\n")
    os.replace(replacement, started / "events.jsonl")
    append_log(started, _events(7, 1))
    assert _poll(started) == _fresh(started)


def test_a_rotated_log_and_a_new_run_file(started):
    """The log moved aside for a new one: the old one is no longer where the fold was."""
    _poll(started)
    (started / "events.jsonl").rename(started / "events_20250101_000000.jsonl")
    write_log(started, _events(3, 1), name="events_20250101_000100.jsonl")
    assert _poll(started) == _fresh(started)
    append_log(started, _events(4, 1), name="events_20250101_000100.jsonl")
    assert _poll(started) == _fresh(started)


def test_summary_leaves_out_what_grows_with_the_job(started):
    full, summary = _fresh(started), _poll(started, "--summary")
    assert {"partition_progress", "operation_progress"} <= full.keys()
    assert not {"partition_progress", "operation_progress"} & summary.keys()
    assert "checkpointed_operations" not in summary["checkpointing"]["checkpoint_progress"]
    trimmed = {key: value for key, value in full.items() if key in summary}
    del trimmed["checkpointing"]["checkpoint_progress"]["checkpointed_operations"]
    assert summary == trimmed


def test_a_read_only_job_directory(started, private_fold_cache):
    """Nothing is written into the job directory; the fold is stored in the cache's."""
    started.chmod(stat.S_IRUSR | stat.S_IXUSR)
    before = {path.name: path.stat().st_mtime_ns for path in started.iterdir()}
    try:
        assert _poll(started) == _fresh(started)
        append_log(started, _events(3, 1))
        before["events.jsonl"] = (started / "events.jsonl").stat().st_mtime_ns
        assert _poll(started) == _fresh(started)
        assert {path.name: path.stat().st_mtime_ns for path in started.iterdir()} == before
    finally:
        started.chmod(0o755)
    assert len(list(private_fold_cache.glob("*.fold"))) == 1


def test_the_cache_is_bounded(make_job, monkeypatch, private_fold_cache):
    monkeypatch.setenv(CACHE_MAX_BYTES_VARIABLE, "1")
    _poll(make_job(partitions=2))
    assert list(private_fold_cache.glob("*.fold")) == []


def test_a_cache_directory_open_to_others_is_not_trusted(started, private_fold_cache, reads):
    _poll(started)
    private_fold_cache.chmod(0o777)
    reads.clear()
    _poll(started)
    assert reads[0] == ("events.jsonl", 0)


def test_no_cache_writes_nothing(started, private_fold_cache):
    _fresh(started)
    assert list(private_fold_cache.iterdir()) == []


def test_the_python_api_uses_it_too(started, reads):
    from dj_observe import create_snapshot

    create_snapshot(started, cache=True)
    append_log(started, _events(3, 1))
    reads.clear()
    assert create_snapshot(started, cache=True).completed_operations == 4
    assert reads[0][1] > 0


def test_two_concurrent_pollers_while_the_log_grows(started, private_fold_cache):
    """Two processes poll in a loop while events are appended; both end on the fresh fold."""
    script = (
        "import subprocess, sys\n"
        "for _ in range(15):\n"
        "    subprocess.run([sys.argv[1], 'snapshot', sys.argv[2], '--summary'],"
        " check=True, stdout=subprocess.DEVNULL)\n"
    )
    env = {**os.environ, "DJ_OBSERVE_CACHE_DIR": str(private_fold_cache)}
    pollers = [
        subprocess.Popen([sys.executable, "-c", script, DJ_OBSERVE, str(started)], env=env)
        for _ in range(2)
    ]
    try:
        for first in range(3, 40):
            append_log(started, _events(first, 1))
    finally:
        codes = [poller.wait(timeout=120) for poller in pollers]
    assert codes == [0, 0]
    for _ in range(2):
        done = subprocess.run(
            [DJ_OBSERVE, "snapshot", str(started), "--compact"],
            capture_output=True,
            timeout=60,
            env=env,
            check=True,
        )
        assert stable(json.loads(done.stdout)) == _fresh(started)


def _grouped(partition: int, first: int, count: int) -> list[dict]:
    """``count`` ops of one checkpoint group: every op_start, then every op_complete."""
    names = [(idx, f"op{idx}") for idx in range(first, first + count)]
    starts = [
        ev("op_start", 200.0 + idx, partition_id=partition, operation_idx=idx, operation_name=name)
        for idx, name in names
    ]
    ends = [
        ev(
            "op_complete",
            210.0 + idx,
            partition_id=partition,
            operation_idx=idx,
            operation_name=name,
        )
        for idx, name in names
    ]
    return starts + ends


def test_summary_polls_recount_group_timed_ops_where_events_were_appended(started):
    first = _poll(started, "--summary")
    assert first["metadata"]["group_timed_operations"] == 0
    append_log(
        started,
        [*_grouped(0, 3, 2), ev("partition_start", 199.0, partition_id=1), *_grouped(1, 0, 3)],
    )
    polled = _poll(started, "--summary")
    assert polled["metadata"]["group_timed_operations"] == 5
    assert polled == _poll(started, "--summary", "--no-cache")
    append_log(
        started, [ev("op_start", 300.0, partition_id=1, operation_idx=3, operation_name="op3")]
    )
    assert _poll(started, "--summary") == _poll(started, "--summary", "--no-cache")


def test_the_stored_fold_is_replaced_once_enough_was_folded_beyond_it(started, reads, monkeypatch):
    from dj_observe import foldcache

    _poll(started)
    append_log(started, _events(3, 1))
    _poll(started)  # folds the tail; the stored fold still ends where the first poll stopped
    append_log(started, _events(4, 1))
    monkeypatch.setattr(foldcache, "STORE_AFTER_BYTES", 1)
    _poll(started)  # stores
    size = (started / "events.jsonl").stat().st_size
    append_log(started, _events(5, 1))
    reads.clear()
    assert _poll(started) == _fresh(started)
    assert reads[0] == ("events.jsonl", size)


def test_an_entry_of_another_format_is_ignored_and_replaced(started, reads, monkeypatch):
    from dj_observe import foldcache

    with monkeypatch.context() as patched:
        patched.setattr(foldcache, "_MAGIC", b"dj-observe fold 3\n")
        _poll(started)  # stored as an older version of dj-observe would
    append_log(started, _events(3, 1))
    reads.clear()
    assert _poll(started) == _fresh(started)
    assert reads[0] == ("events.jsonl", 0)  # folded afresh, and stored in this format
    size = (started / "events.jsonl").stat().st_size
    append_log(started, _events(4, 1))
    reads.clear()
    assert _poll(started) == _fresh(started)
    assert reads[0] == ("events.jsonl", size)


def test_an_entry_without_the_format_line_is_never_unpickled(started, private_fold_cache, tmp_path):
    """An entry of the first formats (a bare pickle), or any file in its place: unpickling
    it could run code, so it is not even read past its first bytes."""
    import pickle

    _poll(started)
    (entry,) = private_fold_cache.glob("*.fold")
    marker = tmp_path / "unpickled"
    entry.write_bytes(pickle.dumps(_Touch(str(marker))))
    assert _poll(started) == _fresh(started)
    assert not marker.exists()


class _Touch:
    """Unpickling it creates the file at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _op_run(pid: int, idx: int, ts: float, *, end: str = "op_complete") -> list[dict]:
    name = f"op{idx}"
    return [
        ev("op_start", ts, partition_id=pid, operation_idx=idx, operation_name=name),
        ev(end, ts + 0.5, partition_id=pid, operation_idx=idx, operation_name=name),
    ]


def _partition(pid: int, ts: float, ops: range, end: str | None = "partition_complete") -> list:
    events = [ev("partition_start", ts, partition_id=pid)]
    for idx in ops:
        events += _op_run(pid, idx, ts + idx + 1)
    if end is not None:
        events.append(ev(end, ts + 9, partition_id=pid))
    return events


@pytest.mark.parametrize("store_each_poll", [False, True], ids=["stored-once", "stored-each"])
@pytest.mark.parametrize("summary", [True, False], ids=["summary", "full"])
def test_polls_equal_a_fresh_fold_while_stored_partitions_change(
    job_dir, monkeypatch, summary, store_each_poll
):
    """After the fold was stored: a stored running partition fails, one completes having
    skipped ops, a completed one fails in a later run, a partition runs an op never seen
    (the pipeline grows), the job fails.  Every poll answers as a fresh fold."""
    from dj_observe import foldcache

    if store_each_poll:
        monkeypatch.setattr(foldcache, "STORE_AFTER_BYTES", 1)
    options = ("--summary",) if summary else ()
    write_log(
        job_dir,
        [
            ev("job_start", 1.0, job_id="j"),
            *_partition(0, 10.0, range(3)),
            *_partition(1, 20.0, range(3)),
            *_partition(2, 30.0, range(1), end=None),
            ev("op_start", 32.0, partition_id=2, operation_idx=1, operation_name="op1"),
            ev("partition_start", 40.0, partition_id=3),
        ],
    )
    steps = [
        [ev("partition_failed", 50.0, partition_id=2, error_message="worker lost")],
        [*_op_run(3, 0, 51.0), ev("partition_complete", 53.0, partition_id=3)],
        [ev("partition_failed", 60.0, partition_id=1, error_message="rerun failed")],
        _partition(4, 70.0, range(4)),
        [ev("job_failed", 90.0, error_message="partitions failed")],
    ]
    assert _poll(job_dir, *options) == _fresh_with(job_dir, options)
    for appended in steps:
        append_log(job_dir, appended)
        assert _poll(job_dir, *options) == _fresh_with(job_dir, options)
    final = _poll(job_dir, "--summary")
    assert final["metadata"]["skipped_operations"] == {"0": ["op3"], "3": ["op1", "op2", "op3"]}
    assert final["progress_summary"]["failed_partitions"] == 2


def _fresh_with(job_dir: Path, options: tuple[str, ...]) -> dict:
    return _poll(job_dir, *options, "--no-cache")


def test_a_poll_builds_only_the_partitions_its_events_name(make_job):
    from dj_observe.partstore import StoredPartitions
    from dj_observe.snapshot import ProcessingSnapshotAnalyzer

    job = make_job(partitions=40)
    ProcessingSnapshotAnalyzer(job, cache=True).generate_snapshot()
    append_log(job, _partition(1000, 1e9, range(2), end=None))
    analyzer = ProcessingSnapshotAnalyzer(job, cache=True)
    snapshot = analyzer.generate_snapshot()
    partitions = analyzer.tracker.state.partitions
    assert isinstance(partitions, StoredPartitions)
    assert snapshot.total_partitions == len(partitions) == 41
    assert len(partitions.touched()) < 10
    assert snapshot.in_progress_partitions == 1


def test_two_job_directories_sharing_an_entry_file_share_no_answer(make_job, monkeypatch):
    from dj_observe import foldcache

    monkeypatch.setattr(foldcache, "_file_name", lambda key: "same")
    first, second = make_job(partitions=2), make_job(partitions=3, job_id="other")
    assert first != second
    for job in (first, second, first, second):
        assert _poll(job, "--summary") == _poll(job, "--summary", "--no-cache")
