"""The fold (dj_observe.state): what each event means for the job, its partitions and ops."""

from __future__ import annotations

import json

import pytest
from support import ev, fold, snapshot_doc, state_view

from dj_observe.snapshot import partition_status
from dj_observe.state import JobState, Status
from dj_observe.synthetic import JobSpec, events_for

OPS = ("a_mapper", "b_filter", "c_dedup")


def job_start(ts: float = 1.0, ops=OPS, partitions: int = 2, **meta) -> dict:
    return ev(
        "job_start",
        ts,
        job_id="job-1",
        process_id=4242,
        metadata={"num_partitions": partitions, "operations": list(ops), **meta},
    )


def op_pair(pid: int, idx: int, t: float, name: str | None = None, rows=(100, 90)) -> list:
    name = name or OPS[idx]
    return [
        ev("op_start", t, partition_id=pid, operation_name=name, operation_idx=idx),
        ev(
            "op_complete",
            t + 0.5,
            partition_id=pid,
            operation_name=name,
            operation_idx=idx,
            status="success",
            duration=0.5,
            input_rows=rows[0],
            output_rows=rows[1],
        ),
    ]


def checkpoint(pid: int, idx: int, t: float, name: str | None = None) -> dict:
    name = name or OPS[idx]
    return ev("checkpoint_save", t, partition_id=pid, operation_name=name, operation_idx=idx)


def partition_ok(pid: int, t: float, ops=OPS, checkpoints: bool = True) -> list:
    """A partition that runs every op, checkpointing each, and completes."""
    events = [ev("partition_start", t, partition_id=pid)]
    for idx, name in enumerate(ops):
        events += op_pair(pid, idx, t + 1 + idx, name)
        if checkpoints:
            events.append(checkpoint(pid, idx, t + 1.7 + idx, name))
    events.append(ev("partition_complete", t + 1 + len(ops), partition_id=pid))
    return events


def partition_fails(pid: int, t: float, fail_idx: int, error: str = "ValueError: bad") -> list:
    events = [ev("partition_start", t, partition_id=pid)]
    for idx in range(fail_idx):
        events += op_pair(pid, idx, t + 1 + idx)
        events.append(checkpoint(pid, idx, t + 1.7 + idx))
    name = OPS[fail_idx]
    events += [
        ev("op_start", t + 1 + fail_idx, partition_id=pid, operation_name=name),
        ev(
            "op_failed",
            t + 1.2 + fail_idx,
            partition_id=pid,
            operation_name=name,
            operation_idx=fail_idx,
            error_message=error,
        ),
        ev("partition_failed", t + 1.3 + fail_idx, partition_id=pid, error_message=error),
    ]
    return events


def runs(state: JobState, pid: int) -> dict:
    return {run.operation_name: run for run in state.op_runs(state.partitions[pid])}


def entry(state: JobState, pid: int):
    return partition_status(state, state.partitions[pid])


def spec_events(**spec) -> list[dict]:
    """The complete lines a synthetic job writes, as dicts (a torn line is left out)."""
    events = []
    for _, line in events_for(JobSpec(**spec)):
        if line.endswith("\n"):
            events.append(json.loads(line))
    return events


# -- checkpoints never undo completion ------------------------------------------------


def test_checkpoint_save_keeps_a_completed_op_completed():
    state = fold([job_start(), *op_pair(0, 0, 2.0), checkpoint(0, 0, 3.0)])
    run = runs(state, 0)["a_mapper"]
    assert run.status == Status.COMPLETED
    assert run.checkpoint_time == 3.0
    assert state.op_counts()[Status.COMPLETED] == 1
    assert state.checkpointed_op_count() == 1


def test_checkpoint_save_before_op_complete_does_not_block_completion():
    pair = op_pair(0, 0, 2.0)
    state = fold([job_start(), pair[0], checkpoint(0, 0, 2.2), pair[1]])
    assert runs(state, 0)["a_mapper"].status == Status.COMPLETED


