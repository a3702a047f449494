"""A persisted fold's partitions: built on first access, a mapping like the plain dict."""

from __future__ import annotations

import pickle

import pytest
from support import ev, fold

from dj_observe.partstore import PartitionRows, StoredPartitions
from dj_observe.state import JobState, PartitionState, Status


@pytest.fixture
def folded() -> JobState:
    events = [ev("job_start", 1.0, job_id="j")]
    for pid in (5, 3, 9, 1):  # not in id order: the mapping keeps the fold's order
        events.append(ev("partition_start", 10.0 + pid, partition_id=pid, sample_count=pid))
        events.append(
            ev("op_start", 11.0 + pid, partition_id=pid, operation_idx=0, operation_name="a")
        )
        if pid != 9:
            events.append(
                ev("op_complete", 12.0 + pid, partition_id=pid, operation_idx=0, operation_name="a")
            )
            end = "partition_failed" if pid == 3 else "partition_complete"
            events.append(ev(end, 13.0 + pid, partition_id=pid, error_message="x"))
    return fold(events)


def _restored(state: JobState) -> StoredPartitions:
    """``state``'s partitions through a store and a load, as the fold cache does."""
    rows = pickle.loads(pickle.dumps(PartitionRows.of(state)))
    return StoredPartitions(rows, state.ops)


def test_the_mapping_equals_the_fold_s_partitions_in_order(folded):
    stored = _restored(folded)
    assert len(stored) == 4 and 9 in stored and 7 not in stored
    assert list(stored) == list(folded.partitions) == [5, 3, 9, 1]
    assert stored.touched() == []  # neither counting nor listing the ids built anything
    assert stored.get(7) is None and stored.get(7, "none") == "none"
    assert stored[9] == folded.partitions[9]
    assert stored[9].ops == folded.partitions[9].ops and stored[9].status == Status.IN_PROGRESS
    assert stored.touched() == [stored[9]]
    assert dict(stored.items()) == folded.partitions
    assert list(stored.values()) == list(folded.partitions.values())


def test_added_and_removed_partitions_keep_the_plain_dict_s_order(folded):
    stored = _restored(folded)
    plain = dict(folded.partitions)
    for mapping in (stored, plain):
        mapping[0] = PartitionState(0)
        mapping[3] = PartitionState(3, sample_count=33)
        del mapping[5]
    assert list(stored) == list(plain) == [3, 9, 1, 0]
    assert stored[3].sample_count == 33
    assert list(stored.items()) == list(plain.items())
    with pytest.raises(KeyError):
        stored[5]


def test_untouched_answers_are_the_stored_ones_until_the_pipeline_changes(folded):
    stored = _restored(folded)
    key = folded.partition_facts_key()
    answers = stored.untouched(key)
    assert answers is not None
    assert answers.counts[Status.COMPLETED] == 2 and answers.counts[Status.IN_PROGRESS] == 1
    assert answers.failed_ids == [3]
    stored[3]  # looked up: its answers are computed from now on, not taken from the store
    answers = stored.untouched(key)
    assert answers is not None and answers.failed_ids == []
    assert sum(answers.counts.values()) == 3
    assert stored.untouched((key[0] + 1, key[1])) is None


def test_a_restored_fold_answers_as_the_fold(folded):
    restored = JobState()
    vars(restored).update({k: v for k, v in vars(folded).items() if k != "_handlers"})
    restored.partitions = _restored(folded)
    assert restored.partition_counts() == folded.partition_counts()
    assert restored.skipped_operations() == folded.skipped_operations()
    first = restored.first_failed_partition()
    assert first is not None and first == folded.first_failed_partition()
    assert first.partition_id == 3
