"""Measuring Ray Data functions where they run, and adding the counts up in the driver.

In-process: the functions are called here as a Ray worker would call them, and the
collector reads what they appended (the real executors are in test_data_juicer_executors).
"""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest

from dj_observe.integrations.data_juicer.collector import Collector, _consistent
from dj_observe.integrations.data_juicer.measure import (
    MeasuredFn,
    Step,
    _flusher,
    measured_class,
)


class Emitted(list):
    def __call__(self, event_type: str, **fields) -> None:
        self.append((event_type, fields))

    def ends(self) -> dict[str, dict]:
        return {f["operation_name"]: f for kind, f in self if kind in ("op_complete", "op_failed")}


@pytest.fixture
def collector(tmp_path):
    emitted = Emitted()
    failures: list[Exception] = []
    made = Collector(tmp_path / "measures", emitted, failures.append)
    made.emitted = emitted  # type: ignore[attr-defined]
    yield made
    made.close()
    assert failures == []


def _step(collector: Collector, op: str, idx: int, step: int, partition: int = 0) -> Step:
    return Step(str(collector.directory), partition, op, idx, step)


def _same(table: pa.Table) -> pa.Table:
    return table


def _table(rows: int) -> pa.Table:
    return pa.table({"text": [f"row {n}" for n in range(rows)]})


def test_a_filters_steps_add_up_to_its_rows_in_and_out(collector):
    stats = MeasuredFn(lambda table: table, _step(collector, "length_filter", 0, 0))
    keep = MeasuredFn(lambda table: table.slice(0, 7), _step(collector, "length_filter", 0, 1))
    collector.plan(0, "length_filter", 0, steps=2)
    for _ in range(3):  # three batches of 10
        keep(stats(_table(10)))
    collector.settle(0, expected_input=30)
    (end,) = collector.emitted.ends().values()
    assert (end["input_rows"], end["output_rows"]) == (30, 21)
    assert end["duration"] > 0 and end["metadata"]["cpu_seconds"] >= 0
    assert end["metadata"]["peak_rss_bytes"] > 0


def test_a_predicate_counts_rows_one_call_each(collector):
    keep_even = MeasuredFn(lambda row: row["id"] % 2 == 0, _step(collector, "even", 1, 0), True)
    collector.plan(0, "even", 1, steps=1)
    for n in range(9):
        keep_even({"id": n})
    collector.settle(0)
    assert collector.emitted.ends()["even"]["output_rows"] == 5


def test_op_start_is_emitted_while_the_plan_streams(collector):
    fn = MeasuredFn(lambda table: table, _step(collector, "mapper", 0, 0))
    collector.plan(0, "mapper", 0, steps=1)
    fn(_table(4))
    _flusher.flush()
    collector._read()
    assert [kind for kind, _ in collector.emitted] == ["op_start"]


def test_settle_waits_for_the_chain_of_ops_to_add_up(collector):
    """A run whose rows in differ from the previous op's rows out is still on its way."""
    first = MeasuredFn(lambda table: table, _step(collector, "first", 0, 0))
    second = MeasuredFn(lambda table: table, _step(collector, "second", 1, 0))
    collector.plan(0, "first", 0, steps=1)
    collector.plan(0, "second", 1, steps=1)
    second(first(_table(5)))
    first(_table(5))  # its second batch has not reached ``second`` yet ...
    collector._read()
    runs = collector._open_runs(0)
    _flusher.flush()
    collector._read()
    assert not _consistent(runs, None, False)
    second(_table(5))  # ... now it has
    collector.settle(0)
    ends = collector.emitted.ends()
    assert ends["first"]["output_rows"] == ends["second"]["input_rows"] == 10


def test_a_function_that_raises_is_an_op_failed_with_its_stack_trace(collector):
    def broken(table):
        raise ValueError("bad row 7")

    fn = MeasuredFn(broken, _step(collector, "broken", 2, 0))
    collector.plan(0, "broken", 2, steps=1)
    with pytest.raises(ValueError):
        fn(_table(3))
    collector.settle(0, failing=True)
    (_, fields), *_ = [item for item in collector.emitted if item[0] == "op_failed"]
    assert fields["error_message"] == "ValueError: bad row 7"
    assert "Traceback (most recent call last)" in fields["stack_trace"]
    assert collector.last_error == "ValueError: bad row 7"


def test_a_copy_sent_to_a_worker_counts_for_itself(collector):
    fn = MeasuredFn(_same, _step(collector, "mapper", 0, 0))
    collector.plan(0, "mapper", 0, steps=1)
    fn(_table(2))
    copy = pickle.loads(pickle.dumps(fn))
    copy(_table(3))
    fn(_table(1))
    collector.settle(0, expected_input=6)
    assert collector.emitted.ends()["mapper"]["input_rows"] == 6


def test_an_actor_class_is_measured_per_call(collector):
    class Upper:
        def __init__(self, suffix: str) -> None:
            self.suffix = suffix

        def __call__(self, table):
            return table.slice(1)

    actor = measured_class(Upper, _step(collector, "upper", 0, 0))("!")
    collector.plan(0, "upper", 0, steps=1)
    actor(_table(4))
    collector.settle(0)
    assert collector.emitted.ends()["upper"]["output_rows"] == 3


def test_an_unplanned_run_of_a_partition_is_not_emitted(collector):
    fn = MeasuredFn(lambda table: table, _step(collector, "elsewhere", 0, 0, partition=9))
    fn(_table(2))
    collector.settle(9)
    assert collector.emitted == []