def test_an_op_that_was_only_checkpointed_counts_as_completed():
    state = fold([job_start(), ev("partition_start", 1.5, partition_id=0), checkpoint(0, 1, 2.0)])
    assert runs(state, 0)["b_filter"].status == Status.COMPLETED
    assert entry(state, 0).completed_operations == ["b_filter"]
    assert entry(state, 0).checkpointed_operations == ["b_filter"]


def test_completed_partition_lists_checkpointed_ops_as_completed():
    state = fold([job_start(), *partition_ok(0, 2.0)])
    assert entry(state, 0).completed_operations == list(OPS)
    assert entry(state, 0).checkpointed_operations == list(OPS)


@pytest.mark.parametrize("style", ["spec", "data_juicer"])
def test_completed_counts_never_go_down(style):
    state = JobState()
    completed_ops, completed_parts = [], []
    for event in spec_events(style=style, partitions=4, failed_partitions={2: 3}, seed=5):
        fold([event], state)
        completed_ops.append(state.op_counts()[Status.COMPLETED])
        completed_parts.append(state.partition_counts()[Status.COMPLETED])
    assert completed_ops == sorted(completed_ops)
    assert completed_parts == sorted(completed_parts)
    assert completed_ops[-1] == 3 * 8 + 3
    assert completed_parts[-1] == 3


# -- partition progress uses the real op count -------------------------------------------


def test_partition_progress_uses_the_op_list_of_job_start():
    state = fold([job_start(), ev("partition_start", 1.5, partition_id=0), *op_pair(0, 0, 2.0)])
    assert state.ops_per_partition == 3
    assert entry(state, 0).progress_percentage == 33.33


def test_partition_progress_uses_the_plan():
    state = JobState()
    state.set_plan([f"op_{n}" for n in range(12)])
    fold([ev("partition_start", 1.5, partition_id=0), *op_pair(0, 0, 2.0, name="op_0")], state)
    assert state.ops_per_partition == 12
    assert entry(state, 0).progress_percentage == 8.33


def test_partition_progress_without_plan_uses_most_ops_seen_on_a_partition():
    four = ("w", "x", "y", "z")
    events = [ev("job_start", 1.0)]
    for idx, name in enumerate(four):
        events += op_pair(0, idx, 2.0 + idx, name)
    events += op_pair(1, 0, 2.0, "w")
    state = fold(events)
    assert state.ops_per_partition == 4
    assert entry(state, 1).progress_percentage == 25.0


def test_running_op_progress_is_not_guessed_from_wall_time():
    state = fold([job_start(), ev("op_start", 2.0, partition_id=0, operation_name="a_mapper")])
    run = runs(state, 0)["a_mapper"]
    assert run.status == Status.IN_PROGRESS
    assert entry(state, 0).progress_percentage == 0.0
    assert entry(state, 0).current_operation == "a_mapper"


# -- the job's status --------------------------------------------------------------------


def test_job_complete_event_wins_over_partition_states():
    events = [job_start(), *partition_ok(0, 2.0), *partition_fails(1, 2.0, 1)]
    state = fold([*events, ev("job_complete", 20.0, duration=19.0)])
    assert state.job_status() == Status.COMPLETED


def test_job_failed_event_wins_over_completed_partitions():
    events = [job_start(), *partition_ok(0, 2.0), *partition_ok(1, 2.0)]
    state = fold([*events, ev("job_failed", 20.0, error_message="export failed")])
    assert state.job_status() == Status.FAILED
    assert state.error_message == "export failed"


def test_all_partitions_ended_with_one_failed_and_no_terminal_event_is_failed():
    state = fold([job_start(), *partition_ok(0, 2.0), *partition_fails(1, 2.0, 1)])
    assert state.job_status() == Status.FAILED


def test_log_that_stops_mid_run_is_in_progress():
    state = fold([job_start(), *partition_ok(0, 2.0), *op_pair(1, 0, 2.0)])
    assert state.job_status() == Status.IN_PROGRESS


def test_one_failed_partition_while_others_run_is_in_progress():
    events = [job_start(partitions=3), *partition_fails(0, 2.0, 0), *partition_ok(1, 2.0)]
    state = fold([*events, ev("partition_start", 3.0, partition_id=2)])
    assert state.job_status() == Status.IN_PROGRESS


