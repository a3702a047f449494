"""``dj_observe.report``: the offline HTML report, checked as text and in headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support import chromium, page_errors, partition_groups, run_chromium

from dj_observe.report import build_report, sample_partitions, write_report
from dj_observe.synthetic import JobSpec, write_job

EXTERNAL_REF = re.compile(r"""(?:src|href|xlink:href|action)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def _group(html: str, pid: int) -> str:
    start = html.index(f'<g class="partition" data-partition="{pid}"')
    return html[start : html.index("</g>", html.index("</title>", start))]


def _assert_offline(html: str) -> None:
    assert not EXTERNAL_REF.search(html)
    assert "url(" not in html and "@import" not in html
    assert "http://" not in html and "https://" not in html


@pytest.fixture
def small_job(tmp_path: Path) -> Path:
    spec = JobSpec(partitions=5, failed_partitions={2: 3}, summary=False)
    return write_job(tmp_path / "outputs", spec)


def test_small_job_one_group_per_partition_failed_run_marked(small_job: Path, tmp_path: Path):
    out = write_report(small_job, tmp_path / "r" / "report.html")
    html = out.read_text(encoding="utf-8")
    _assert_offline(html)
    assert "<script" not in html
    assert partition_groups(html) == [0, 1, 2, 3, 4]
    failed = _group(html, 2)
    assert 'data-status="failed"' in failed
    assert failed.count('class="op failed"') == 1
    assert 'data-op="punctuation_normalization_mapper"' in failed
    assert html.count('class="op failed"') == 1
    assert html.count('class="checkpoint"') >= 5 * 3
    assert 'class="failed-partition" data-partition="2"' in html
    assert "showing" not in html  # no sampling for 5 partitions
    assert '<svg class="funnel"' in html and "p95" in html


def test_summary_counts(tmp_path: Path):
    job = write_job(
        tmp_path / "outputs",
        JobSpec(partitions=5, failed_partitions={2: 3}, summary=False),
    )
    html = build_report(job)
    assert "5 total: 4 completed, 1 failed" in html
    assert "status-failed" in html
    assert "skipped lines" in html


def test_deterministic_but_for_generated_at(small_job: Path, tmp_path: Path):
    first = write_report(small_job, tmp_path / "a.html").read_text()
    second = write_report(small_job, tmp_path / "b.html").read_text()

    def body(html: str) -> str:
        return re.sub(r"generated at [^<]*", "", html)

    assert body(first) == body(second)
    assert build_report(small_job, generated_at=0) == build_report(small_job, generated_at=0)


def test_atomic_write_leaves_no_temp_file(small_job: Path, tmp_path: Path):
    out = tmp_path / "out"
    write_report(small_job, out / "report.html")
    write_report(small_job, out / "report.html")
    assert [p.name for p in out.iterdir()] == ["report.html"]


def test_resumed_partitions_are_marked(tmp_path: Path):
    spec = JobSpec(partitions=4, crash_after_events=40, resume=True, summary=False)
    html = build_report(write_job(tmp_path / "outputs", spec))
    assert len(partition_groups(html)) == 4
    assert '<g class="resume">' in html
    assert "resumed at" in html


def test_sampling_keeps_failed_partitions(tmp_path: Path):
    failed = {7: 1, 555: 1, 1199: 0}
    spec = JobSpec(
        partitions=1200,
        ops=("clean_links_mapper", "text_length_filter"),
        samples_per_partition=50,
        parallelism=8,
        failed_partitions=failed,
        summary=False,
        dag_plan=False,
    )
    job = write_job(tmp_path / "outputs", spec)
    html = write_report(job, tmp_path / "big.html", max_partitions=200).read_text()
    shown = partition_groups(html)
    assert len(shown) == 200
    assert set(failed) <= set(shown)
    assert shown == sorted(shown) and len(set(shown)) == 200
    assert shown[0] == 0  # the sample spans the whole range
    assert shown[-1] == 1199
    assert "showing 200 of 1200 partitions: all failed ones (3)" in html
    assert "Failed partitions (3)" in html
    _assert_offline(html)


