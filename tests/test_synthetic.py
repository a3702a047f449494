"""The job generator (dj_observe.synthetic) that the demo, the tests and the benchmarks use."""

from __future__ import annotations

import json
from itertools import zip_longest

from dj_observe.synthetic import JobSpec, events_for, write_job


def expected_runs(spec: JobSpec) -> dict[int, str]:
    runs: dict[int, str] = {}
    for run, line in events_for(spec):
        runs[run] = runs.get(run, "") + line
    return runs


def test_same_spec_gives_the_same_bytes(tmp_path):
    spec = JobSpec(partitions=3, failed_partitions={1: 2}, seed=4)
    first = write_job(tmp_path / "a", spec) / "events.jsonl"
    second = write_job(tmp_path / "b", spec) / "events.jsonl"
    assert first.read_bytes() == second.read_bytes()


def test_every_line_is_one_json_event_in_data_juicer_key_order(tmp_path):
    job = write_job(tmp_path, JobSpec(partitions=2, failed_partitions={0: 1}))
    for line in (job / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        assert list(event)[:3] == ["event_type", "timestamp", "message"]
        assert list(event)[-2:] == ["process_id", "thread_id"]
        assert ", " in line and ": " in line


def test_data_juicer_style_crash_and_resume_writes_one_file_per_run(tmp_path):
    spec = JobSpec(style="data_juicer", partitions=3, crash_after_events=40, resume=True)
    job = write_job(tmp_path, spec)
    runs = expected_runs(spec)
    files = sorted(job.glob("events_*.jsonl"))
    assert [path.read_text() for path in files] == [runs[0], runs[1]]
    assert not runs[0].endswith("\n")


def test_spec_style_crash_and_resume_keeps_both_runs_in_events_jsonl(tmp_path):
    """Both runs append to the one events.jsonl: the first run's lines must survive."""
    spec = JobSpec(partitions=3, crash_after_events=40, resume=True)
    job = write_job(tmp_path, spec)
    runs = expected_runs(spec)
    written = (job / "events.jsonl").read_text().split("\n")
    expected = (runs[0] + runs[1]).split("\n")
    differing = [
        number for number, (got, want) in enumerate(zip_longest(written, expected)) if got != want
    ]
    assert differing == []
