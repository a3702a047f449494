"""``dj-observe stop`` and ``dj_observe.job.stopper``: the job's processes, found by its
event log, stopped; never a recycled pid, never this process; the job resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import psutil
import pytest
from support import ev, wait_until, write_log

from dj_observe.cli import EXIT_NOT_STOPPED, main
from dj_observe.job.stopper import JobStopper, stop_job
from dj_observe.runner.config import load_config
from dj_observe.runner.executor import run_job
from dj_observe.snapshot import ProcessingSnapshotAnalyzer

pytestmark = pytest.mark.timeout(240)

IGNORES_SIGTERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture
def spawn():
    """Start helper processes; whatever is left is killed at the end."""
    started: list[subprocess.Popen] = []

    def start(source: str = "import time; print('ready', flush=True); time.sleep(120)"):
        process = subprocess.Popen(
            [sys.executable, "-c", source], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout.readline().strip() == "ready"
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _job_of(job_dir: Path, pid: int, at: float) -> Path:
    write_log(
        job_dir,
        [
            ev("job_start", at, job_id=job_dir.name, process_id=pid, thread_id=1),
            ev("partition_start", at + 0.1, partition_id=0, process_id=pid),
        ],
    )
    return job_dir


def _stop(*argv: str) -> tuple[int, str]:
    out = StringIO()
    code = main(["stop", *argv], stdout=out, stderr=StringIO())
    return code, out.getvalue()


def test_stop_signals_the_process_the_log_recorded(job_dir, spawn):
    process = spawn()
    _job_of(job_dir, process.pid, time.time())
    code, out = _stop(str(job_dir), "--timeout", "10")
    assert code == 0
    assert f"stopped pid {process.pid}" in out
    process.wait(timeout=10)  # gone (psutil reaped it: the code is lost)


def test_a_recycled_pid_is_never_signalled(job_dir, spawn):
    """The log names the pid long before the process now holding it started."""
    process = spawn()
    _job_of(job_dir, process.pid, psutil.Process(process.pid).create_time() - 3600)
    code, out = _stop(str(job_dir), "--timeout", "1")
    assert code == 0 and "no running process" in out
    assert process.poll() is None


def test_a_process_that_is_no_python_or_ray_one_is_never_signalled(job_dir):
    """E.g. the log's pid was a worker on another node; here it names a ``sleep``."""
    process = subprocess.Popen(["sleep", "60"])
    try:
        _job_of(job_dir, process.pid, time.time() + 1)
        code, out = _stop(str(job_dir), "--timeout", "1")
        assert code == 0 and "no running process" in out
        assert process.poll() is None
    finally:
        process.kill()
        process.wait(timeout=10)


def test_this_process_is_never_signalled(job_dir):
    _job_of(job_dir, os.getpid(), time.time())
    code, out = _stop(str(job_dir), "--timeout", "1")
    assert code == 0 and "no running process" in out


def test_a_process_that_ignores_sigterm_needs_force(job_dir, spawn):
    process = spawn(IGNORES_SIGTERM)
    _job_of(job_dir, process.pid, time.time())
    code, out = _stop(str(job_dir), "--timeout", "0.5")
    assert code == EXIT_NOT_STOPPED
    assert f"still running: pid {process.pid}" in out and "--force" in out
    assert process.poll() is None
    code, out = _stop(str(job_dir), "--timeout", "0.5", "--force")
    assert code == 0 and f"stopped pid {process.pid}" in out
    process.wait(timeout=10)


def test_stop_of_a_missing_directory_is_bad_input(tmp_path):
    assert _stop(str(tmp_path / "nope"))[0] == 2


def test_list_shows_the_jobs_and_their_live_processes(tmp_path, spawn):
    process = spawn()
    _job_of(tmp_path / "outputs" / "live", process.pid, time.time())
    _job_of(tmp_path / "outputs" / "gone", 2**22 + 1, time.time() - 10)
    code, out = _stop("--list", str(tmp_path / "outputs"))
    assert code == 0
    rows = {line.split("\t")[0]: line.split("\t")[1:3] for line in out.splitlines()}
    assert rows == {"live": ["in_progress", "1 live"], "gone": ["in_progress", "0 live"]}


