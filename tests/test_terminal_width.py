"""Terminal output fits the terminal and never cuts what a user copies: at 80 columns and
piped (rich's 80), every op name, job id, partition id and work dir is shown whole on a line;
at 200 columns the tables use the width."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from support import TtyStringIO, demo_config, ev, run_cli, write_log

from dj_observe.cli import main
from dj_observe.synthetic import DEFAULT_OPS, JobSpec, write_job
from dj_observe.watch import watch

LONG_OP = "text_pair_similarity_filter_for_long_documents"
"""An op name of 40+ characters."""
OPS = (
    "document_minhash_deduplicator",
    LONG_OP,
    "text_length_filter",
    "whitespace_normalization_mapper",
)
JOB_ID = "20261201_120000_" + "a" * 30
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")

WIDTHS = {"80 columns": "80", "piped": None}


def _terminal(monkeypatch, columns: str | None) -> None:
    if columns is None:  # piped: rich falls back to 80 columns
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)


def _failed_job(root: Path) -> Path:
    """A job whose 40+-character op failed on partition 2."""
    spec = JobSpec(job_id=JOB_ID, partitions=4, ops=OPS, failed_partitions={2: 1})
    return write_job(root / "outputs", spec)


def _on_one_line(text: str, *names: str) -> None:
    """Each name shown whole on a line, and no line holding its start without the rest."""
    lines = text.splitlines()
    for name in names:
        assert any(name in line for line in lines), f"{name!r} not whole on a line:\n{text}"
        cut = [line for line in lines if name[:12] in line and name not in line]
        assert not cut, f"{name!r} cut:\n{text}"


def _fits(text: str, width: int = 80) -> None:
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= width, text


def _rows(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if f"│ {name} " in line]


@pytest.mark.parametrize("columns", WIDTHS.values(), ids=WIDTHS.keys())
def test_the_snapshot_shows_every_op_name_and_the_job_id_whole(tmp_path, monkeypatch, columns):
    _terminal(monkeypatch, columns)
    code, out, _ = run_cli("snapshot", str(_failed_job(tmp_path)), "--human-readable")
    assert code == 0
    _fits(out)
    _on_one_line(out, JOB_ID, *OPS)
    assert re.search(r"^partition: 2$|│ 2 +│", out, re.MULTILINE)  # the failed partition


def test_the_snapshot_at_200_columns_is_one_table_row_an_op(tmp_path, monkeypatch):
    _terminal(monkeypatch, "200")
    code, out, _ = run_cli("snapshot", str(_failed_job(tmp_path)), "--human-readable")
    assert code == 0
    assert "not shown at this width" not in out
    for name in OPS:  # every column of the op table on the op's line
        assert [row.count("│") for row in _rows(out, name)][-1] == 10, out
    assert re.search(rf"│ 2 +│ {LONG_OP} +│ RayTaskError.*could not process sample \d+ +│", out)


def test_a_terminal_narrower_than_a_name_folds_it_whole(tmp_path, monkeypatch):
    _terminal(monkeypatch, "40")
    code, out, _ = run_cli("snapshot", str(_failed_job(tmp_path)), "--human-readable")
    assert code == 0
    _fits(out, 40)
    _on_one_line(out, *(name for name in OPS if len(name) < 36))
    assert LONG_OP in out.replace("\n", "")  # folded at the edge, every character there


@pytest.mark.parametrize("columns", WIDTHS.values(), ids=WIDTHS.keys())
def test_jobs_shows_every_job_id_and_work_dir_whole(tmp_path, monkeypatch, columns):
    _terminal(monkeypatch, columns)
    monkeypatch.chdir(tmp_path)  # work dirs short enough for a line: o/<job id>
    outputs = Path("o")
    ids = ["20250809_040053_a001de", JOB_ID]
    for job_id in ids:
        write_job(outputs, JobSpec(job_id=job_id, partitions=2))
    code, out, _ = run_cli("jobs", str(outputs))
    assert code == 0
    _fits(out)
    _on_one_line(out, *ids, *(str(outputs / job_id) for job_id in ids))


def test_jobs_at_200_columns_keeps_the_work_dir_in_the_table(tmp_path, monkeypatch):
    _terminal(monkeypatch, "200")
    monkeypatch.chdir(tmp_path)
    outputs = Path("o")
    write_job(outputs, JobSpec(job_id=JOB_ID, partitions=2))
    _, out, _ = run_cli("jobs", str(outputs))
    assert [str(outputs / JOB_ID) in row for row in _rows(out, JOB_ID)] == [True], out
    assert "work dir:" not in out and "not shown" not in out


def _diff(tmp_path: Path) -> tuple[Path, Path]:
    a = write_job(tmp_path / "a", JobSpec(job_id="job_a", partitions=2, ops=OPS))
    b = write_job(tmp_path / "b", JobSpec(job_id="job_b", partitions=3, ops=OPS, seed=1))
    return a, b


@pytest.mark.parametrize("columns", WIDTHS.values(), ids=WIDTHS.keys())
def test_diff_fits_the_terminal_with_every_op_name_whole(tmp_path, monkeypatch, columns):
    _terminal(monkeypatch, columns)
    code, out, _ = run_cli("diff", *map(str, _diff(tmp_path)))
    assert code == 0
    _fits(out)
    _on_one_line(out, *OPS)


def test_diff_at_200_columns_is_one_table_row_an_op(tmp_path, monkeypatch):
    _terminal(monkeypatch, "200")
    _, out, _ = run_cli("diff", *map(str, _diff(tmp_path)))
    for name in OPS:  # the op and its six figures on one line
        assert [row.count("│") for row in _rows(out, name)] == [8], out


def _live(text: str) -> str:
    """The last frame a live view drew (after its last line erase), without escapes."""
    return ANSI.sub("", text.rsplit("\x1b[2K", 1)[-1])


def test_the_live_watch_shows_the_job_dir_and_a_failed_op_whole(tmp_path, monkeypatch):
    _terminal(monkeypatch, "80")
    monkeypatch.chdir(tmp_path)
    job = _failed_job(Path())
    out = TtyStringIO()
    assert main(["watch", str(job)], stdout=out) == 4
    text = _live(out.getvalue())
    _fits(text)
    _on_one_line(text, str(job), LONG_OP)


def test_the_live_watch_shows_a_running_op_whole(tmp_path, monkeypatch):
    _terminal(monkeypatch, "80")
    monkeypatch.chdir(tmp_path)
    job = write_log(
        Path(JOB_ID),
        [
            ev("job_start", 1.0, job_id=JOB_ID, total_partitions=2),
            ev("partition_start", 1.0, partition_id=0),
            ev("op_start", 1.0, partition_id=0, operation_name=LONG_OP, operation_idx=0),
        ],
    )
    out = TtyStringIO()
    watch(job, out, interval=0.01, max_refreshes=1, clock=lambda: 2.0)
    text = _live(out.getvalue())
    _fits(text)
    _on_one_line(text, str(job), LONG_OP)
    piped = StringIO()
    watch(job, piped, interval=0.01, max_refreshes=1, clock=lambda: 2.0)
    assert f"running p0:{LONG_OP} " in piped.getvalue()  # one line, whatever its length


def test_the_piped_run_summary_shows_every_op_and_command_whole(tmp_path, ray_runtime, monkeypatch):
    _terminal(monkeypatch, None)
    config = demo_config(tmp_path / "job.yaml", tmp_path / "jobs", rows=600, partition_size=300)
    code, out, err = run_cli("run", str(config), "--job-id", "summary")
    assert code == 0, err
    _on_one_line(out, *DEFAULT_OPS)
    assert "…" not in out
    job_dir = tmp_path / "jobs" / "summary"
    for line in (
        f"snapshot: dj-observe snapshot {job_dir}",
        f"metrics:  dj-observe replay {job_dir}",
    ):
        assert f"\n  {line}\n" in out, out  # a command alone on its line, to copy whole
