"""The processing snapshot (dj_observe.snapshot): the spec's JSON and its Python API."""

from __future__ import annotations

import io
import json

import pytest
from support import append_log, ev, snapshot_doc, stable, write_log

from dj_observe import ProcessingSnapshotAnalyzer, ProcessingStatus, create_snapshot
from dj_observe.snapshot import (
    JobSnapshot,
    OperationStatus,
    PartitionStatus,
    format_duration,
    write_json,
)
from dj_observe.synthetic import DEFAULT_OPS

# The example document of the spec (docs/JobManagement.md, "JSON Output Structure"), with its
# elided lists ("[...]", "...") left empty.  Key lists below are compared against it.
WORK = "./outputs/partition-checkpoint-eventlog/20250809_040053_a001de"

SPEC_EXAMPLE = {
    "job_info": {
        "job_id": "20250809_040053_a001de",
        "executor_type": "ray_partitioned",
        "status": "completed",
        "config_file": ["configs/demo/partition-checkpoint-eventlog.yaml"],
        "work_dir": WORK,
        "resumption_command": "dj-process --config [Path_fr(...)] --job_id 20250809_040053_a001de",
        "error_message": None,
    },
    "overall_status": "completed",
    "overall_progress": {
        "overall_percentage": 100.0,
        "partition_percentage": 100.0,
        "operation_percentage": 100.0,
    },
    "timing": {
        "start_time": 1754712053.496651,
        "end_time": 1754712325.323669,
        "duration_seconds": 271.82701802253723,
        "duration_formatted": "4m 31s",
        "job_summary_duration": 271.82701802253723,
        "timing_source": "job_summary",
    },
    "progress_summary": {
        "total_partitions": 18,
        "completed_partitions": 18,
        "failed_partitions": 0,
        "in_progress_partitions": 0,
        "partition_progress_percentage": 100.0,
        "total_operations": 144,
        "completed_operations": 144,
        "failed_operations": 0,
        "checkpointed_operations": 0,
        "operation_progress_percentage": 100.0,
    },
    "checkpointing": {
        "strategy": "every_op",
        "last_checkpoint_time": 1754712320.123456,
        "checkpointed_operations_count": 72,
        "resumable": True,
        "checkpoint_progress": {
            "percentage": 50.0,
            "checkpointed_operations": [],
            "checkpoint_coverage": 0.5,
        },
        "checkpoint_dir": f"{WORK}/checkpoints",
    },
    "partition_progress": {
        "0": {
            "status": "completed",
            "sample_count": 20000,
            "creation_start_time": 1754712074.356004,
            "creation_end_time": 1754712074.366004,
            "processing_start_time": 1754712074.366004,
            "processing_end_time": 1754712074.456004,
            "current_operation": None,
            "completed_operations": ["clean_links_mapper", "clean_email_mapper"],
            "failed_operations": [],
            "checkpointed_operations": [],
            "error_message": None,
            "progress_percentage": 100.0,
        }
    },
    "operation_progress": {
        "p0_op0_clean_links_mapper": {
            "operation_name": "clean_links_mapper",
            "operation_idx": 0,
            "status": "completed",
            "start_time": 1754712074.356004,
            "end_time": 1754712074.366004,
            "duration": 0.01,
            "input_rows": 20000,
            "output_rows": 19363,
            "checkpoint_time": None,
            "error_message": None,
            "progress_percentage": 100.0,
        }
    },
    "file_paths": {
        "event_log_file": f"{WORK}/events.jsonl",
        "event_log_dir": f"{WORK}/logs",
        "checkpoint_dir": f"{WORK}/checkpoints",
        "metadata_dir": f"{WORK}/metadata",
        "backed_up_config_path": f"{WORK}/partition-checkpoint-eventlog.yaml",
    },
    "metadata": {
        "snapshot_generated_at": "2025-08-09T13:33:54.770298",
        "events_analyzed": 367,
        "dag_plan_loaded": True,
        "job_summary_loaded": True,
        "job_summary_used": True,
    },
}

SECTIONS = [
    "job_info",
    "overall_progress",
    "timing",
    "progress_summary",
    "checkpointing",
    "file_paths",
]

OPS4 = DEFAULT_OPS[:4]


@pytest.fixture
def failed_job(make_job):
    """Four partitions of four ops; partition 2 fails at op 2 (spec style, with side files)."""
    return make_job(partitions=4, ops=OPS4, failed_partitions={2: 2}, seed=7)


