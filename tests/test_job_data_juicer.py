"""``dj_observe.job`` on a real ``dj-process`` job directory, beside Data-Juicer's own
``data_juicer.utils.job`` on the same directory (one real run, about 20 s)."""

from __future__ import annotations

import sys
from io import StringIO
from pathlib import Path

import pytest
from data_juicer_job import OPS, PARTITIONS, RUN_TIMEOUT, dj_environment, run, write_config

from dj_observe.job import common, monitor, snapshot

pytest.importorskip("data_juicer", reason="pip install 'dj-observe[data-juicer]'")
pytestmark = pytest.mark.timeout(RUN_TIMEOUT + 60)


@pytest.fixture(scope="module")
def real_job(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dj-job")
    config = write_config(root, "grouped", "every_n_ops", n_ops=2)
    command = [str(Path(sys.executable).with_name("dj-process")), "--config", str(config)]
    process = run([*command, "--job_id", "real1"], dj_environment(root), root / "run.log")
    assert process.wait(RUN_TIMEOUT) == 0, (root / "run.log").read_text()[-3000:]
    return root / "outputs" / "real1"


def test_snapshot_document_has_upstream_keys_and_their_dag_structure(real_job):
    from data_juicer.utils.job.snapshot import ProcessingSnapshotAnalyzer as Upstream

    theirs_analyzer = Upstream(str(real_job))
    theirs = theirs_analyzer.to_json_dict(theirs_analyzer.generate_snapshot())
    ours_analyzer = snapshot.ProcessingSnapshotAnalyzer(work_dir=str(real_job))
    ours = ours_analyzer.to_json_dict(ours_analyzer.generate_snapshot())
    assert list(ours) == list(theirs)
    assert ours["dag_structure"] == theirs["dag_structure"]
    assert ours["dag_structure"]["total_nodes"] > 0
    assert ours["progress_summary"]["completed_partitions"] == PARTITIONS


def test_analysis_steps_on_a_real_job(real_job):
    analyzer = snapshot.ProcessingSnapshotAnalyzer(real_job)
    partitions, operations = analyzer.analyze_events(analyzer.load_events())
    assert sorted(partitions) == list(range(PARTITIONS))
    assert analyzer.determine_overall_status(partitions, operations).value == "completed"
    stats = analyzer.calculate_statistics(partitions, operations)
    assert stats["completed_partitions"] == PARTITIONS
    assert stats["completed_operations"] == PARTITIONS * len(OPS)


def test_job_utils_on_a_real_job_in_upstream_shapes(real_job):
    from data_juicer.utils.job.common import JobUtils as Upstream

    ours = common.JobUtils("real1", base_dir=str(real_job.parent))
    theirs = Upstream("real1", base_dir=str(real_job.parent))
    assert set(ours.calculate_overall_progress()) == set(theirs.calculate_overall_progress())
    assert ours.load_job_summary() == theirs.load_job_summary()
    assert ours.extract_process_thread_ids() == theirs.extract_process_thread_ids()
    progress = ours.calculate_overall_progress()
    assert progress["completed_partitions"] == progress["total_partitions"] == PARTITIONS
    assert [op["name"] for op in ours.get_operation_pipeline()] == OPS


def test_monitor_on_a_real_job(real_job):
    from data_juicer.utils.job.monitor import JobProgressMonitor as Upstream

    ours = monitor.JobProgressMonitor("real1", base_dir=str(real_job.parent))
    theirs = Upstream("real1", base_dir=str(real_job.parent))
    assert set(ours.get_progress_data()) == set(theirs.get_progress_data())
    out = StringIO()
    ours.display_progress(detailed=True, stream=out)
    assert f"({PARTITIONS}/{PARTITIONS} partitions)" in out.getvalue()
