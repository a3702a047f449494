"""``dj-observe serve``: metrics for every job under an outputs directory, folded from logs."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from prometheus_client import generate_latest
from support import append_log, ev, free_port, samples, scrape, wait_until, write_log

from dj_observe.serve import JobsExporter
from dj_observe.tracker import JobDirectoryError

NOW = time.time()
RECENT = NOW - 3600
"""Synthetic jobs start an hour ago: ended, but well within the default retention."""


def value(exporter: JobsExporter, name: str, job: str, **labels: str) -> float | None:
    return exporter.registry.get_sample_value(name, {"job_id": job, "pipeline": "", **labels})


def job_series(exporter: JobsExporter, job: str) -> list:
    return [
        sample
        for family in exporter.registry.collect()
        for sample in family.samples
        if sample.labels.get("job_id") == job
    ]


@pytest.fixture
def outputs(make_job, tmp_path):
    """Two ended jobs: ``done`` completed, ``broken`` failed at partition 2."""
    make_job(job_id="done", partitions=4, start_time=RECENT)
    make_job(job_id="broken", partitions=4, failed_partitions={2: 3}, start_time=RECENT)
    return tmp_path / "outputs"


def test_poll_exposes_every_job(outputs):
    exporter = JobsExporter(outputs)
    exporter.poll()

    assert value(exporter, "dj_job_status", "done", state="completed") == 1
    assert value(exporter, "dj_job_status", "broken", state="failed") == 1
    assert value(exporter, "dj_partitions", "done", state="completed") == 4
    assert value(exporter, "dj_partitions", "broken", state="failed") == 1
    assert value(exporter, "dj_partitions", "broken", state="completed") == 3


def test_failed_partition_series_of_a_served_job(outputs):
    exporter = JobsExporter(outputs)
    exporter.poll()

    failed = [
        sample.labels
        for sample in job_series(exporter, "broken")
        if sample.name == "dj_partition_failed_info"
    ]
    assert [(labels["partition"], labels["error_type"]) for labels in failed] == [
        ("2", "ValueError")
    ]


def test_poll_reads_only_what_was_appended(outputs):
    exporter = JobsExporter(outputs)
    first = exporter.poll()

    assert first > 0
    assert exporter.poll() == 0


def test_appended_events_move_the_values(tmp_path):
    job_dir = write_log(
        tmp_path / "outputs" / "live",
        [
            ev("job_start", NOW - 60, job_id="live", metadata={"num_partitions": 2}),
            ev("partition_start", NOW - 50, job_id="live", partition_id=0),
        ],
    )
    exporter = JobsExporter(tmp_path / "outputs")
    exporter.poll()
    before = value(exporter, "dj_partitions", "live", state="completed")

    append_log(
        job_dir,
        [
            ev("partition_complete", NOW - 40, job_id="live", partition_id=0),
            ev("partition_start", NOW - 30, job_id="live", partition_id=1),
        ],
    )
    read = exporter.poll()

    assert (before, read) == (0, 2)
    assert value(exporter, "dj_partitions", "live", state="completed") == 1
    assert value(exporter, "dj_partitions", "live", state="running") == 1
    assert value(exporter, "dj_last_event_timestamp_seconds", "live") == NOW - 30
    assert value(exporter, "dj_events_total", "live", event_type="partition_start") == 2


def test_a_job_that_appears_later_is_picked_up(outputs, make_job):
    exporter = JobsExporter(outputs)
    exporter.poll()
    assert value(exporter, "dj_job_status", "late", state="completed") is None

    make_job(job_id="late", partitions=2, start_time=RECENT)
    exporter.poll()

    assert value(exporter, "dj_job_status", "late", state="completed") == 1


def test_ended_jobs_past_retention_are_removed(outputs):
    running = write_log(
        outputs / "running",
        [ev("job_start", NOW - 5, job_id="running"), ev("partition_start", NOW, partition_id=0)],
    )
    exporter = JobsExporter(outputs, retention=0)
    exporter.poll()

    assert job_series(exporter, "done") == []
    assert job_series(exporter, "broken") == []
    assert value(exporter, "dj_job_status", "running", state="running") == 1
    assert running in exporter.followers


def test_ended_job_within_retention_stays(outputs):
    exporter = JobsExporter(outputs, retention=24 * 3600)
    exporter.poll()
    exporter.poll()

    assert value(exporter, "dj_job_status", "done", state="completed") == 1


def test_a_removed_job_does_not_come_back(outputs):
    exporter = JobsExporter(outputs, retention=0)
    exporter.poll()
    exporter.poll()

    assert job_series(exporter, "done") == []


def test_missing_outputs_directory_raises(tmp_path):
    with pytest.raises(JobDirectoryError):
        JobsExporter(tmp_path / "missing")


def test_scrape_size_does_not_grow_with_the_log(make_job, tmp_path):
    """Same ops, 1k and 50k events: the same number of exposition lines."""
    small = make_job(job_id="small", partitions=36, start_time=RECENT)
    large = make_job(job_id="large", partitions=1785, start_time=RECENT)
    sizes = {}
    for job_dir in (small, large):
        exporter = JobsExporter(job_dir)
        events = exporter.poll()
        text = generate_latest(exporter.registry).decode()
        sizes[job_dir.name] = (events, len(text.splitlines()))

    assert 900 <= sizes["small"][0] <= 1100
    assert 49_000 <= sizes["large"][0] <= 51_000
    assert sizes["small"][1] == sizes["large"][1]


def test_cli_serve_answers_metrics(outputs):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dj_observe.cli",
            "serve",
            str(outputs),
            "--port",
            str(port),
            "--interval",
            "0.2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"

    def served() -> dict | None:
        if process.poll() is not None:
            raise AssertionError(f"serve exited: {process.stderr.read().decode()}")
        try:
            found = samples(scrape(url, timeout=1))
        except OSError:
            return None
        key = ("dj_job_status", (("job_id", "done"), ("pipeline", ""), ("state", "completed")))
        return found if key in found else None

    try:
        found = wait_until(served)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        process.stderr.close()

    assert found is not None
    status = ("dj_job_status", (("job_id", "broken"), ("pipeline", ""), ("state", "failed")))
    assert found[status] == 1
    assert not any(name.endswith("_created") for name, _ in found)