def test_job_with_no_events_is_not_started():
    assert JobState().job_status() == Status.NOT_STARTED


def test_job_start_alone_is_in_progress():
    assert fold([job_start()]).job_status() == Status.IN_PROGRESS


# -- a resumed job is one job ------------------------------------------------------------


def first_run_crashes() -> list:
    """Partition 0 completes; partition 1 fails at b_filter; the log stops."""
    return [job_start(), *partition_ok(0, 2.0), *partition_fails(1, 2.0, 1)]


def second_run(marker: list) -> list:
    """Partition 1 is resumed from its a_mapper checkpoint and completes; the job completes."""
    events = list(marker)
    events += [*op_pair(1, 1, 31.0), checkpoint(1, 1, 31.7)]
    events += [*op_pair(1, 2, 32.0), checkpoint(1, 2, 32.7)]
    events += [ev("partition_complete", 33.0, partition_id=1), ev("job_complete", 34.0)]
    return events


RESUME_MARKERS = {
    "job_restart": [ev("job_restart", 30.0), ev("partition_start", 30.5, partition_id=1)],
    "second_job_start": [
        job_start(30.0, is_resuming=True),
        ev("partition_start", 30.5, partition_id=1),
    ],
    "partition_resume": [
        ev("job_start", 30.0),
        ev("partition_resume", 30.5, partition_id=1),
    ],
    "checkpoint_load": [
        ev("job_start", 30.0),
        ev(
            "checkpoint_load",
            30.2,
            partition_id=1,
            operation_name="op_0000",
            operation_idx=0,
        ),
        ev("partition_start", 30.5, partition_id=1),
    ],
}


@pytest.mark.parametrize("marker", sorted(RESUME_MARKERS))
def test_resumed_job_reflects_the_latest_attempt(marker):
    state = fold(first_run_crashes() + second_run(RESUME_MARKERS[marker]))
    assert state.job_status() == Status.COMPLETED
    assert state.partition_counts()[Status.COMPLETED] == 2
    assert state.partition_counts()[Status.FAILED] == 0
    assert entry(state, 1).status.value == "completed"
    assert entry(state, 1).error_message is None
    assert entry(state, 1).failed_operations == []
    assert runs(state, 1)["b_filter"].status == Status.COMPLETED
    assert runs(state, 1)["b_filter"].error_message is None


@pytest.mark.parametrize("marker", sorted(RESUME_MARKERS))
def test_resumed_job_counts_nothing_twice(marker):
    state = fold(first_run_crashes() + second_run(RESUME_MARKERS[marker]))
    assert len(state.partitions) == 2
    assert state.total_partitions == 2
    assert state.op_counts()[Status.COMPLETED] == 6
    assert sum(state.op_counts().values()) == 6
    assert state.op_counts()[Status.FAILED] == 0
    assert [run.operation_name for run in state.op_runs(state.partitions[1])] == list(OPS)


def test_job_start_with_is_resuming_counts_one_resumed_run():
    state = fold(first_run_crashes() + second_run(RESUME_MARKERS["second_job_start"]))
    assert state.resume_count == 1


def test_job_restart_counts_one_resumed_run():
    state = fold(first_run_crashes() + second_run(RESUME_MARKERS["job_restart"]))
    assert state.resume_count == 1


def test_checkpoint_load_marks_the_partition_resumed_without_inventing_an_op():
    state = fold(first_run_crashes() + second_run(RESUME_MARKERS["checkpoint_load"]))
    assert state.partitions[1].resumed is True
    assert state.partitions[1].loaded_checkpoint_idx == 0
    assert "op_0000" not in state.op_names


def test_partition_failed_then_restarted_is_in_progress_without_error():
    events = [*first_run_crashes(), ev("job_restart", 30.0)]
    state = fold([*events, ev("partition_start", 30.5, partition_id=1)])
    assert entry(state, 1).status.value == "in_progress"
    assert entry(state, 1).error_message is None
    assert state.job_status() == Status.IN_PROGRESS


# -- odd logs ----------------------------------------------------------------------------


