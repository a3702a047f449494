"""``watch``: followed on logs that grow while it runs, plain lines and the rich live view."""

from __future__ import annotations

import json
import re
import threading
import time
from io import StringIO
from pathlib import Path

import pytest
from support import TtyStringIO

from dj_observe.synthetic import JobSpec, write_job
from dj_observe.tracker import JobDirectoryError
from dj_observe.watch import EXIT_FAILED, EXIT_INTERRUPTED, watch

START = JobSpec().start_time
LINE = re.compile(r"^\[[^\]]+\] (\w+) partitions (\d+)\/(\d+) ops (\d+)\/(\d+) ")


def _lines_of(tmp_path: Path, **spec: object) -> list[str]:
    """The event lines of a synthetic job (written to a staging directory)."""
    spec = {"partitions": 4, "summary": False, "dag_plan": False, **spec}
    staged = write_job(tmp_path / "staging", JobSpec(**spec))  # type: ignore[arg-type]
    return (staged / "events.jsonl").read_text().splitlines(keepends=True)


def _append(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as log:
        log.writelines(lines)


def _grow(log: Path, lines: list[str], batches: int, out: StringIO) -> threading.Thread:
    """Append ``lines`` to ``log`` in ``batches`` from a background thread, each batch once
    ``watch`` printed something about the previous one (so every batch shows up as a line)."""
    size = -(-len(lines) // batches)

    def printed() -> int:
        return out.getvalue().count("\n")

    def wait_for_more(seen: int) -> None:
        deadline = time.monotonic() + 5
        while printed() <= seen and time.monotonic() < deadline:
            time.sleep(0.01)

    def run() -> None:
        wait_for_more(0)  # "waiting 0s for the job's first event ..."
        for begin in range(0, len(lines), size):
            seen = printed()
            _append(log, lines[begin : begin + size])
            wait_for_more(seen)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _progress(output: str) -> list[tuple[str, int, int, int, int]]:
    rows = []
    for line in output.splitlines():
        match = LINE.match(line)
        if match:
            status, *numbers = match.groups()
            rows.append((status, *map(int, numbers)))
    return rows


def _watch_growing(tmp_path: Path, **spec: object) -> tuple[int, str]:
    lines = _lines_of(tmp_path, **spec)
    watched = tmp_path / "watched"
    watched.mkdir()
    out = StringIO()
    thread = _grow(watched / "events.jsonl", lines, batches=6, out=out)
    code = watch(watched, out, interval=0.05, max_refreshes=400, clock=lambda: START)
    thread.join(timeout=5)
    assert not thread.is_alive()
    return code, out.getvalue()


def test_follows_a_growing_log_to_completion(tmp_path: Path) -> None:
    code, output = _watch_growing(tmp_path)
    assert code == 0
    assert output.count("for the job's first event") == 1
    assert output.splitlines()[0].startswith("waiting ")
    progress = _progress(output)
    assert len(progress) == 6, output
    parts_done = [row[1] for row in progress]
    ops_done = [row[3] for row in progress]
    assert parts_done == sorted(parts_done) and ops_done == sorted(ops_done)
    assert ops_done[0] < ops_done[-1]
    assert progress[0][0] == "in_progress"
    assert progress[-1] == ("completed", 4, 4, 32, 32)
    assert re.search(r"running p\d:(after=)?\w+", output)
    assert "stale" not in output
    assert "rows/s -" not in output.splitlines()[-1]


def test_follows_a_growing_log_to_failure(tmp_path: Path) -> None:
    code, output = _watch_growing(tmp_path, failed_partitions={1: 2})
    assert code == EXIT_FAILED
    progress = _progress(output)
    assert progress[-1][:3] == ("failed", 4, 4)
    assert progress[-1][3] == progress[-1][4]  # the failed partition's later ops don't count
    failures = [line for line in output.splitlines() if line.startswith("failed p1")]
    assert len(failures) == 1
    assert "whitespace_normalization_mapper: RayTaskError(ValueError)" in failures[0]
    assert output.splitlines()[-1].endswith("failed 1")


def test_prints_only_when_something_changed(make_job) -> None:
    job = make_job(partitions=2)
    out = StringIO()
    code = watch(job, out, interval=0.01, exit_on_end=False, max_refreshes=4, clock=lambda: START)
    assert code == 0
    assert len(out.getvalue().splitlines()) == 1


def test_finished_job_exits_right_away(make_job) -> None:
    job = make_job(partitions=2)
    out = StringIO()
    began = time.monotonic()
    assert watch(job, out, interval=30) == 0
    assert time.monotonic() - began < 5
    assert _progress(out.getvalue())[-1][0] == "completed"


def test_failed_finished_job_exits_4(make_job) -> None:
    job = make_job(partitions=3, failed_partitions={0: 1})
    assert watch(job, StringIO(), interval=30) == EXIT_FAILED


def test_stale_warning_once_when_clock_is_past_the_last_event(
    tmp_path: Path, job_dir: Path
) -> None:
    lines = _lines_of(tmp_path)[:30]
    _append(job_dir / "events.jsonl", lines)
    last = json.loads(lines[-1])["timestamp"]
    out = StringIO()
    code = watch(
        job_dir, out, interval=0.01, stale_after=60, max_refreshes=3, clock=lambda: last + 120
    )
    assert code == 0  # bounded by max_refreshes while still running
    output = out.getvalue()
    assert output.count("stale: no event for 120s") == 1
    assert _progress(output)[0][0] == "in_progress"


def test_no_stale_warning_for_an_ended_job(make_job) -> None:
    out = StringIO()
    watch(make_job(partitions=2), out, interval=0.01, clock=lambda: START + 1e6)
    assert "stale" not in out.getvalue()


def test_eta_unknown_before_any_op_completed(tmp_path: Path, job_dir: Path) -> None:
    lines = _lines_of(tmp_path)
    first = next(i for i, line in enumerate(lines) if '"op_start"' in line)
    _append(job_dir / "events.jsonl", lines[: first + 1])
    out = StringIO()
    watch(job_dir, out, interval=0.01, max_refreshes=1, clock=lambda: START)
    assert "eta unknown" in out.getvalue()
    assert re.search(r"running p\d:clean_links_mapper ", out.getvalue())


def test_ctrl_c_exits_130(tmp_path: Path) -> None:
    def interrupt() -> float:
        raise KeyboardInterrupt

    job = write_job(tmp_path / "running", JobSpec(partitions=2, crash_after_events=20))
    assert watch(job, StringIO(), interval=0.01, clock=interrupt) == EXIT_INTERRUPTED
    assert watch(job, TtyStringIO(), interval=0.01, clock=interrupt) == EXIT_INTERRUPTED


def test_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(JobDirectoryError):
        watch(tmp_path / "nope", StringIO(), max_refreshes=1)


def test_waits_for_a_log_until_bounded(job_dir: Path) -> None:
    out = StringIO()
    assert watch(job_dir, out, interval=0.01, max_refreshes=3) == 0
    assert out.getvalue().count("for the job's first event") == 1
    assert "is the job started, and is this its work directory?" in out.getvalue()


def test_tty_renders_progress_bars(make_job) -> None:
    job = make_job(partitions=4, failed_partitions={2: 3})
    out = TtyStringIO()
    code = watch(job, out, interval=0.01, clock=lambda: START)
    assert code == EXIT_FAILED
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # drop ANSI escapes
    assert "partitions" in text and "op runs" in text
    assert "4/4 (100%), 1 failed" in text
    assert "━" in text  # the bars
    assert "Recent failures" in text and "RayTaskError" in text
    assert "failed" in text


def test_the_watch_command_follows_a_finished_job_and_exits(make_job):
    from dj_observe.cli import main

    job = make_job(partitions=3, failed_partitions={1: 2})
    out, err = StringIO(), StringIO()
    assert main(["watch", str(job), "--interval", "0.05"], stdout=out, stderr=err) == 4
    assert "failed partitions 3/3" in out.getvalue() and err.getvalue() == ""
