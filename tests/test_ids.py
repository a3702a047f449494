"""Trace and span ids derived from the job's coordinates: stable, distinct, never zero."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dj_observe.ids import job_span_id, op_span_id, partition_span_id, trace_id, trace_id_hex


def test_known_trace_ids():
    """Pinned: changing the derivation would break live-equals-replay across versions."""
    assert trace_id_hex("job1") == "5d08e815ce425ce34de4688729b07382"
    assert trace_id_hex("20250809_040053_a001de") == "7865b9f1e3ced8af9d1428f6239a86fe"
    assert trace_id("job1") == int("5d08e815ce425ce34de4688729b07382", 16)


def test_known_span_ids():
    assert f"{job_span_id('job1', 0):016x}" == "5d7fbbf55913b9e7"
    assert f"{partition_span_id('job1', 3, 1):016x}" == "e421a5c7c3f16d3c"
    assert f"{op_span_id('job1', 3, 2, 1):016x}" == "9b8145d9c0b902f0"
    assert f"{op_span_id('job1', 3, 'clean_links_mapper', 1):016x}" == "5b67c09ec7babd1e"


def test_ids_are_the_same_in_another_process_with_another_hash_seed():
    code = (
        "from dj_observe.ids import trace_id_hex, op_span_id;"
        "print(trace_id_hex('job1'), op_span_id('job1', 3, 2, 1))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        check=True,
    )

    assert result.stdout.split() == [trace_id_hex("job1"), str(op_span_id("job1", 3, 2, 1))]


def test_trace_ids_differ_between_jobs():
    assert trace_id("job1") != trace_id("job2")


def test_job_span_ids_differ_between_attempts():
    assert job_span_id("job1", 0) != job_span_id("job1", 1)


def test_partition_span_ids_differ_between_partitions_jobs_and_attempts():
    ids = {
        partition_span_id(job, pid, attempt)
        for job in ("job1", "job2")
        for pid in range(50)
        for attempt in (1, 2, 3)
    }
    assert len(ids) == 2 * 50 * 3


def test_op_span_ids_differ_between_ops_partitions_and_attempts():
    ids = {
        op_span_id("job1", pid, idx, attempt)
        for pid in range(20)
        for idx in range(10)
        for attempt in (1, 2)
    }
    assert len(ids) == 20 * 10 * 2


def test_span_kinds_do_not_collide():
    """A job, a partition and an op with the same numbers get different span ids."""
    assert len({job_span_id("j", 1), partition_span_id("j", 1, 1), op_span_id("j", 1, 1, 1)}) == 3


def test_ids_have_the_otel_sizes():
    assert trace_id("job1").bit_length() <= 128
    assert op_span_id("job1", 0, 0, 1).bit_length() <= 64


@given(st.text(max_size=40), st.integers(0, 10**6), st.integers(0, 100), st.integers(0, 10))
def test_ids_are_never_zero(job, partition, op_index, attempt):
    assert trace_id(job) != 0
    assert job_span_id(job, attempt) != 0
    assert partition_span_id(job, partition, attempt) != 0
    assert op_span_id(job, partition, op_index, attempt) != 0


@pytest.mark.parametrize("job", ["", "ü-job", "a/b", "\udcff"])
def test_odd_job_ids_get_ids(job):
    assert 0 < trace_id(job) < 2**128