def test_upstream_api_stop_job_reports_in_upstream_keys(tmp_path, spawn):
    process = spawn()
    _job_of(tmp_path / "base" / "job1", process.pid, time.time())
    result = stop_job("job1", base_dir=str(tmp_path / "base"), timeout=10)
    assert result["success"] is True
    assert result["processes_found"] == 1 and result["processes_terminated"] == 1
    assert {"job_id", "threads_found", "threads_terminated", "errors"} <= result.keys()
    stopper = JobStopper("job1", base_dir=str(tmp_path / "base"))
    again = stopper.stop_job(timeout=1)
    assert again["success"] is False and again["processes_terminated"] == 0


def test_the_job_summary_is_marked_stopped(make_job, spawn):
    job_dir = make_job(partitions=1)
    process = spawn()
    with (job_dir / "events.jsonl").open("a") as handle:
        handle.write(json.dumps(ev("op_start", time.time(), process_id=process.pid)) + "\n")
    result = JobStopper(job_dir.name, base_dir=str(job_dir.parent)).stop_job(timeout=10)
    assert result["success"]
    summary = json.loads((job_dir / "job_summary.json").read_text())
    assert summary["status"] == "stopped" and summary["stop_reason"] == "manual_stop"


# -- a live dj-observe run job --------------------------------------------------------

OPS = [
    {"clean_links_mapper": {}},
    {"clean_email_mapper": {}},
    {"text_length_filter": {"min_len": 20}},
    {"document_deduplicator": {}},
]


ROWS, PARTITIONS = 200_000, 40
"""A job whose ops run for a few seconds, long enough to be stopped halfway."""


def _write_config(path: Path, root: Path) -> Path:
    path.write_text(
        f"dataset_path: demo://{ROWS}\n"
        f"export_path: {root / 'result.jsonl'}\n"
        f"work_dir: {root / 'jobs'}\n"
        f"partition: {{size: {ROWS // PARTITIONS}}}\nnp: 1\n"
        "process:\n"
        + "".join(f"  - {name}: {json.dumps(args)}\n" for op in OPS for name, args in op.items())
    )
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _doc(job_dir: Path) -> dict:
    analyzer = ProcessingSnapshotAnalyzer(job_dir, workers=1)
    return analyzer.to_json_dict(analyzer.generate_snapshot())


def _checkpoints_saved(log: Path) -> int:
    if not log.exists():
        return 0
    return sum(b'"checkpoint_save"' in line for line in log.open("rb"))


def test_stop_a_live_run_job_then_resume_it_to_the_same_output(tmp_path, ray_runtime):
    reference = run_job(
        load_config(_write_config(tmp_path / "ref.yaml", tmp_path / "ref")), job_id="ref"
    )
    config = _write_config(tmp_path / "job.yaml", tmp_path / "stopped")
    job_dir = tmp_path / "stopped" / "jobs" / "victim"
    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_ADDRESS": "local",  # its own Ray: the workers stop signals are the job's alone
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "dj_observe.cli", "run", str(config), "--job-id", "victim"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        # Partitions report completion together at the end; their ops' checkpoints stream.
        wait_until(lambda: _checkpoints_saved(job_dir / "events.jsonl") >= 16, timeout=120)
        assert process.poll() is None, "the job ended before it could be stopped"
        code, out = _stop(str(job_dir), "--timeout", "60")
        assert code == 0, out
        assert f"stopped pid {process.pid} " in out
        process.wait(timeout=60)  # gone (stop reaped its code)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait(timeout=30)
    stopped = _doc(job_dir)
    assert stopped["overall_status"] == "in_progress"
    assert stopped["metadata"]["torn_tail_lines"] == 0
    assert stopped["progress_summary"]["completed_partitions"] < PARTITIONS
    assert 16 <= stopped["checkpointing"]["checkpointed_operations_count"] < 4 * PARTITIONS
    resumed = run_job(load_config(config), job_id="victim")
    assert resumed.status == "completed" and resumed.resumed
    assert _rows(resumed.export_path) == _rows(reference.export_path)
    assert _doc(resumed.job_dir)["progress_summary"]["completed_partitions"] == PARTITIONS