# -- the document's shape ----------------------------------------------------------------


UPSTREAM_TOP_LEVEL = [
    *list(SPEC_EXAMPLE)[:3],
    "job_start_time",
    "job_end_time",
    "total_duration",
    *list(SPEC_EXAMPLE)[3:8],
    "dag_structure",
    *list(SPEC_EXAMPLE)[8:],
]
"""Data-Juicer's top-level keys: the spec's, and four its example leaves out."""


def test_top_level_keys_are_the_spec_keys_in_order(failed_job):
    assert list(snapshot_doc(failed_job)) == UPSTREAM_TOP_LEVEL


@pytest.mark.parametrize("section", SECTIONS)
def test_section_keys_are_the_spec_keys_in_order(failed_job, section):
    assert list(snapshot_doc(failed_job)[section]) == list(SPEC_EXAMPLE[section])


def test_checkpoint_progress_keys_are_the_spec_keys(failed_job):
    progress = snapshot_doc(failed_job)["checkpointing"]["checkpoint_progress"]
    assert list(progress) == list(SPEC_EXAMPLE["checkpointing"]["checkpoint_progress"])


def test_every_partition_entry_has_the_spec_fields_in_order(failed_job):
    expected = list(SPEC_EXAMPLE["partition_progress"]["0"])
    partitions = snapshot_doc(failed_job)["partition_progress"]
    assert list(partitions) == ["0", "1", "2", "3"]
    for entry in partitions.values():
        assert list(entry) == expected


def test_every_operation_entry_has_the_spec_fields_in_order(failed_job):
    expected = list(SPEC_EXAMPLE["operation_progress"]["p0_op0_clean_links_mapper"])
    operations = snapshot_doc(failed_job)["operation_progress"]
    assert len(operations) == 3 * 4 + 3
    for entry in operations.values():
        assert list(entry) == expected


def test_metadata_starts_with_the_spec_fields(failed_job):
    metadata = list(snapshot_doc(failed_job)["metadata"])
    assert metadata[: len(SPEC_EXAMPLE["metadata"])] == list(SPEC_EXAMPLE["metadata"])


def test_metadata_reports_what_the_reader_saw(failed_job):
    metadata = snapshot_doc(failed_job)["metadata"]
    for key in (
        "skipped_lines",
        "malformed_lines",
        "oversized_lines",
        "torn_tail_lines",
        "unknown_event_types",
        "side_file_errors",
        "event_log_files",
        "resumed_runs",
        "last_event_time",
        "seconds_since_last_event",
    ):
        assert key in metadata


@pytest.mark.parametrize("indent", [2, 0])
def test_to_json_dict_equals_the_written_json(failed_job, indent):
    analyzer = ProcessingSnapshotAnalyzer(failed_job)
    snapshot = analyzer.generate_snapshot()
    buffer = io.BytesIO()
    write_json(snapshot, buffer, indent=indent)
    written = json.loads(buffer.getvalue())
    assert written == analyzer.to_json_dict(snapshot)


def test_written_json_is_indented_by_two(failed_job):
    buffer = io.BytesIO()
    write_json(create_snapshot(failed_job), buffer, indent=2)
    lines = buffer.getvalue().decode().splitlines()
    assert lines[0] == "{"
    assert lines[1] == '  "job_info": {'
    assert lines[2].startswith('    "job_id": ')
    assert lines[-1] == "}"


def test_compact_json_is_one_line(failed_job):
    buffer = io.BytesIO()
    write_json(create_snapshot(failed_job), buffer, indent=0)
    assert b"\n" not in buffer.getvalue().strip()
    assert buffer.getvalue().startswith(b'{"job_info":{')


def test_json_with_no_partitions_and_no_ops_is_valid(job_dir):
    write_log(job_dir, [ev("job_start", 1.0)])
    for indent in (0, 2):
        buffer = io.BytesIO()
        write_json(create_snapshot(job_dir), buffer, indent=indent)
        document = json.loads(buffer.getvalue())
        assert document["partition_progress"] == {}
        assert document["operation_progress"] == {}
        assert document["checkpointing"]["checkpoint_progress"]["checkpointed_operations"] == []


# -- values for a known job --------------------------------------------------------------


