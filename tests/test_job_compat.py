"""``dj_observe.job`` against Data-Juicer's ``data_juicer.utils.job``: names, signatures,
return shapes, and a script written for upstream that runs after the import switch."""

from __future__ import annotations

import enum
import importlib
import inspect
import subprocess
import sys
import textwrap

import pytest
from support import ev, snapshot_doc, write_log

from dj_observe.job import common, snapshot
from dj_observe.snapshot import JobSnapshot, ProcessingStatus

pytest.importorskip("data_juicer", reason="pip install 'dj-observe[data-juicer]'")

OPS = ["clean_links_mapper", "clean_email_mapper", "text_length_filter"]

API = {
    "snapshot": [
        "ProcessingSnapshotAnalyzer",
        "ProcessingSnapshotAnalyzer.load_events",
        "ProcessingSnapshotAnalyzer.load_dag_plan",
        "ProcessingSnapshotAnalyzer.load_job_summary",
        "ProcessingSnapshotAnalyzer.analyze_events",
        "ProcessingSnapshotAnalyzer.determine_overall_status",
        "ProcessingSnapshotAnalyzer.calculate_statistics",
        "ProcessingSnapshotAnalyzer.generate_snapshot",
        "ProcessingSnapshotAnalyzer.to_json_dict",
        "create_snapshot",
        "JobSnapshot",
        "OperationStatus",
        "PartitionStatus",
        "main",
    ],
    "common": [
        "JobUtils",
        "JobUtils.load_job_summary",
        "JobUtils.load_dataset_mapping",
        "JobUtils.load_event_logs",
        "JobUtils.extract_process_thread_ids",
        "JobUtils.find_processes_by_ids",
        "JobUtils.find_threads_by_ids",
        "JobUtils.get_partition_status",
        "JobUtils.calculate_overall_progress",
        "JobUtils.get_operation_pipeline",
        "list_running_jobs",
    ],
    "monitor": [
        "JobProgressMonitor",
        "JobProgressMonitor.display_progress",
        "JobProgressMonitor.get_progress_data",
        "show_job_progress",
        "main",
    ],
    "stopper": [
        "JobStopper",
        "JobStopper.terminate_process_gracefully",
        "JobStopper.cleanup_job_resources",
        "JobStopper.stop_job",
        "stop_job",
        "main",
    ],
}


def _resolve(module: str, dotted: str):
    target = importlib.import_module(module)
    for part in dotted.split("."):
        target = getattr(target, part)
    return target


def _parameters(target) -> list[tuple[str, object]]:
    return [
        (param.name, _default(param.default))
        for param in inspect.signature(target).parameters.values()
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
    ]


def _default(value: object) -> object:
    """Defaults compared by meaning: an enum by its value; an empty-list factory is
    upstream's ``None`` that its ``__post_init__`` turns into ``[]``."""
    if isinstance(value, enum.Enum):
        return value.value
    if repr(value) == "<factory>":
        return None
    return value


@pytest.mark.parametrize(
    ("module", "name"), [(module, name) for module, names in API.items() for name in names]
)
def test_every_upstream_name_has_its_signature(module, name):
    """Upstream's positional parameters are ours, in order, with upstream's defaults (a
    required one may have gained a default; ``main`` may take an optional ``argv``)."""
    theirs = _parameters(_resolve(f"data_juicer.utils.job.{module}", name))
    ours = _parameters(_resolve(f"dj_observe.job.{module}", name))
    assert [name for name, _ in ours[: len(theirs)]] == [name for name, _ in theirs]
    for (_, our_default), (_, their_default) in zip(ours, theirs, strict=False):
        assert their_default is inspect.Parameter.empty or our_default == their_default
    assert all(default is not inspect.Parameter.empty for _, default in ours[len(theirs) :])


def test_the_package_exports_what_upstream_exports():
    upstream = importlib.import_module("data_juicer.utils.job")
    ours = importlib.import_module("dj_observe.job")
    assert set(upstream.__all__) <= set(ours.__all__)


