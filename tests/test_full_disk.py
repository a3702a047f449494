"""A full disk: a failed write leaves the event log at a line boundary and is counted.

The log lives on a real, small tmpfs (256 KiB), mounted for the test.  Mounting needs
root (CI runs as root); elsewhere the test is skipped, which CI turns into a failure.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from dj_observe.hook import ObservabilityHook

QUIET = {"tracing": {"enabled": False}, "metrics": {"enabled": False}, "background": False}


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 256 KiB tmpfs at ``tmp_path / "disk"``, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


def fill(path: Path) -> None:
    """Write ``path`` until the disk has no room left."""
    with path.open("wb", buffering=0) as handle:
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            try:
                while True:
                    handle.write(b"x" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC


def emit_until_full(hook: ObservabilityHook, start: int) -> int:
    """Emit ~700-byte events until the event log cannot take one; returns its index."""
    failures = hook.stats.sink_errors.get("event_log", 0)
    for index in range(start, start + 10_000):
        hook.op_complete(0, "op", index, duration=0.1, metadata={"pad": "p" * 600})
        if hook.stats.sink_errors.get("event_log", 0) > failures:
            return index
    raise AssertionError("the disk never filled")


def test_a_write_that_fails_on_a_full_disk_leaves_whole_lines(small_disk):
    job_dir = small_disk / "job"
    with ObservabilityHook(QUIET, work_dir=job_dir, job_id="j") as hook:
        hook.job_start()
        filler = small_disk / "filler"
        fill(filler)
        lost = emit_until_full(hook, 0)  # the disk is full: event ``lost`` failed
        log_size = (job_dir / "events.jsonl").stat().st_size
        filler.unlink()  # space is back
        for index in range(lost + 1, lost + 4):
            hook.op_complete(0, "op", index, duration=0.1)
        failures = hook.stats.sink_errors["event_log"]

    data = (job_dir / "events.jsonl").read_bytes()
    assert data.endswith(b"\n")
    lines = data.splitlines()
    events = [json.loads(line) for line in lines]  # every line whole: nothing glued
    indexes = [event.get("operation_idx") for event in events[1:]]
    assert indexes == [*range(lost), *range(lost + 1, lost + 4)]
    assert len(data) >= log_size
    assert failures == 1  # the lost event is counted
    assert not (job_dir / "events.jsonl.torn").exists()


def test_with_another_writer_live_the_fragment_is_ended_by_the_next_line(small_disk):
    """The fragment cannot be cut while another writer may append after it: the next
    line starts with a newline instead, so it is whole and the fragment is one bad line."""
    job_dir = small_disk / "job"
    with (
        ObservabilityHook(QUIET, work_dir=job_dir, job_id="j") as hook,
        ObservabilityHook(QUIET, work_dir=job_dir, job_id="j"),  # holds the log too
    ):
        hook.job_start()  # the log's last page is partly free: the failing write is partial
        filler = small_disk / "filler"
        fill(filler)
        lost = emit_until_full(hook, 0)
        filler.unlink()
        hook.op_complete(0, "op", lost + 1, duration=0.1)

    from dj_observe.eventlog import EventLogReader

    reader = EventLogReader(job_dir)
    events = [event for block in reader.read() for event in block]
    assert [event.operation_idx for event in events][-1] == lost + 1
    assert reader.stats.malformed_lines == 1  # the fragment of event ``lost``
    assert (job_dir / "events.jsonl").read_bytes().endswith(b"\n")