def test_progress_summary_of_known_job(failed_job):
    assert snapshot_doc(failed_job)["progress_summary"] == {
        "total_partitions": 4,
        "completed_partitions": 3,
        "failed_partitions": 1,
        "in_progress_partitions": 0,
        "partition_progress_percentage": 75.0,
        "total_operations": 16,
        "completed_operations": 14,
        "failed_operations": 1,
        "checkpointed_operations": 14,
        "operation_progress_percentage": 87.5,
    }


def test_overall_progress_of_known_job(failed_job):
    assert snapshot_doc(failed_job)["overall_progress"] == {
        "overall_percentage": 81.25,
        "partition_percentage": 75.0,
        "operation_percentage": 87.5,
    }


def test_status_of_known_failed_job(failed_job):
    doc = snapshot_doc(failed_job)
    assert doc["overall_status"] == "failed"
    assert doc["job_info"]["status"] == "failed"
    assert doc["job_info"]["job_id"] == "20250809_040053_a001de"
    assert doc["job_info"]["executor_type"] == "ray_partitioned"
    assert doc["job_info"]["error_message"] == "1 partition(s) failed"


def test_operation_keys_are_partition_index_and_name(failed_job):
    keys = set(snapshot_doc(failed_job)["operation_progress"])
    expected = {f"p{p}_op{i}_{name}" for p in (0, 1, 3) for i, name in enumerate(OPS4)}
    expected |= {"p2_op0_clean_links_mapper", "p2_op1_clean_email_mapper"}
    expected |= {"p2_op2_whitespace_normalization_mapper"}
    assert keys == expected


def test_failed_partition_entry(failed_job):
    entry = snapshot_doc(failed_job)["partition_progress"]["2"]
    assert entry["status"] == "failed"
    assert entry["completed_operations"] == list(OPS4[:2])
    assert entry["failed_operations"] == [OPS4[2]]
    assert entry["checkpointed_operations"] == list(OPS4[:2])
    assert entry["error_message"].startswith("RayTaskError(ValueError): ")
    assert entry["progress_percentage"] == 50.0
    assert entry["current_operation"] is None


def test_completed_partition_entry(failed_job):
    entry = snapshot_doc(failed_job)["partition_progress"]["0"]
    assert entry["status"] == "completed"
    assert entry["completed_operations"] == list(OPS4)
    assert entry["failed_operations"] == []
    assert entry["error_message"] is None
    assert entry["progress_percentage"] == 100.0
    assert 4500 <= entry["sample_count"] <= 5000
    assert entry["creation_start_time"] < entry["creation_end_time"]
    assert entry["processing_start_time"] < entry["processing_end_time"]


def test_failed_operation_entry(failed_job):
    entry = snapshot_doc(failed_job)["operation_progress"]["p2_op2_whitespace_normalization_mapper"]
    assert entry["status"] == "failed"
    assert entry["operation_idx"] == 2
    assert entry["error_message"].startswith("RayTaskError(ValueError): ")
    assert entry["progress_percentage"] == 0.0
    assert entry["checkpoint_time"] is None


def test_completed_operation_entry_matches_its_events(failed_job):
    lines = [json.loads(line) for line in (failed_job / "events.jsonl").read_text().splitlines()]

    def find(kind):
        return next(
            line
            for line in lines
            if line["event_type"] == kind
            and line.get("partition_id") == 1
            and line.get("operation_name") == "clean_email_mapper"
        )

    start, complete, saved = find("op_start"), find("op_complete"), find("checkpoint_save")
    entry = snapshot_doc(failed_job)["operation_progress"]["p1_op1_clean_email_mapper"]
    assert entry == {
        "operation_name": "clean_email_mapper",
        "operation_idx": 1,
        "status": "completed",
        "start_time": start["timestamp"],
        "end_time": complete["timestamp"],
        "duration": complete["duration"],
        "input_rows": complete["input_rows"],
        "output_rows": complete["output_rows"],
        "checkpoint_time": saved["timestamp"],
        "error_message": None,
        "progress_percentage": 100.0,
    }