def test_job_snapshot_takes_upstream_fields_and_defaults():
    fields = ["job_id", "job_start_time", "job_end_time", "total_duration", "total_partitions"]
    snap = JobSnapshot("j", 1.0, 2.0, 1.0, 3)
    assert [getattr(snap, name) for name in fields] == ["j", 1.0, 2.0, 1.0, 3]
    bare = JobSnapshot(job_id="j")
    assert bare.partition_statuses is None and bare.dag_structure is None
    assert bare.checkpoint_frequency is None and bare.resumable is False
    assert bare.overall_status == ProcessingStatus.NOT_STARTED


@pytest.fixture
def failed_job(make_job):
    return make_job(partitions=3, ops=OPS, failed_partitions={1: 1}, seed=3)


def test_analyzer_takes_work_dir_by_keyword_and_job_dir_as_alias(failed_job):
    by_work_dir = snapshot.ProcessingSnapshotAnalyzer(work_dir=str(failed_job))
    by_job_dir = snapshot.ProcessingSnapshotAnalyzer(job_dir=failed_job)
    assert by_work_dir.work_dir == by_job_dir.work_dir == failed_job
    assert by_work_dir.events_file == failed_job / "events.jsonl"
    assert by_work_dir.generate_snapshot().job_id == by_job_dir.generate_snapshot().job_id


def test_analysis_steps_agree_with_the_snapshot(failed_job):
    analyzer = snapshot.ProcessingSnapshotAnalyzer(failed_job)
    events = analyzer.load_events()
    assert len(events) == snapshot_doc(failed_job)["metadata"]["events_analyzed"]
    assert all(isinstance(event, dict) for event in events)
    partitions, operations = analyzer.analyze_events(events)
    snap = analyzer.generate_snapshot()
    assert partitions == dict(snap.partition_statuses)
    assert operations == dict(snap.operation_statuses)
    assert analyzer.determine_overall_status(partitions, operations) == ProcessingStatus.FAILED
    stats = analyzer.calculate_statistics(partitions, operations)
    assert stats.pop("total_operations") == len(operations)
    assert stats == {name: getattr(snap, name) for name in stats}
    assert snap.total_operations == 3 * len(OPS)  # the failed partition's op that never ran
    assert analyzer.load_dag_plan()["nodes"]
    assert analyzer.load_job_summary() == snap.summary


def test_failed_and_completed_partitions_make_a_failed_job(job_dir):
    write_log(
        job_dir,
        [
            ev("partition_start", 1.0, partition_id=0),
            ev("partition_complete", 2.0, partition_id=0),
            ev("partition_start", 1.0, partition_id=1),
            ev("partition_failed", 2.0, partition_id=1, error_message="boom"),
        ],
    )
    analyzer = snapshot.ProcessingSnapshotAnalyzer(job_dir)
    partitions, operations = analyzer.analyze_events(analyzer.load_events())
    assert analyzer.determine_overall_status(partitions, operations) == ProcessingStatus.FAILED


def test_a_checkpoint_leaves_a_completed_op_completed(job_dir):
    write_log(
        job_dir,
        [
            ev("partition_start", 1.0, partition_id=0),
            ev("op_start", 1.0, partition_id=0, operation_idx=0, operation_name="m"),
            ev("op_complete", 2.0, partition_id=0, operation_idx=0, operation_name="m"),
            ev("checkpoint_save", 2.5, partition_id=0, operation_idx=0, operation_name="m"),
        ],
    )
    analyzer = snapshot.ProcessingSnapshotAnalyzer(job_dir)
    partitions, operations = analyzer.analyze_events(analyzer.load_events())
    assert operations["p0_op0_m"].status == ProcessingStatus.COMPLETED
    assert analyzer.calculate_statistics(partitions, operations)["checkpointed_operations"] == 1


def test_the_document_has_upstream_keys_from_the_fold(failed_job):
    doc = snapshot_doc(failed_job)
    assert doc["job_start_time"] == doc["timing"]["start_time"]
    assert doc["job_end_time"] == doc["timing"]["end_time"]
    assert doc["total_duration"] == doc["timing"]["duration_seconds"]
    dag = doc["dag_structure"]
    assert list(dag) == [
        "total_nodes",
        "total_edges",
        "parallel_groups",
        "execution_plan",
        "metadata",
    ]
    assert dag["total_nodes"] == 3 * len(OPS)


