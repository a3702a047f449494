"""What a new user meets in the first hour, through the CLI: messages that point the way,
ages a person reads, machine output for scripts, plurals."""

from __future__ import annotations

import json
import re
import time
from io import StringIO
from pathlib import Path

from loguru import logger

from dj_observe import config as config_module
from dj_observe.cli import main
from dj_observe.config import ObservabilityConfig
from dj_observe.synthetic import JobSpec, write_job

DAY = 86_400


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _jobs(root: Path, **ages: float) -> Path:
    """Job directories under ``root/outputs`` whose last event is ``ages[job_id]`` old."""
    outputs = root / "outputs"
    for job_id, age in ages.items():
        write_job(outputs, JobSpec(job_id=job_id, partitions=2, start_time=time.time() - age))
    return outputs


def test_snapshot_of_the_parent_of_job_directories_names_them(tmp_path):
    outputs = _jobs(tmp_path, job_a=60, job_b=60)
    code, _, err = _run("snapshot", str(outputs))
    assert code == 2
    assert "holds 2 job directories (job_a, job_b)" in err
    assert f"dj-observe jobs {outputs}" in err
    assert len(err.strip().splitlines()) == 1


def test_jobs_on_a_file_says_it_is_not_a_directory(tmp_path):
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    code, _, err = _run("jobs", str(afile))
    assert code == 2 and "not a directory" in err and "not found" not in err


def test_snapshot_output_creates_its_directory_as_the_report_does(tmp_path):
    outputs = _jobs(tmp_path, job_a=60)
    target = tmp_path / "missing" / "dir" / "x.json"
    assert _run("snapshot", str(outputs / "job_a"), "-o", str(target))[0] == 0
    assert json.loads(target.read_text())["job_info"]["job_id"] == "job_a"


def test_jobs_ages_read_in_days_then_as_a_date(tmp_path):
    outputs = _jobs(tmp_path, recent=120, days=3.5 * DAY, old=400 * DAY)
    code, out, _ = _run("jobs", str(outputs))
    assert code == 0
    flat = " ".join(out.split())
    assert re.search(r"\b3d \d+h ago\b", flat), out
    assert re.search(r"\bon \d{4}-\d\d-\d\d\b", flat), out
    assert not re.search(r"\d{3,}h", flat), out  # never "11510h 48m 32s ago"


def test_jobs_json_is_one_document_for_scripts(tmp_path):
    outputs = _jobs(tmp_path, **{f"job_{n:03d}": 60 for n in range(40)})
    code, out, _ = _run("jobs", str(outputs), "--json")
    assert code == 0
    document = json.loads(out)
    assert sorted(job["job_id"] for job in document) == [f"job_{n:03d}" for n in range(40)]
    assert {"status", "running", "progress_percentage", "work_dir"} <= set(document[0])


def test_jobs_never_cuts_a_job_id_at_80_columns(tmp_path, monkeypatch):
    job_id = "20261201_120000_" + "a" * 40
    outputs = _jobs(tmp_path, **{job_id: 60})
    monkeypatch.setenv("COLUMNS", "80")
    _, out, _ = _run("jobs", str(outputs))
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in out
    assert any(job_id in line for line in out.splitlines())  # whole, on a line
    flat = "".join(line.strip() for line in out.splitlines())
    assert str(outputs / job_id) in flat  # its work dir, longer than a line: folded, whole


def test_an_environment_setting_the_config_overrides_is_said_once(monkeypatch):
    lines: list[str] = []
    sink = logger.add(lines.append, format="{message}", level="WARNING")
    monkeypatch.setattr(config_module, "_said", set())  # once per process: this test's own
    monkeypatch.setenv("DJ_OBSERVE_METRICS_PORT", "9464")
    try:
        for _ in range(2):
            config = ObservabilityConfig.from_dict({"metrics": {"port": 0}})
            assert config.metrics.port == 0  # the documented precedence holds
    finally:
        logger.remove(sink)
    said = [line for line in lines if "DJ_OBSERVE_METRICS_PORT" in line]
    assert len(said) == 1 and "observability.metrics.port wins" in said[0]


def test_the_reports_summary_counts_in_the_right_number(tmp_path):
    outputs = tmp_path / "outputs"
    job = write_job(
        outputs, JobSpec(job_id="resumed", partitions=1, crash_after_events=20, resume=True)
    )
    page = tmp_path / "r.html"
    assert _run("report", str(job), "-o", str(page))[0] == 0
    html = page.read_text()
    assert "0 job restarts, 1 partition resumed, 1 partition with more than one attempt" in html


def test_a_failed_ops_rows_read_the_same_in_the_snapshot_and_the_report(tmp_path, monkeypatch):
    """Rows and retention count the completed runs only, in every view."""
    monkeypatch.setenv("COLUMNS", "200")  # the op table with every column
    job = write_job(tmp_path / "outputs", JobSpec(partitions=4, failed_partitions={1: 2, 3: 2}))
    text = _run("snapshot", str(job), "--human-readable")[1]
    page = tmp_path / "r.html"
    assert _run("report", str(job), "-o", str(page))[0] == 0
    failed_op = JobSpec().ops[2]
    row = re.search(rf'<tr class="op-failed" data-op="{failed_op}">(.*?)</tr>', page.read_text())
    assert row is not None
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1))
    runs, completed, failed, rows_in, rows_out, kept = (cells[i] for i in (1, 2, 3, 7, 8, 9))
    assert (runs, completed, failed) == ("4", "2", "2")
    first_op_in = re.search(r"^│ 0 │.*?│ +[\d.]+s │ +[\d.]+s │ +([\d,]+) │", text, re.MULTILINE)
    assert first_op_in is not None and int(rows_in.replace(",", "")) < int(
        first_op_in.group(1).replace(",", "")
    )  # half the partitions' rows: the failed runs' input is not counted
    line = re.search(r"^│ 2 │.*$", text, re.MULTILINE)
    assert line is not None
    numbers = re.findall(r"[\d,.]+%?", line.group(0).split("│", 3)[3])
    assert numbers[:2] == [completed, failed] and numbers[-3:] == [rows_in, rows_out, kept], line