def test_checkpointing_section_of_known_job(failed_job):
    checkpointing = snapshot_doc(failed_job)["checkpointing"]
    assert checkpointing["strategy"] == "every_op"
    assert checkpointing["resumable"] is True
    assert checkpointing["checkpointed_operations_count"] == 14
    assert checkpointing["checkpoint_progress"]["percentage"] == 87.5
    assert checkpointing["checkpoint_progress"]["checkpoint_coverage"] == 0.875
    listed = checkpointing["checkpoint_progress"]["checkpointed_operations"]
    assert len(listed) == 14
    assert {"p0_op0_clean_links_mapper", "p2_op1_clean_email_mapper"} <= {
        item["operation_key"] for item in listed
    }
    assert checkpointing["checkpoint_dir"] == str(failed_job / "checkpoints")


def test_job_without_checkpoints_is_not_resumable(make_job):
    doc = snapshot_doc(make_job(partitions=2, checkpoint="disabled"))
    assert doc["checkpointing"]["resumable"] is False
    assert doc["checkpointing"]["checkpointed_operations_count"] == 0
    assert doc["progress_summary"]["completed_operations"] == 16


def test_file_paths_come_from_the_job_summary(failed_job):
    paths = snapshot_doc(failed_job)["file_paths"]
    assert paths["event_log_file"] == str(failed_job / "events.jsonl")
    assert paths["event_log_dir"] == str(failed_job / "logs")
    assert paths["checkpoint_dir"] == str(failed_job / "checkpoints")
    assert paths["metadata_dir"] == str(failed_job / "metadata")


def test_metadata_of_known_job(failed_job):
    metadata = snapshot_doc(failed_job)["metadata"]
    lines = (failed_job / "events.jsonl").read_text().splitlines()
    assert metadata["events_analyzed"] == len(lines)
    assert metadata["dag_plan_loaded"] is True
    assert metadata["job_summary_loaded"] is True
    assert metadata["job_summary_used"] is True
    assert metadata["event_log_files"] == [str(failed_job / "events.jsonl")]
    assert metadata["skipped_lines"] == 0
    assert metadata["side_file_errors"] == []
    assert metadata["unknown_event_types"] == {}
    assert metadata["last_event_time"] == json.loads(lines[-1])["timestamp"]


def test_metadata_counts_skipped_lines_and_unknown_types(job_dir):
    write_log(
        job_dir,
        [
            ev("job_start", 1.0),
            b"not json",
            ev("gpu_sample", 2.0),
            ev("gpu_sample", 3.0),
            b"\x00\xff",
            ev("job_complete", 4.0),
        ],
    )
    with (job_dir / "events.jsonl").open("ab") as handle:
        handle.write(b'{"event_type": "op_st')
    metadata = snapshot_doc(job_dir)["metadata"]
    assert metadata["events_analyzed"] == 4
    assert metadata["malformed_lines"] == 2
    assert metadata["torn_tail_lines"] == 1
    assert metadata["skipped_lines"] == 3
    assert metadata["unknown_event_types"] == {"gpu_sample": 2}


def test_stale_job_reports_when_its_last_event_was(job_dir):
    write_log(job_dir, [ev("job_start", 1000.0), ev("partition_start", 1010.0, partition_id=0)])
    snapshot = create_snapshot(job_dir)
    doc = ProcessingSnapshotAnalyzer(job_dir).to_json_dict(snapshot)
    assert doc["overall_status"] == "in_progress"
    assert doc["metadata"]["last_event_time"] == 1010.0
    assert doc["metadata"]["seconds_since_last_event"] == pytest.approx(
        snapshot.generated_at - 1010.0, abs=0.01
    )


# -- timing ------------------------------------------------------------------------------


def test_timing_from_job_summary(failed_job):
    summary = json.loads((failed_job / "job_summary.json").read_text())
    timing = snapshot_doc(failed_job)["timing"]
    assert timing["timing_source"] == "job_summary"
    assert timing["start_time"] == 1754712053.496651
    assert timing["end_time"] == summary["end_time"]
    assert timing["duration_seconds"] == summary["duration"]
    assert timing["job_summary_duration"] == summary["duration"]


def test_timing_from_events_without_job_summary(make_job):
    job = make_job(partitions=2, summary=False)
    lines = [json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()]
    timing = snapshot_doc(job)["timing"]
    assert timing["timing_source"] == "events"
    assert timing["start_time"] == lines[0]["timestamp"]
    assert timing["end_time"] == lines[-1]["timestamp"]
    # the span from Started to Ended, as the views show them (the executor's own figure,
    # measured from a start of its own, may differ a little)
    assert timing["duration_seconds"] == lines[-1]["timestamp"] - lines[0]["timestamp"]
    assert timing["job_summary_duration"] is None