def test_dag_structure_from_the_build_event_when_there_is_no_plan(job_dir):
    meta = {"dag_node_count": 7, "dag_edge_count": 6, "parallel_groups_count": 2}
    write_log(job_dir, [ev("job_start", 1.0), ev("dag_build_complete", 1.5, metadata=meta)])
    assert snapshot_doc(job_dir)["dag_structure"] == {
        "total_nodes": 7,
        "total_edges": 6,
        "parallel_groups": 2,
        "execution_plan": [],
        "metadata": {},
    }


def test_no_dag_no_dag_structure(job_dir):
    write_log(job_dir, [ev("job_start", 1.0)])
    assert snapshot_doc(job_dir)["dag_structure"] == {}


def test_module_main_prints_the_document_and_exits_like_upstream(failed_job, tmp_path):
    command = [sys.executable, "-m", "dj_observe.job.snapshot"]
    done = subprocess.run([*command, str(failed_job)], capture_output=True, timeout=60)
    assert done.returncode == 0
    assert b'"dag_structure"' in done.stdout
    assert b"Warning" not in done.stderr  # the package does not import the module it runs
    missing = subprocess.run([*command, str(tmp_path / "nope")], capture_output=True, timeout=60)
    assert missing.returncode == 1 and b"does not exist" in missing.stdout


# -- common -----------------------------------------------------------------------------


def test_job_utils_finds_the_job_as_upstream_does(failed_job):
    by_base = common.JobUtils(failed_job.name, base_dir=str(failed_job.parent))
    by_work_dir = common.JobUtils("anything", work_dir=str(failed_job))
    assert by_base.work_dir == by_work_dir.work_dir == failed_job
    with pytest.raises(FileNotFoundError):
        common.JobUtils("nope", base_dir=str(failed_job.parent))


def test_job_utils_return_shapes_are_upstream_shapes(failed_job):
    from data_juicer.utils.job.common import JobUtils as Upstream

    ours = common.JobUtils(failed_job.name, work_dir=failed_job)
    theirs = Upstream(failed_job.name, work_dir=str(failed_job))
    assert set(ours.calculate_overall_progress()) == set(theirs.calculate_overall_progress())
    assert set(ours.extract_process_thread_ids()) == {"process_ids", "thread_ids"}
    assert ours.load_job_summary() == theirs.load_job_summary()
    assert ours.load_dataset_mapping() == theirs.load_dataset_mapping()
    assert len(ours.load_event_logs()) == len(theirs.load_event_logs())
    entries = ours.get_partition_status()
    assert sorted(entries) == [0, 1, 2]
    for entry in entries.values():
        assert set(entry) == {
            "status",
            "sample_count",
            "start_time",
            "end_time",
            "error_message",
            "current_op",
            "completed_ops",
            "checkpoints",
        }
    assert entries[1]["status"] == "failed" and entries[0]["status"] == "completed"
    assert [op["name"] for op in entries[0]["completed_ops"]] == OPS


def test_overall_progress_counts_from_the_fold(failed_job):
    progress = common.JobUtils("x", work_dir=failed_job).calculate_overall_progress()
    assert progress["total_partitions"] == 3
    assert progress["completed_partitions"] == 2 and progress["failed_partitions"] == 1
    assert progress["job_status"] == "failed"
    assert progress["estimated_remaining_seconds"] is None


def test_operation_pipeline_comes_from_the_backed_up_config(failed_job):
    (failed_job / "pipeline.yaml").write_text(
        "process:\n  - clean_links_mapper: {}\n  - text_length_filter: {min_len: 5}\n"
    )
    pipeline = common.JobUtils("x", work_dir=failed_job).get_operation_pipeline()
    assert pipeline[-1] == {"name": "text_length_filter", "config": {"min_len": 5}}


def test_operation_pipeline_falls_back_to_the_fold(job_dir):
    write_log(
        job_dir,
        [ev("op_start", 1.0, partition_id=0, operation_idx=0, operation_name="m")],
    )
    assert common.JobUtils("x", work_dir=job_dir).get_operation_pipeline() == [
        {"name": "m", "config": {}}
    ]


def test_list_running_jobs_lists_every_job_in_upstream_shape(failed_job):
    jobs = common.list_running_jobs(str(failed_job.parent))
    assert [set(job) for job in jobs] == [
        {"job_id", "status", "start_time", "processes", "work_dir"}
    ]
    assert jobs[0]["status"] == "failed" and jobs[0]["processes"] == 0
    assert common.list_running_jobs(str(failed_job / "missing")) == []


