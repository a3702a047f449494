"""Job tools (dj_observe.jobs): finding jobs, telling which are running, loading their events."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from support import ev, log_lines, write_log

from dj_observe.events import parse_line
from dj_observe.jobs import JobInfo, JobUtils, find_job_dirs, list_running_jobs
from dj_observe.synthetic import JobSpec, write_job
from dj_observe.tracker import JobDirectoryError

DEAD_PID = 2**22 + 12345
"""Above Linux's largest pid_max (2**22): no process can have it."""


def live_job(job_dir: Path, pid: int, *, finished: bool = False, at: float | None = None) -> Path:
    """A job whose job_start was written by ``pid``, its events timestamped from now on."""
    now = time.time() if at is None else at
    events = [
        ev("job_start", now, job_id=job_dir.name, process_id=pid),
        ev("partition_start", now + 0.01, partition_id=0, process_id=pid),
        ev("op_start", now + 0.02, partition_id=0, operation_name="a_mapper", process_id=pid),
    ]
    if finished:
        events += [
            ev("partition_complete", now + 0.03, partition_id=0, process_id=pid),
            ev("job_complete", now + 0.04, process_id=pid),
        ]
    return write_log(job_dir, events)


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """Jobs at depth 1, 2 and 3 below ``outputs``, plus directories that are not jobs."""
    root = tmp_path / "outputs"
    write_job(root, JobSpec(job_id="job_a", partitions=2))
    write_job(root / "team", JobSpec(job_id="job_b", partitions=2, failed_partitions={1: 0}))
    write_job(root / "team" / "nested", JobSpec(job_id="job_c", partitions=3, style="data_juicer"))
    (root / "not_a_job" / "logs").mkdir(parents=True)
    (root / "team" / "notes.txt").write_text("hello")
    return root


def by_id(jobs: list[JobInfo]) -> dict[str, JobInfo]:
    return {job.job_id: job for job in jobs}


# -- finding jobs ------------------------------------------------------------------------


def test_list_jobs_finds_nested_job_directories(outputs):
    jobs = by_id(JobUtils(outputs).list_jobs())
    assert set(jobs) == {"job_a", "job_b", "job_c"}
    assert jobs["job_c"].work_dir == str(outputs / "team" / "nested" / "job_c")


def test_find_job_dirs_of_a_job_directory_is_itself(outputs):
    assert find_job_dirs(outputs / "job_a") == [outputs / "job_a"]


def test_list_jobs_reports_status_and_partitions(outputs):
    jobs = by_id(JobUtils(outputs).list_jobs())
    assert (jobs["job_a"].status, jobs["job_a"].completed_partitions) == ("completed", 2)
    assert jobs["job_b"].status == "failed"
    assert jobs["job_b"].failed_partitions == 1
    assert jobs["job_b"].total_partitions == 2
    assert jobs["job_c"].total_partitions == 3
    assert jobs["job_a"].progress_percentage == 100.0
    assert jobs["job_b"].progress_percentage == 50.0


def test_list_jobs_of_missing_directory_raises(tmp_path):
    with pytest.raises(JobDirectoryError):
        JobUtils(tmp_path / "missing").list_jobs()


def test_list_jobs_of_directory_without_jobs_is_empty(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert JobUtils(tmp_path / "empty").list_jobs() == []


# -- running jobs ------------------------------------------------------------------------


def test_running_job_of_this_process_is_listed(tmp_path):
    live_job(tmp_path / "outputs" / "live", os.getpid())
    running = JobUtils(tmp_path / "outputs").list_running_jobs()
    assert [job.job_id for job in running] == ["live"]
    assert running[0].running is True
    assert running[0].status == "in_progress"
    assert running[0].process_ids == [os.getpid()]


def test_finished_job_of_a_live_process_is_not_running(tmp_path):
    live_job(tmp_path / "outputs" / "done", os.getpid(), finished=True)
    assert JobUtils(tmp_path / "outputs").list_running_jobs() == []
    (job,) = JobUtils(tmp_path / "outputs").list_jobs()
    assert (job.status, job.running) == ("completed", False)


def test_job_of_a_dead_process_is_not_running(tmp_path):
    live_job(tmp_path / "outputs" / "crashed", DEAD_PID)
    assert JobUtils(tmp_path / "outputs").list_running_jobs() == []
    (job,) = JobUtils(tmp_path / "outputs").list_jobs()
    assert (job.status, job.running) == ("in_progress", False)


def test_job_whose_pid_was_recycled_is_not_running(tmp_path):
    """This process started after the job's last event: it cannot be the job's writer."""
    live_job(tmp_path / "outputs" / "old", os.getpid(), at=1_000_000_000.0)
    assert JobUtils(tmp_path / "outputs").list_running_jobs() == []


def test_running_jobs_are_picked_from_several(tmp_path):
    root = tmp_path / "outputs"
    live_job(root / "live", os.getpid())
    live_job(root / "done", os.getpid(), finished=True)
    live_job(root / "crashed", DEAD_PID)
    assert [job.job_id for job in JobUtils(root).list_running_jobs()] == ["live"]
    assert {job.job_id for job in JobUtils(root).list_jobs()} == {"live", "done", "crashed"}


def test_module_list_running_jobs_matches_job_utils(tmp_path):
    root = tmp_path / "outputs"
    live_job(root / "live", os.getpid())
    live_job(root / "crashed", DEAD_PID)
    assert [job.job_id for job in list_running_jobs(root)] == ["live"]


# -- events ------------------------------------------------------------------------------


def test_load_event_logs_returns_every_event_of_every_job(outputs):
    events = JobUtils(outputs).load_event_logs()
    expected = sum(
        len(log_lines(path))
        for path in (outputs / "job_a", outputs / "team" / "job_b", outputs / "team/nested/job_c")
    )
    assert len(events) == expected
    assert {event.job_id for event in events} == {"job_a", "job_b", "job_c"}


def test_load_event_logs_of_one_job(outputs):
    events = JobUtils(outputs).load_event_logs("job_b")
    assert len(events) == len(log_lines(outputs / "team" / "job_b"))
    assert events[0].event_type == "job_start"
    assert {event.job_id for event in events} == {"job_b"}
    assert "partition_failed" in {event.event_type for event in events}


def test_load_event_logs_returns_whole_events(tmp_path):
    line = ev(
        "op_failed",
        1.0,
        job_id="job_d",
        message="Operation a_mapper failed",
        metadata={"error_type": "ValueError"},
        stack_trace="Traceback ...",
        retry_count=1,
        node="worker-3",
    )
    write_log(tmp_path / "job_d", [line])
    assert JobUtils(tmp_path).load_event_logs() == [parse_line(json.dumps(line))]
    (event,) = JobUtils(tmp_path).load_event_logs()
    assert event.message == "Operation a_mapper failed"
    assert event.metadata == {"error_type": "ValueError"}
    assert (event.stack_trace, event.retry_count) == ("Traceback ...", 1)
    assert event.extra == {"node": "worker-3"}


def test_load_event_logs_of_unknown_job_is_empty(outputs):
    assert JobUtils(outputs).load_event_logs("no_such_job") == []