def test_duration_formatted_from_events(job_dir):
    write_log(
        job_dir,
        [
            ev("job_start", 1754712053.496651),
            ev("job_complete", 1754712325.323669, duration=271.827),
        ],
    )
    timing = snapshot_doc(job_dir)["timing"]
    assert timing["duration_seconds"] == 1754712325.323669 - 1754712053.496651
    assert timing["duration_formatted"] == "4m 31s"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (271.827, "4m 31s"),
        (271.82701802253723, "4m 31s"),
        (0.4, "0s"),
        (59.99, "59s"),
        (60, "1m 0s"),
        (3725, "1h 2m 5s"),
        (None, None),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# -- side files that are not usable ----------------------------------------------------------


def test_invalid_job_summary_is_reported_and_ignored(failed_job):
    (failed_job / "job_summary.json").write_text('{"job_id": "x", "start_time": ')
    doc = snapshot_doc(failed_job)
    errors = doc["metadata"]["side_file_errors"]
    assert len(errors) == 1
    assert errors[0].startswith("job_summary.json")
    assert doc["metadata"]["job_summary_loaded"] is False
    assert doc["timing"]["timing_source"] == "events"
    assert doc["overall_status"] == "failed"
    assert doc["progress_summary"]["completed_operations"] == 14


def test_job_summary_that_is_not_an_object_is_reported(failed_job):
    (failed_job / "job_summary.json").write_text("[1, 2, 3]")
    doc = snapshot_doc(failed_job)
    assert [error.split(":")[0] for error in doc["metadata"]["side_file_errors"]] == [
        "job_summary.json"
    ]
    assert doc["timing"]["timing_source"] == "events"


def test_invalid_dag_plan_is_reported_and_ignored(failed_job):
    (failed_job / "dag_execution_plan.json").write_bytes(b"\x00\xffnot json")
    doc = snapshot_doc(failed_job)
    errors = doc["metadata"]["side_file_errors"]
    assert len(errors) == 1
    assert errors[0].startswith("dag_execution_plan.json")
    assert doc["metadata"]["dag_plan_loaded"] is False
    assert doc["progress_summary"]["total_operations"] == 16


def test_dag_plan_gives_op_positions_to_a_log_without_them(job_dir):
    plan = {
        "nodes": {
            f"op_{i + 1:03d}_{name}_partition_0": {
                "operation_name": name,
                "node_type": "partition_operation",
                "execution_order": i + 1,
            }
            for i, name in enumerate(["x_mapper", "y_filter", "z_dedup"])
        }
    }
    (job_dir / "dag_execution_plan.json").write_text(json.dumps(plan))
    write_log(
        job_dir,
        [
            ev("job_start", 1.0),
            ev("op_complete", 2.0, partition_id=0, operation_name="z_dedup", operation_idx=0),
        ],
    )
    doc = snapshot_doc(job_dir)
    assert list(doc["operation_progress"]) == ["p0_op2_z_dedup"]
    assert doc["progress_summary"]["total_operations"] == 3
    assert doc["partition_progress"]["0"]["progress_percentage"] == 33.33


# -- the Python API --------------------------------------------------------------------------


def test_create_snapshot_attributes_of_the_spec_examples(failed_job):
    snapshot = create_snapshot(failed_job)
    assert isinstance(snapshot, JobSnapshot)
    metrics = {
        "job_id": snapshot.job_id,
        "status": snapshot.overall_status.value,
        "partitions": f"{snapshot.completed_partitions}/{snapshot.total_partitions}",
        "operations": f"{snapshot.completed_operations}/{snapshot.total_operations}",
        "start_time": snapshot.job_start_time,
        "resumable": snapshot.resumable,
        "strategy": snapshot.checkpoint_strategy,
    }
    assert metrics == {
        "job_id": "20250809_040053_a001de",
        "status": "failed",
        "partitions": "3/4",
        "operations": "14/16",
        "start_time": 1754712053.496651,
        "resumable": True,
        "strategy": "every_op",
    }
    summary = json.loads((failed_job / "job_summary.json").read_text())
    assert snapshot.total_duration == summary["duration"]


def test_overall_status_is_the_status_enum(failed_job):
    status = create_snapshot(failed_job).overall_status
    assert status is ProcessingStatus.FAILED
    assert {member.value for member in ProcessingStatus} == {
        "not_started",
        "in_progress",
        "completed",
        "failed",
        "checkpointed",
    }