# -- a script written for Data-Juicer -----------------------------------------------------

UPSTREAM_SCRIPT = """
import json, sys
from data_juicer.utils.job import JobUtils, ProcessingSnapshotAnalyzer, create_snapshot
from data_juicer.utils.job.snapshot import JobSnapshot, ProcessingStatus

work_dir = sys.argv[1]
analyzer = ProcessingSnapshotAnalyzer(work_dir=work_dir)
events = analyzer.load_events()
partitions, operations = analyzer.analyze_events(events)
stats = analyzer.calculate_statistics(partitions, operations)
status = analyzer.determine_overall_status(partitions, operations)
snap = analyzer.generate_snapshot()
doc = analyzer.to_json_dict(snap)
utils = JobUtils("job", work_dir=work_dir)
progress = utils.calculate_overall_progress()
print(json.dumps({
    "events": len(events),
    "stats": stats,
    "status": status.value,
    "keys": sorted(doc),
    "partitions": sorted(str(p) for p in snap.partition_statuses),
    "progress": progress["completed_partitions"],
    "default": JobSnapshot(job_id="x").overall_status == ProcessingStatus.NOT_STARTED,
    "created": create_snapshot(work_dir).job_id == snap.job_id,
}))
"""


def _run_script(source: str, work_dir) -> dict:
    import json

    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source), str(work_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_upstream_script_runs_after_the_import_switch(make_job):
    """Both answer the same but for one deliberate fix: upstream counts the checkpointed
    ops as not completed."""
    work_dir = make_job(partitions=3, ops=OPS, seed=5)
    theirs = _run_script(UPSTREAM_SCRIPT, work_dir)
    ours = _run_script(UPSTREAM_SCRIPT.replace("data_juicer.utils.job", "dj_observe.job"), work_dir)
    assert theirs["stats"]["completed_operations"] == 0
    assert ours["stats"]["completed_operations"] == 9
    theirs["stats"]["completed_operations"] = 9
    assert ours == theirs


# -- monitor ------------------------------------------------------------------------------


def test_monitor_reports_what_the_snapshot_reports(failed_job):
    from dj_observe.job.monitor import JobProgressMonitor

    data = JobProgressMonitor(failed_job.name, base_dir=str(failed_job.parent)).get_progress_data()
    snap = snapshot.create_snapshot(failed_job)
    overall = data["overall_progress"]
    assert (overall["completed_partitions"], overall["failed_partitions"]) == (
        snap.completed_partitions,
        snap.failed_partitions,
    )
    assert overall["job_status"] == snap.overall_status.value
    assert data["job_summary"] == snap.summary


def test_show_job_progress_prints_and_returns_the_data(failed_job, capsys):
    from dj_observe.job.monitor import show_job_progress

    data = show_job_progress(failed_job.name, base_dir=str(failed_job.parent), detailed=True)
    printed = capsys.readouterr().out
    assert "(2/3 partitions)" in printed and "OPERATION DETAILS" in printed
    assert set(data) == {
        "job_id",
        "job_summary",
        "dataset_mapping",
        "partition_status",
        "overall_progress",
    }


def test_monitor_never_lets_a_log_drive_the_terminal(job_dir, capsys):
    from dj_observe.job.monitor import show_job_progress

    write_log(
        job_dir,
        [
            ev("partition_start", 1.0, partition_id=0),
            ev("partition_failed", 2.0, partition_id=0, error_message="\x1b]0;gone\x07\rover"),
        ],
    )
    show_job_progress(job_dir.name, base_dir=str(job_dir.parent))
    printed = capsys.readouterr().out
    assert not {"\x1b", "\x07", "\r"} & set(printed)
    assert "\\x1b]0;gone\\x07\\x0dover" in printed


def test_monitor_main_exit_codes(failed_job, capsys):
    from dj_observe.job.monitor import main as monitor_main

    assert monitor_main([failed_job.name, "--base-dir", str(failed_job.parent)]) == 0
    assert monitor_main(["missing", "--base-dir", str(failed_job.parent)]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("Error: Job directory not found")
