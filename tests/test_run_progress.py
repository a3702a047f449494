"""What ``dj-observe run`` shows while a job runs: plain lines when piped, bars on a terminal."""

from __future__ import annotations

import re
from io import StringIO

from support import demo_config, run_cli

from dj_observe.hook import ObservabilityHook
from dj_observe.runner.progress import RunProgress

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _run_small_job(tmp_path) -> str:
    """Four partitions of the demo job through the CLI; returns what it wrote to stderr."""
    config = demo_config(tmp_path / "job.yaml", tmp_path / "jobs", rows=1000, partition_size=250)
    code, _, err = run_cli("run", str(config))
    assert code == 0, err
    return err


def test_piped_run_prints_a_line_as_partitions_end_and_the_final_one_last(tmp_path, ray_runtime):
    lines = [line for line in _run_small_job(tmp_path).splitlines() if line.startswith("part")]
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


def test_plain_lines_name_one_partition_in_the_singular(tmp_path):
    out = StringIO()
    config = {"tracing": {"enabled": False}, "metrics": {"enabled": False}, "background": False}
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
    assert out.getvalue().splitlines() == [
        "partitions 0/3 (none failed), op runs 0/3, 3 partitions running",
        "partitions 1/3 (none failed), op runs 1/3, 2 partitions running",
        "partitions 2/3 (none failed), op runs 2/3, 1 partition running",
        "partitions 3/3 (none failed), op runs 3/3",
    ]