def test_partition_statuses_property(failed_job):
    statuses = create_snapshot(failed_job).partition_statuses
    assert sorted(statuses) == [0, 1, 2, 3]
    assert all(isinstance(value, PartitionStatus) for value in statuses.values())
    assert statuses[2].status is ProcessingStatus.FAILED
    assert statuses[2].failed_operations == [OPS4[2]]
    assert statuses[0].status is ProcessingStatus.COMPLETED


def test_operation_statuses_property(failed_job):
    snapshot = create_snapshot(failed_job)
    statuses = snapshot.operation_statuses
    assert set(statuses) == set(snapshot_doc(failed_job)["operation_progress"])
    assert all(isinstance(value, OperationStatus) for value in statuses.values())
    failed = statuses["p2_op2_whitespace_normalization_mapper"]
    assert failed.status is ProcessingStatus.FAILED
    assert failed.progress_percentage == 0.0
    assert statuses["p0_op3_punctuation_normalization_mapper"].progress_percentage == 100.0


def test_analyzer_snapshot_again_reflects_appended_events(job_dir):
    write_log(
        job_dir,
        [
            ev("job_start", 1.0, metadata={"num_partitions": 1, "operations": ["a", "b"]}),
            ev("partition_start", 2.0, partition_id=0),
            ev("op_complete", 3.0, partition_id=0, operation_name="a", operation_idx=0),
        ],
    )
    analyzer = ProcessingSnapshotAnalyzer(job_dir)
    first = analyzer.to_json_dict(analyzer.generate_snapshot())
    assert first["overall_status"] == "in_progress"
    assert first["progress_summary"]["completed_operations"] == 1
    append_log(
        job_dir,
        [
            ev("op_complete", 4.0, partition_id=0, operation_name="b", operation_idx=1),
            ev("partition_complete", 5.0, partition_id=0),
            ev("job_complete", 6.0, duration=5.0),
        ],
    )
    second = analyzer.to_json_dict(analyzer.generate_snapshot())
    assert second["overall_status"] == "completed"
    assert second["progress_summary"]["completed_operations"] == 2
    assert second["progress_summary"]["completed_partitions"] == 1
    assert second["metadata"]["events_analyzed"] == 6
    assert second["timing"]["duration_seconds"] == 5.0


def test_analyzer_snapshot_again_equals_a_fresh_snapshot(make_job, job_dir):
    source = make_job(partitions=3, failed_partitions={0: 1}, seed=2)
    lines = (source / "events.jsonl").read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    (job_dir / "events.jsonl").write_bytes(b"".join(lines[:half]))
    analyzer = ProcessingSnapshotAnalyzer(job_dir)
    analyzer.generate_snapshot()
    append_log(job_dir, [line.rstrip(b"\n") for line in lines[half:]])
    again = analyzer.to_json_dict(analyzer.generate_snapshot())
    assert stable(again) == stable(snapshot_doc(job_dir))


def test_empty_log_snapshot_is_not_started(job_dir):
    (job_dir / "events.jsonl").write_bytes(b"")
    doc = snapshot_doc(job_dir)
    assert doc["overall_status"] == "not_started"
    assert doc["progress_summary"]["total_partitions"] == 0
    assert doc["overall_progress"]["overall_percentage"] == 0.0
    assert doc["timing"]["start_time"] is None
    assert doc["timing"]["duration_formatted"] is None


def test_restarted_job_does_not_report_the_previous_runs_error(job_dir):
    """Latest attempt: once the failed job is restarted and running, it has no job error."""
    write_log(
        job_dir,
        [
            ev("job_start", 1.0, metadata={"num_partitions": 1, "operations": ["a"]}),
            ev("partition_start", 2.0, partition_id=0),
            ev("partition_failed", 3.0, partition_id=0, error_message="ValueError: bad"),
            ev("job_failed", 4.0, error_message="1 partition(s) failed"),
            ev("job_restart", 10.0),
            ev("partition_resume", 11.0, partition_id=0),
        ],
    )
    doc = snapshot_doc(job_dir)
    assert doc["overall_status"] == "in_progress"
    assert doc["job_info"]["error_message"] is None
    assert doc["timing"]["end_time"] is None
    assert doc["partition_progress"]["0"]["error_message"] is None
