"""What ``dj-observe run`` shows while a job runs: plain lines when piped, bars on a terminal."""

from __future__ import annotations

import re
import time
from io import StringIO

from support import demo_config, progress_lines, run_cli

from dj_observe.hook import ObservabilityHook
from dj_observe.runner import progress as progress_module
from dj_observe.runner.progress import RunProgress

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _run_small_job(tmp_path) -> str:
    """Four partitions of the demo job through the CLI; returns what it wrote to stderr."""
    config = demo_config(tmp_path / "job.yaml", tmp_path / "jobs", rows=1000, partition_size=250)
    code, _, err = run_cli("run", str(config))
    assert code == 0, err
    return err


def test_piped_run_prints_a_line_as_partitions_end_and_the_final_one_last(tmp_path, ray_runtime):
    lines = progress_lines(_run_small_job(tmp_path))
    assert lines[-1] == "partitions 4/4 (none failed), op runs 32/32"
    assert len(lines) >= 2, lines
    ended = [int(re.match(r"partitions (\d+)/4 ", line)[1]) for line in lines]
    assert ended == sorted(ended)
    assert len(set(lines)) == len(lines)  # a line only when something changed


def test_terminal_run_ends_on_the_final_frame(tmp_path, ray_runtime, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich: a terminal even though stderr is a StringIO
    monkeypatch.delenv("NO_COLOR", raising=False)
    text = ANSI.sub("", _run_small_job(tmp_path))
    last_frame = text[text.rindex("partitions") :]
    assert re.search(r"partitions\s.*\s4/4\s", last_frame), last_frame
    assert re.search(r"op runs\s.*\s32/32\s", last_frame), last_frame
    assert "running" not in last_frame


QUIET_HOOK = {"tracing": {"enabled": False}, "metrics": {"enabled": False}, "background": False}


def test_plain_lines_name_one_partition_in_the_singular(tmp_path):
    out = StringIO()
    config = QUIET_HOOK
    with (
        ObservabilityHook(config, work_dir=tmp_path, job_id="j1") as hook,
        RunProgress(out) as progress,
    ):
        hook.job_start(metadata={"num_partitions": 3, "operations": ["a_mapper"]})
        for pid in range(3):
            hook.partition_start(pid)
        progress.update(hook)
        for pid in range(3):
            hook.op_start(pid, "a_mapper", 0)
            hook.op_complete(pid, "a_mapper", 0)
            hook.partition_complete(pid)
            progress.update(hook)
    assert progress_lines(out.getvalue()) == [
        "partitions 0/3 (none failed), op runs 0/3, 3 partitions running",
        "partitions 1/3 (none failed), op runs 1/3, 2 partitions running",
        "partitions 2/3 (none failed), op runs 2/3, 1 partition running",
        "partitions 3/3 (none failed), op runs 3/3",
    ]


def test_plain_lines_keep_coming_while_nothing_happens(tmp_path, monkeypatch):
    """A long op: no event for a while, still a line every PLAIN_INTERVAL seconds."""
    monkeypatch.setattr(progress_module, "PLAIN_INTERVAL", 0.2)
    out = StringIO()
    with (
        ObservabilityHook(QUIET_HOOK, work_dir=tmp_path, job_id="j1") as hook,
        RunProgress(out) as progress,
    ):
        hook.job_start(metadata={"num_partitions": 1, "operations": ["a_mapper"]})
        hook.partition_start(0)
        hook.op_start(0, "a_mapper", 0)
        progress.update(hook)
        time.sleep(1.0)
    lines = progress_lines(out.getvalue())
    assert len(lines) >= 3, lines
    assert set(lines) == {"partitions 0/1 (none failed), op runs 0/1, 1 partition running"}


def test_a_failed_partitions_ops_that_never_run_leave_the_op_total(tmp_path):
    """Partition 1 fails at its first of two ops: the job ends at 3 of 3 op runs, as watch says."""
    out = StringIO()
    with (
        ObservabilityHook(QUIET_HOOK, work_dir=tmp_path, job_id="j1") as hook,
        RunProgress(out) as progress,
    ):
        hook.job_start(metadata={"num_partitions": 2, "operations": ["a_mapper", "b_mapper"]})
        for pid in range(2):
            hook.partition_start(pid)
            hook.op_start(pid, "a_mapper", 0)
        hook.op_failed(1, "a_mapper", 0, "boom")
        hook.partition_failed(1, "boom")
        progress.update(hook)
        hook.op_complete(0, "a_mapper", 0)
        hook.op_start(0, "b_mapper", 1)
        hook.op_complete(0, "b_mapper", 1)
        hook.partition_complete(0)
        progress.update(hook)
    assert progress_lines(out.getvalue())[-1] == "partitions 2/2 (1 failed), op runs 3/3"
    code, text, _ = run_cli("watch", str(tmp_path))
    assert code == 4 and " ops 3/3 " in text, text  # 4: the job failed