def test_sample_partitions_even_spacing():
    assert sample_partitions(range(10), [], 20) == list(range(10))
    assert sample_partitions(range(100), [], 5) == [0, 25, 50, 74, 99]
    picked = sample_partitions(range(100), [3, 4, 5], 6)
    assert picked[:3] == [0, 3, 4] and 5 in picked and len(picked) == 6
    assert sample_partitions(range(10), [1, 2, 3], 2) == [1, 2, 3]  # failed ones all stay


def _hostile_job(job_dir: Path) -> Path:
    """A hand-written log whose error message and op name try to inject markup."""
    evil = '<script>alert("x")</script><img src="https://evil.example/p.png"> & more'
    t = 1754712053.0
    events = [
        {"event_type": "job_start", "timestamp": t, "job_id": "j<b>1</b>"},
        {"event_type": "partition_start", "timestamp": t + 1, "partition_id": 0},
        {
            "event_type": "op_start",
            "timestamp": t + 1.1,
            "partition_id": 0,
            "operation_name": 'op"><svg onload=alert(1)>',
            "operation_idx": 0,
        },
        {
            "event_type": "op_failed",
            "timestamp": t + 2,
            "partition_id": 0,
            "operation_name": 'op"><svg onload=alert(1)>',
            "operation_idx": 0,
            "error_message": evil,
        },
        {
            "event_type": "partition_failed",
            "timestamp": t + 2.1,
            "partition_id": 0,
            "error_message": evil + "\nTraceback <frame>",
        },
        {"event_type": "job_failed", "timestamp": t + 3, "error_message": evil},
    ]
    job_dir.mkdir(parents=True)
    lines = "".join(json.dumps(event) + "\n" for event in events)
    (job_dir / "events.jsonl").write_text(lines + "{torn", encoding="utf-8")
    return job_dir


def test_log_text_is_escaped(tmp_path: Path):
    html = build_report(_hostile_job(tmp_path / "job"))
    assert "<script" not in html
    assert "<img" not in html and "<b>" not in html
    assert "onload=alert" not in html.replace("onload=alert(1)&gt;", "")
    assert "<svg onload" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert not EXTERNAL_REF.search(html)  # the URL is only escaped text
    assert html.count('class="op failed"') == 1
    assert "Traceback &lt;frame&gt;" in html


# -- in a real browser ---------------------------------------------------------------


def test_browser_renders_timeline_offline(tmp_path: Path):
    chromium()
    job = write_job(tmp_path / "outputs", JobSpec(partitions=5, failed_partitions={2: 3}))
    page = write_report(job, tmp_path / "report.html")
    _assert_offline(page.read_text(encoding="utf-8"))

    dom = run_chromium(page, tmp_path / "profile-dom", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert partition_groups(dom.stdout) == [0, 1, 2, 3, 4]
    failed = _group(dom.stdout, 2)
    assert 'class="op failed"' in failed and 'fill="#d62728"' in failed
    assert dom.stdout.count('class="op"') == 4 * 8 + 3
    assert page_errors(dom.stderr) == []

    png = tmp_path / "report.png"
    shot = run_chromium(
        page, tmp_path / "profile-shot", f"--screenshot={png}", "--window-size=1400,1000"
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert png.exists() and png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page_errors(shot.stderr) == []


def test_browser_error_check_is_not_vacuous(tmp_path: Path):
    """The same run flags a page that throws or fetches from the network (blocked)."""
    chromium()
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="https://example.com/x.png">'
        "<script>throw new Error('boom')</script></body></html>",
        encoding="utf-8",
    )
    run = run_chromium(page, tmp_path / "profile-bad", "--dump-dom")
    errors = page_errors(run.stderr)
    assert any("Uncaught" in line and "boom" in line for line in errors), run.stderr[-3000:]


def test_docs_script_is_importable():
    script = Path(__file__).resolve().parent.parent / "docs" / "make_screenshot.py"
    assert script.exists()
    compile(script.read_text(encoding="utf-8"), str(script), "exec")


def test_the_report_command_writes_the_page(make_job, tmp_path):
    from io import StringIO

    from dj_observe.cli import main

    job = make_job(partitions=3, failed_partitions={1: 2})
    target = tmp_path / "out" / "r.html"
    err = StringIO()
    assert main(["report", str(job), "-o", str(target)], stdout=StringIO(), stderr=err) == 0
    assert target.read_text().count('class="partition"') == 3
    assert main(["report", str(tmp_path / "missing")], stdout=StringIO(), stderr=err) == 2