def test_events_for_a_partition_never_created_create_it():
    state = fold([job_start(partitions=2), *op_pair(7, 0, 2.0)])
    assert 7 in state.partitions
    assert runs(state, 7)["a_mapper"].status == Status.COMPLETED
    assert state.partition_status(state.partitions[7]) == Status.IN_PROGRESS
    assert entry(state, 7).completed_operations == ["a_mapper"]


def test_partition_known_only_from_its_ops_completes_when_all_ops_completed():
    events = [job_start(partitions=1)]
    for idx in range(3):
        events += op_pair(0, idx, 2.0 + idx)
    state = fold(events)
    assert state.partition_status(state.partitions[0]) == Status.COMPLETED


def test_op_completing_without_a_start_is_completed():
    complete = op_pair(0, 1, 2.0)[1]
    state = fold([job_start(), complete])
    run = runs(state, 0)["b_filter"]
    assert run.status == Status.COMPLETED
    assert run.start_time is None
    assert run.end_time == 2.5
    assert run.duration == 0.5
    assert (run.input_rows, run.output_rows) == (100, 90)


def test_op_failed_without_a_start_is_failed_with_its_error():
    failed = ev("op_failed", 2.0, partition_id=0, operation_name="c_dedup", error_message="oom")
    state = fold([job_start(), failed])
    run = runs(state, 0)["c_dedup"]
    assert run.status == Status.FAILED
    assert run.error_message == "oom"


def test_op_failed_after_completed_ops_on_the_partition_sets_partition_error():
    state = fold([job_start(), *partition_fails(0, 2.0, 2, error="KeyError: text")])
    assert entry(state, 0).failed_operations == ["c_dedup"]
    assert entry(state, 0).error_message == "KeyError: text"


def test_duplicate_events_change_only_counters():
    log = [job_start(), *partition_ok(0, 2.0), *partition_fails(1, 2.0, 2)]
    once = fold(log)
    twice = fold(log + log)
    assert state_view(twice, counters=False) == state_view(once, counters=False)
    assert twice.events_applied == 2 * once.events_applied
    assert twice.event_counts == {kind: 2 * n for kind, n in once.event_counts.items()}


def test_a_duplicated_op_complete_line_changes_only_counters():
    log = [job_start(), *partition_ok(0, 2.0)]
    duplicated = [*log[:4], log[3], *log[4:]]
    assert duplicated[3]["event_type"] == "op_complete"
    assert state_view(fold(duplicated), counters=False) == state_view(fold(log), counters=False)


def test_out_of_order_timestamps_give_min_start_and_max_last_event():
    events = [
        job_start(10.0),
        ev("partition_start", 12.0, partition_id=0),
        ev("op_start", 9.0, partition_id=0, operation_name="a_mapper"),
        ev("op_complete", 15.0, partition_id=0, operation_name="a_mapper", duration=0.3),
        ev("op_start", 16.0, partition_id=0, operation_name="b_filter"),
        ev("op_start", 11.0, partition_id=1, operation_name="a_mapper"),
    ]
    state = fold(events)
    assert state.start_time == 10.0
    assert state.first_event_time == 9.0
    assert state.last_event_time == 16.0
    assert runs(state, 0)["a_mapper"].duration == 0.3
    assert entry(state, 0).current_operation == "b_filter"
    assert entry(state, 1).current_operation == "a_mapper"


def test_op_complete_timestamped_before_its_start_has_no_negative_duration():
    events = [
        job_start(),
        ev("op_start", 5.0, partition_id=0, operation_name="a_mapper"),
        ev("op_complete", 4.0, partition_id=0, operation_name="a_mapper"),
    ]
    run = runs(fold(events), 0)["a_mapper"]
    assert run.status == Status.COMPLETED
    assert run.duration is None or run.duration >= 0


def test_unknown_event_types_are_only_counted():
    known = [job_start(), *partition_ok(0, 2.0)]
    noise = [
        ev("gpu_memory_sample", 3.0, partition_id=0, operation_name="a_mapper"),
        ev("gpu_memory_sample", 4.0, partition_id=5),
        ev("custom_alert", 5.0, status="failed"),
    ]
    state = fold(known + noise)
    assert state.event_counts["gpu_memory_sample"] == 2
    assert state.event_counts["custom_alert"] == 1
    assert state_view(state, counters=False) == state_view(fold(known), counters=False)


