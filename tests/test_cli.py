"""The ``dj-observe`` command line (dj_observe.cli), in-process and as the installed script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from support import ev, stable, write_log

import dj_observe.eventlog
import dj_observe.snapshot
from dj_observe import __version__
from dj_observe.cli import main


def run(*argv: str) -> tuple[int, str, str]:
    stdout, stderr = StringIO(), StringIO()
    code = main(list(argv), stdout=stdout, stderr=stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def assert_one_error_line(stderr: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("dj-observe: error:")
    assert "Traceback" not in stderr


@pytest.fixture
def failed_job(make_job):
    return make_job(partitions=4, ops=("a_mapper", "b_filter", "c_dedup"), failed_partitions={3: 1})


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """Rich tables wrap at the terminal width; keep error texts on one line."""
    monkeypatch.setenv("COLUMNS", "250")


# -- snapshot --------------------------------------------------------------------------


def test_snapshot_prints_only_json_and_exits_0(failed_job):
    code, out, err = run("snapshot", str(failed_job))
    assert code == 0
    document = json.loads(out)
    assert document["overall_status"] == "failed"
    assert document["progress_summary"]["total_partitions"] == 4
    assert err == ""


def test_snapshot_json_equals_the_api_document(failed_job):
    from support import snapshot_doc

    code, out, _ = run("snapshot", str(failed_job))
    assert code == 0
    assert stable(json.loads(out)) == stable(snapshot_doc(failed_job))


def test_snapshot_compact_prints_one_line(failed_job):
    code, out, _ = run("snapshot", str(failed_job), "--compact")
    assert code == 0
    assert len(out.strip().splitlines()) == 1
    assert json.loads(out)["overall_status"] == "failed"


def test_snapshot_human_readable_shows_status_partitions_errors_and_ops(failed_job):
    code, out, err = run("snapshot", str(failed_job), "--human-readable")
    assert code == 0
    assert err == ""
    assert "Status:   failed" in out
    assert "Partitions: 3/4 completed, 1 failed, 0 running" in out
    assert "Failed partitions" in out
    error = json.loads(run("snapshot", str(failed_job))[1])["partition_progress"]["3"][
        "error_message"
    ]
    assert error.startswith("RayTaskError(ValueError): b_filter could not process sample")
    assert error in out
    assert "Operations" in out
    for name in ("a_mapper", "b_filter", "c_dedup"):
        assert name in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_snapshot_output_file_is_written(failed_job, tmp_path):
    target = tmp_path / "out" / "snapshot.json"
    target.parent.mkdir()
    code, out, err = run("snapshot", str(failed_job), "-o", str(target))
    assert code == 0
    assert out == ""
    assert err == ""
    assert json.loads(target.read_text())["overall_status"] == "failed"
    assert sorted(path.name for path in target.parent.iterdir()) == ["snapshot.json"]


def test_snapshot_output_replaces_an_existing_file(failed_job, tmp_path):
    target = tmp_path / "snapshot.json"
    target.write_text("old content that is longer than nothing" * 100)
    code, _, _ = run("snapshot", str(failed_job), "--output", str(target), "--compact")
    assert code == 0
    assert json.loads(target.read_text())["progress_summary"]["failed_partitions"] == 1
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_snapshot_output_failing_mid_write_keeps_the_old_file(failed_job, tmp_path, monkeypatch):
    """The disk fills up while writing: the old file is intact and no temp file is left."""
    target = tmp_path / "out" / "snapshot.json"
    target.parent.mkdir()
    target.write_text('{"previous": true}')

    def disk_full(snapshot, stream, **kwargs):
        stream.write(b'{"job_info": ')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dj_observe.snapshot, "write_json", disk_full)
    code, _, err = run("snapshot", str(failed_job), "-o", str(target))
    assert code == 2
    assert_one_error_line(err)
    assert "No space left on device" in err
    assert target.read_text() == '{"previous": true}'
    assert [path.name for path in target.parent.iterdir()] == ["snapshot.json"]


def test_snapshot_output_into_a_missing_directory_creates_it(failed_job, tmp_path):
    """As ``report -o`` does."""
    target = tmp_path / "missing" / "snapshot.json"
    code, _out, err = run("snapshot", str(failed_job), "-o", str(target))
    assert code == 0, err
    assert json.loads(target.read_text())["overall_status"] == "failed"


def test_snapshot_output_where_no_directory_can_be_made_exits_2(failed_job, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, out, err = run("snapshot", str(failed_job), "-o", str(blocker / "snapshot.json"))
    assert code == 2
    assert out == ""
    assert_one_error_line(err)


def test_failed_snapshot_leaves_the_existing_output_untouched(job_dir, tmp_path):
    """No event log: exit 2, the previous file keeps its bytes and no temp file is left."""
    target = tmp_path / "snapshot.json"
    target.write_text('{"previous": true}')
    code, _, err = run("snapshot", str(job_dir), "-o", str(target))
    assert code == 2
    assert_one_error_line(err)
    assert target.read_text() == '{"previous": true}'
    assert sorted(path.name for path in tmp_path.iterdir()) == ["job", "snapshot.json"]


def test_snapshot_of_missing_directory_exits_2(tmp_path):
    code, out, err = run("snapshot", str(tmp_path / "nope"))
    assert code == 2
    assert out == ""
    assert_one_error_line(err)
    assert "nope" in err


def test_snapshot_of_a_file_instead_of_a_directory_exits_2(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("{}\n")
    code, _, err = run("snapshot", str(path))
    assert code == 2
    assert_one_error_line(err)


def test_snapshot_of_directory_without_event_log_exits_2(job_dir):
    (job_dir / "job_summary.json").write_text("{}")
    code, out, err = run("snapshot", str(job_dir))
    assert code == 2
    assert out == ""
    assert_one_error_line(err)
    assert "no event log" in err


def test_snapshot_of_empty_log_is_not_started(job_dir):
    (job_dir / "events.jsonl").write_bytes(b"")
    code, out, _ = run("snapshot", str(job_dir))
    assert code == 0
    assert json.loads(out)["overall_status"] == "not_started"


def test_snapshot_when_events_jsonl_is_a_directory_exits_2(job_dir):
    (job_dir / "events.jsonl").mkdir()
    code, out, err = run("snapshot", str(job_dir))
    assert code == 2
    assert out == ""
    assert_one_error_line(err)


def test_snapshot_of_unreadable_log_exits_2(job_dir, monkeypatch):
    """Reading the log fails with EACCES (forced: tests may run as root)."""
    write_log(job_dir, [ev("job_start", 1.0)])

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(dj_observe.eventlog, "open", denied, raising=False)
    code, out, err = run("snapshot", str(job_dir))
    assert code == 2
    assert out == ""
    assert_one_error_line(err)
    assert "Permission denied" in err


def test_snapshot_with_bad_workers_exits_2(failed_job):
    code, _, err = run("snapshot", str(failed_job), "--workers", "0")
    assert code == 2
    assert_one_error_line(err)


def test_snapshot_with_hostile_line_exits_0_and_counts_it(job_dir):
    write_log(job_dir, [ev("job_start", 1.0), b"[" * 5000, ev("job_complete", 2.0)])
    code, out, err = run("snapshot", str(job_dir))
    assert "Traceback" not in err
    assert code == 0
    assert json.loads(out)["metadata"]["malformed_lines"] == 1


# -- demo, jobs, version -----------------------------------------------------------------


def test_demo_writes_a_job_and_prints_a_table(tmp_path):
    code, out, err = run("demo", "--output", str(tmp_path / "demo"))
    assert code == 0
    jobs = [path for path in (tmp_path / "demo").iterdir() if path.is_dir()]
    assert len(jobs) == 1
    assert (jobs[0] / "events.jsonl").stat().st_size > 0
    assert str(jobs[0]) in err
    assert "Partitions" in out
    assert "Status:   failed" in out
    assert f"dj-observe snapshot {jobs[0]}" in out


def test_demo_job_can_be_snapshotted(tmp_path):
    run("demo", "--output", str(tmp_path / "demo"))
    (job,) = [path for path in (tmp_path / "demo").iterdir() if path.is_dir()]
    code, out, _ = run("snapshot", str(job))
    assert code == 0
    document = json.loads(out)
    assert document["progress_summary"]["total_partitions"] == 6
    assert document["progress_summary"]["failed_partitions"] == 1


def test_jobs_lists_the_jobs_under_a_directory(make_job, tmp_path):
    make_job(job_id="job_done", partitions=2)
    make_job(job_id="job_failed", partitions=2, failed_partitions={0: 1})
    code, out, _ = run("jobs", str(tmp_path / "outputs"))
    assert code == 0
    assert "job_done" in out
    assert "job_failed" in out
    assert "completed" in out
    assert "failed" in out


def test_jobs_running_with_no_running_job_says_so(make_job, tmp_path):
    make_job(job_id="job_done", partitions=2)
    code, out, _ = run("jobs", str(tmp_path / "outputs"), "--running")
    assert code == 0
    assert "No jobs found." in out
    assert "job_done" not in out


def test_jobs_of_missing_directory_exits_2(tmp_path):
    code, _, err = run("jobs", str(tmp_path / "missing"))
    assert code == 2
    assert_one_error_line(err)


def test_version_is_printed_in_process():
    code, out, _ = run("--version")
    assert code == 0
    assert out.strip() == f"dj-observe {__version__}"


# -- the installed console script ----------------------------------------------------------


def console_script() -> str:
    beside = Path(sys.executable).with_name("dj-observe")
    found = str(beside) if beside.exists() else shutil.which("dj-observe")
    assert found, "the dj-observe console script is not installed"
    return found


def script(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run(
        [console_script(), *argv], capture_output=True, text=True, timeout=120, env=env
    )


def test_console_script_snapshot_prints_json(failed_job):
    result = script("snapshot", str(failed_job))
    assert result.returncode == 0
    assert result.stderr == ""
    document = json.loads(result.stdout)
    assert document["overall_status"] == "failed"
    assert document["job_info"]["job_id"] == "20250809_040053_a001de"


def test_console_script_missing_directory_exits_2_without_traceback(tmp_path):
    result = script("snapshot", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert_one_error_line(result.stderr)


def test_console_script_version():
    result = script("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"dj-observe {__version__}"


def test_console_script_human_readable(failed_job):
    result = script("snapshot", str(failed_job), "--human-readable")
    assert result.returncode == 0
    assert "Failed partitions" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command",
    ["snapshot", "run", "demo", "replay", "serve", "watch", "report", "diff", "instrument", "jobs"],
)
def test_every_command_help_has_a_description(command):
    code, out, _ = run(command, "--help")
    assert code == 0
    paragraphs = out.split("\n\n")
    assert not paragraphs[1].startswith(("positional arguments", "options")), out