def test_event_without_timestamp_is_folded():
    state = fold([job_start(), ev("partition_start", None, partition_id=0)])
    assert state.partition_status(state.partitions[0]) == Status.IN_PROGRESS


# -- rows and sample counts at top level or in metadata -------------------------------------


def complete_with_rows_in(where: str) -> dict:
    rows = {"input_rows": 500, "output_rows": 480}
    fields = {"metadata": rows} if where == "metadata" else rows
    return ev("op_complete", 3.0, partition_id=0, operation_name="a_mapper", **fields)


@pytest.mark.parametrize("with_plan", [True, False])
@pytest.mark.parametrize("where", ["top", "metadata"])
def test_op_complete_rows_are_read_from_top_level_or_metadata(where, with_plan):
    start = job_start() if with_plan else ev("job_start", 1.0)
    run = runs(fold([start, complete_with_rows_in(where)]), 0)["a_mapper"]
    assert (run.input_rows, run.output_rows) == (500, 480)


@pytest.mark.parametrize("with_plan", [True, False])
@pytest.mark.parametrize("where", ["top", "metadata"])
def test_op_start_input_rows_are_read_from_top_level_or_metadata(where, with_plan):
    """A failed op's input rows are known only from its op_start."""
    start = job_start() if with_plan else ev("job_start", 1.0)
    rows = {"metadata": {"input_rows": 500}} if where == "metadata" else {"input_rows": 500}
    events = [
        start,
        ev("op_start", 2.0, partition_id=0, operation_name="a_mapper", **rows),
        ev("op_failed", 3.0, partition_id=0, operation_name="a_mapper", error_message="x"),
    ]
    assert runs(fold(events), 0)["a_mapper"].input_rows == 500


@pytest.mark.parametrize(
    "fields",
    [
        {"metadata": {"sample_count": 20000}},
        {"partition_meta": {"sample_count": 20000}},
        {"sample_count": 20000},
    ],
    ids=["metadata", "partition_meta", "top"],
)
def test_partition_sample_count_is_read_from_top_level_or_metadata(fields):
    state = fold([job_start(), ev("partition_creation_complete", 1.5, partition_id=0, **fields)])
    assert state.partitions[0].sample_count == 20000


# -- Data-Juicer's own logs ----------------------------------------------------------------

DJ_OPS = ("clean_links_mapper", "clean_email_mapper", "text_length_filter", "words_num_filter")


@pytest.fixture(params=[True, False], ids=["with_plan", "without_plan"])
def dj_failed_job(request, make_job):
    """Three partitions, every_op checkpoints, partition 1 raising at op 2, no terminal event."""
    return make_job(
        style="data_juicer",
        partitions=3,
        ops=DJ_OPS,
        failed_partitions={1: 2},
        summary=False,
        dag_plan=request.param,
        seed=11,
    )


def test_data_juicer_op_keys_use_pipeline_positions(dj_failed_job):
    doc = snapshot_doc(dj_failed_job)
    expected = {f"p{p}_op{i}_{name}" for p in (0, 2) for i, name in enumerate(DJ_OPS)}
    expected |= {f"p1_op{i}_{DJ_OPS[i]}" for i in range(3)}
    assert set(doc["operation_progress"]) == expected
    for entry_ in doc["operation_progress"].values():
        assert entry_["operation_idx"] == DJ_OPS.index(entry_["operation_name"])


def test_data_juicer_rows_come_from_op_complete_metadata(dj_failed_job):
    doc = snapshot_doc(dj_failed_job)
    completed = [e for e in doc["operation_progress"].values() if e["status"] == "completed"]
    assert len(completed) == 10
    assert all(e["input_rows"] > 0 and e["output_rows"] > 0 for e in completed)


def test_data_juicer_rows_match_the_log(dj_failed_job):
    doc = snapshot_doc(dj_failed_job)
    lines = [
        json.loads(line)
        for path in sorted(dj_failed_job.glob("events_*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    for line in lines:
        if line["event_type"] == "op_complete":
            name = line["operation_name"]
            key = f"p{line['partition_id']}_op{DJ_OPS.index(name)}_{name}"
            entry_ = doc["operation_progress"][key]
            assert entry_["input_rows"] == line["metadata"]["input_rows"]
            assert entry_["output_rows"] == line["metadata"]["output_rows"]


def test_data_juicer_failure_without_terminal_event_is_failed(dj_failed_job):
    doc = snapshot_doc(dj_failed_job)
    assert doc["overall_status"] == "failed"
    assert doc["partition_progress"]["1"]["status"] == "failed"
    assert doc["partition_progress"]["1"]["error_message"].startswith("RayTaskError(ValueError)")
    assert doc["progress_summary"]["completed_partitions"] == 2
    assert doc["progress_summary"]["failed_partitions"] == 1


def test_data_juicer_partition_count_is_not_the_op_count_of_job_start(make_job):
    """Data-Juicer's second job_start puts the number of ops in ``total_partitions``."""
    job = make_job(style="data_juicer", partitions=3, summary=False, dag_plan=False)
    doc = snapshot_doc(job)
    assert doc["progress_summary"]["total_partitions"] == 3
    assert doc["progress_summary"]["total_operations"] == 3 * 8
    assert doc["progress_summary"]["completed_operations"] == 3 * 8
    assert doc["overall_status"] == "completed"


def test_data_juicer_job_start_twice_is_not_a_resume(make_job):
    job = make_job(style="data_juicer", partitions=2, summary=False)
    assert snapshot_doc(job)["metadata"]["resumed_runs"] == 0


def test_data_juicer_op_running_when_its_partition_failed_is_not_in_progress(dj_failed_job):
    """Data-Juicer writes no op_failed: the op its partition died in has failed."""
    doc = snapshot_doc(dj_failed_job)
    assert doc["operation_progress"]["p1_op2_text_length_filter"]["status"] == "failed"
    assert doc["partition_progress"]["1"]["failed_operations"] == ["text_length_filter"]
    assert doc["progress_summary"]["failed_operations"] == 1


@pytest.fixture(params=[True, False], ids=["with_plan", "without_plan"])
def dj_resumed_job(request, make_job):
    return make_job(
        style="data_juicer",
        partitions=3,
        ops=DJ_OPS,
        crash_after_events=30,
        resume=True,
        summary=False,
        dag_plan=request.param,
        seed=4,
    )


def test_data_juicer_resumed_job_is_one_completed_job(dj_resumed_job):
    doc = snapshot_doc(dj_resumed_job)
    assert doc["overall_status"] == "completed"
    assert doc["metadata"]["resumed_runs"] == 1
    assert len(doc["metadata"]["event_log_files"]) == 2
    assert doc["progress_summary"]["total_partitions"] == 3
    assert doc["progress_summary"]["total_operations"] == 12
    assert doc["progress_summary"]["completed_operations"] == 12


def test_data_juicer_checkpoint_load_op_name_is_not_an_op(dj_resumed_job):
    loads = [
        json.loads(line)
        for path in dj_resumed_job.glob("events_*.jsonl")
        for line in path.read_text().splitlines()
        if '"checkpoint_load"' in line
    ]
    assert loads
    assert all(load["operation_name"].startswith("op_00") for load in loads)
    doc = snapshot_doc(dj_resumed_job)
    assert set(doc["operation_progress"]) == {
        f"p{p}_op{i}_{name}" for p in range(3) for i, name in enumerate(DJ_OPS)
    }


# -- merging states of consecutive pieces ------------------------------------------------

MERGE_LOGS = {
    "spec_failures": {"partitions": 3, "failed_partitions": {1: 4}, "seed": 1},
    "spec_crash": {"partitions": 3, "crash_after_events": 60, "seed": 2},
    "dj_failures": {"style": "data_juicer", "partitions": 3, "failed_partitions": {0: 2}},
    "dj_resume": {
        "style": "data_juicer",
        "partitions": 3,
        "crash_after_events": 50,
        "resume": True,
        "seed": 3,
    },
    "spec_resume": {"partitions": 3, "crash_after_events": 45, "resume": True, "seed": 6},
}


@pytest.mark.parametrize("name", sorted(MERGE_LOGS))
def test_merging_folds_of_two_pieces_equals_folding_the_whole(name):
    events = spec_events(ops=DJ_OPS, **MERGE_LOGS[name])
    whole = state_view(fold(events))
    for cut in range(0, len(events) + 1, 3):
        first = fold(events[:cut])
        first.merge(fold(events[cut:]))
        assert state_view(first) == whole, f"cut at event {cut}"


def test_merging_three_pieces_equals_folding_the_whole():
    events = spec_events(ops=DJ_OPS, partitions=4, failed_partitions={2: 1}, seed=9)
    third = len(events) // 3
    merged = fold(events[:third])
    middle = fold(events[third : 2 * third])
    middle.merge(fold(events[2 * third :]))
    merged.merge(middle)
    assert state_view(merged) == state_view(fold(events))


def test_merging_an_empty_state_changes_nothing():
    events = [job_start(), *partition_ok(0, 2.0), *partition_fails(1, 2.0, 1)]
    state = fold(events)
    state.merge(JobState())
    assert state_view(state) == state_view(fold(events))


# -- what Data-Juicer's partitioned executor cannot tell -------------------------------


def grouped_partition(pid: int, t: float) -> list:
    """Data-Juicer's every_n_ops: a_mapper and b_filter run and are timed as one group
    (indices 0 and 1 within it, the group's time split evenly), then c_dedup alone."""
    events = [ev("partition_start", t, partition_id=pid)]
    for names, first in ((OPS[:2], 0), (OPS[2:], 2)):
        for kind in ("op_start", "op_complete"):
            for index, name in enumerate(names):
                node = f"op_{first + index + 1:03d}_{name}_partition_{pid}"
                events.append(
                    ev(
                        kind,
                        t + first + (0.5 if kind == "op_complete" else 0.0),
                        partition_id=pid,
                        operation_name=name,
                        operation_idx=index,
                        op_args={"dag_node_id": node},
                        duration=0.25 if kind == "op_complete" else None,
                    )
                )
    events.append(ev("partition_complete", t + 3, partition_id=pid))
    return [{k: v for k, v in event.items() if v is not None} for event in events]


def test_ops_timed_only_as_a_checkpoint_group_have_no_duration():
    state = fold([job_start(), *grouped_partition(0, 2.0)])
    runs = {run.operation_name: run for run in state.op_runs(state.partitions[0])}
    assert runs["a_mapper"].duration is None and runs["b_filter"].duration is None
    assert runs["c_dedup"].duration == 0.25  # alone in its group: a real measurement
    assert [run.operation_idx for run in runs.values()] == [0, 1, 2]


def test_pipeline_indexed_ops_keep_their_durations():
    state = fold([job_start(), *partition_ok(0, 2.0)])
    assert [run.duration for run in state.op_runs(state.partitions[0])] == [0.5, 0.5, 0.5]


def test_an_op_a_resume_skipped_is_failed_and_listed():
    """Resumed from a bad checkpoint, the partition completes without ever finishing b_filter."""
    events = [
        job_start(),
        ev("partition_start", 2.0, partition_id=0),
        *op_pair(0, 0, 3.0),
        ev("op_start", 4.0, partition_id=0, operation_name="b_filter", operation_idx=0),
        ev("partition_failed", 5.0, partition_id=0, error_message="RuntimeError: boom"),
        job_start(10.0, is_resuming=True),
        ev("partition_start", 11.0, partition_id=0),
        *op_pair(0, 2, 12.0),
        ev("partition_complete", 13.0, partition_id=0),
    ]
    state = fold(events)
    part = state.partitions[0]
    assert state.partition_status(part) == Status.COMPLETED
    assert state.skipped_operations() == {0: ["b_filter"]}
    skipped = next(run for run in state.op_runs(part) if run.operation_name == "b_filter")
    assert skipped.status == Status.FAILED
    assert skipped.end_time is None and skipped.duration is None
    assert "skipped on resume" in skipped.error_message
    entry = partition_status(state, part)
    assert entry.failed_operations == ["b_filter"]
    assert entry.progress_percentage == pytest.approx(66.67)
    assert state.op_counts()[Status.FAILED] == 1


def test_error_messages_lose_terminal_colours_and_name_the_root_cause():
    traceback = (
        "\x1b[36mray::MapBatches(process_batched)()\x1b[39m (pid=1)\n"
        '  File "op.py", line 3, in process\nRuntimeError: injected\n\n'
        "The above exception was the direct cause of the following exception:\n\n"
        "ray.exceptions.UserCodeException: UDF failed"
    )
    state = fold(
        [job_start(), ev("partition_failed", 2.0, partition_id=0, error_message=traceback)]
    )
    part = state.partitions[0]
    assert "\x1b" not in part.error_message
    assert part.error_message.startswith("ray::MapBatches")
    assert part.error_type == "RuntimeError"


# -- measured op events ----------------------------------------------------------------


def _group_timed_partition(pid: int, t: float) -> list:
    """How Data-Juicer logs a lazy checkpoint group: every op_start first, then every
    op_complete with the group's time split evenly and rows only at the group's ends."""
    events = [ev("partition_start", t, partition_id=pid)]
    for idx, name in enumerate(OPS):
        events.append(
            ev("op_start", t + 0.1, partition_id=pid, operation_name=name, operation_idx=idx)
        )
    for idx, name in enumerate(OPS):
        events.append(
            ev(
                "op_complete",
                t + 3,
                partition_id=pid,
                operation_name=name,
                operation_idx=idx,
                duration=1.0,
                input_rows=100 if idx == 0 else None,
                output_rows=60 if idx == len(OPS) - 1 else None,
            )
        )
    events.append(ev("partition_complete", t + 3.1, partition_id=pid))
    return events


MEASURED_ROWS = [(100, 100), (100, 75), (75, 60)]


def _measured(pid: int, t: float) -> list:
    """The same runs as measured where they ran: overlapping in time (streamed)."""
    events = []
    for idx, (name, (rows_in, rows_out)) in enumerate(zip(OPS, MEASURED_ROWS, strict=True)):
        fields = {"partition_id": pid, "operation_name": name, "operation_idx": idx}
        events.append(ev("op_start", t + 0.2 + idx * 0.1, measured="workers", **fields))
        events.append(
            ev(
                "op_complete",
                t + 2.5 + idx * 0.1,
                measured="workers",
                duration=0.4 + idx,
                input_rows=rows_in,
                output_rows=rows_out,
                **fields,
            )
        )
    return events


@pytest.mark.parametrize("measured_first", [True, False])
def test_measured_op_events_replace_the_executors_own_in_either_order(measured_first):
    own, measured = _group_timed_partition(0, 10.0), _measured(0, 10.0)
    events = [job_start(partitions=1), *(measured + own if measured_first else own + measured)]
    state = fold(events)
    runs = list(state.op_runs(state.partitions[0]))
    assert [(run.input_rows, run.output_rows) for run in runs] == MEASURED_ROWS
    assert [run.duration for run in runs] == [0.4, 1.4, 2.4]  # measured, never "group-timed"
    assert [run.status for run in runs] == [Status.COMPLETED] * 3
    assert state.partition_status(state.partitions[0]) == Status.COMPLETED


def test_without_measured_events_a_group_stays_group_timed():
    state = fold([job_start(partitions=1), *_group_timed_partition(0, 10.0)])
    assert [run.duration for run in state.op_runs(state.partitions[0])] == [None] * 3


@pytest.mark.parametrize("cut", range(1, 15))
def test_measured_runs_merge_like_the_whole_log(cut):
    events = [job_start(partitions=1), *_group_timed_partition(0, 10.0), *_measured(0, 10.0)]
    whole = fold(events)
    first, later = fold(events[:cut]), fold(events[cut:])
    first.merge(later)
    assert state_view(first, counters=False) == state_view(whole, counters=False)
