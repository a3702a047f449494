"""Properties over generated input: the reader and the snapshot never raise, and folds merge."""

from __future__ import annotations

import io
import itertools
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support import fold, state_view, to_lines

from dj_observe.eventlog import DEFAULT_MAX_LINE_BYTES, EventLogReader
from dj_observe.events import FAST_DECODER, TYPED_DECODER, EventType, parse_line
from dj_observe.oprows import op_rows
from dj_observe.snapshot import ProcessingSnapshotAnalyzer, ProcessingStatus, write_json
from dj_observe.state import JobState

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- arbitrary lines ---------------------------------------------------------------------

FIELDS = [
    "timestamp",
    "message",
    "event_id",
    "job_id",
    "partition_id",
    "operation_name",
    "operation_idx",
    "status",
    "duration",
    "error_message",
    "retry_count",
    "checkpoint_path",
    "op_args",
    "input_rows",
    "output_rows",
    "partition_meta",
    "config",
    "metadata",
    "total_partitions",
    "job_duration",
    "error_type",
    "process_id",
    "thread_id",
    "sample_count",
    "something_else",
]
METADATA_KEYS = [
    "input_rows",
    "output_rows",
    "duration_seconds",
    "dag_node_id",
    "node_id",
    "op_name",
    "is_resuming",
    "operations",
    "num_partitions",
    "checkpoint_strategy",
    "config_summary",
    "success",
    "error",
    "error_type",
    "sample_count",
    "partition_size_bytes",
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["3", "12.5", "2025-08-09T04:00:53+00:00", "op_001_a_partition_0", ""]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
metadata_values = st.dictionaries(st.sampled_from(METADATA_KEYS), json_values, max_size=4)
event_types = st.one_of(
    st.sampled_from([kind.value for kind in EventType]),
    st.sampled_from(["", "custom_event", "OP_START"]),
    json_values,
)
event_like = st.fixed_dictionaries(
    {"event_type": event_types},
    optional={
        **{name: json_values for name in FIELDS},
        "metadata": st.one_of(metadata_values, json_values),
    },
)


def _dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _one_line(data: bytes) -> bytes:
    data = data.replace(b"\n", b"")
    return data if data.strip() else data[:8]


lines = st.one_of(
    st.binary(max_size=60),
    json_values.map(_dumps),
    event_like.map(_dumps),
    event_like.map(_dumps),
).map(_one_line)


@st.composite
def log_contents(draw) -> tuple[bytes, list[bytes]]:
    """Log bytes and their lines; the last line may lack its newline (a torn tail)."""
    chosen = draw(st.lists(lines, max_size=25))
    content = b"\n".join(chosen)
    if chosen and draw(st.booleans()):
        content += b"\n"
    return content, chosen


def non_blank(chosen: list[bytes]) -> int:
    return sum(1 for line in chosen if line.strip())


def write_job_dir(root: str, content: bytes) -> Path:
    job_dir = Path(root) / "job"
    job_dir.mkdir()
    (job_dir / "events.jsonl").write_bytes(content)
    return job_dir


BIG_INTS = [
    b'{"event_type": "op_start", "partition_id": 0, "operation_name": "a", "input_rows": '
    + str(2**64).encode()
    + b"}",
    b'{"event_type": "op_start", "partition_id": 99999999999999999999, "operation_name": "a"}',
]
DEEP = [b'{"event_type": "job_start"}', b"[" * 1100]


@SETTINGS
@given(content=log_contents(), max_line_bytes=st.sampled_from([DEFAULT_MAX_LINE_BYTES, 40]))
@example(content=(b"\n".join(DEEP) + b"\n", DEEP), max_line_bytes=DEFAULT_MAX_LINE_BYTES)
def test_reader_never_raises_and_counts_every_line(content, max_line_bytes):
    data, chosen = content
    with tempfile.TemporaryDirectory() as root:
        reader = EventLogReader(write_job_dir(root, data), max_line_bytes=max_line_bytes)
        events = [event for block in reader.read() for event in block]
    stats = reader.stats
    assert len(events) == stats.events
    assert stats.events + stats.skipped_lines == non_blank(chosen)
    assert all(isinstance(event.event_type, str) and event.event_type for event in events)


@SETTINGS
@given(content=log_contents())
@example(content=(b"\n".join(BIG_INTS) + b"\n", BIG_INTS))
def test_snapshot_never_raises_on_arbitrary_lines(content):
    data, chosen = content
    with tempfile.TemporaryDirectory() as root:
        analyzer = ProcessingSnapshotAnalyzer(write_job_dir(root, data), workers=1)
        snapshot = analyzer.generate_snapshot()
        document = analyzer.to_json_dict(snapshot)
        buffer = io.BytesIO()
        write_json(snapshot, buffer)
    assert json.loads(buffer.getvalue()) == document
    metadata = document["metadata"]
    assert metadata["events_analyzed"] + metadata["skipped_lines"] == non_blank(chosen)
    assert document["overall_status"] in {status.value for status in ProcessingStatus}
    summary = document["progress_summary"]
    assert 0 <= summary["completed_partitions"] <= summary["total_partitions"]
    assert 0 <= summary["completed_operations"] <= summary["total_operations"]


# -- fold(a + b) == merge(fold(a), fold(b)) -------------------------------------------------

OP_NAMES = ["a_mapper", "b_filter", "c_dedup"]

VOCABULARY = [
    "job_start",
    "job_restart",
    "job_complete",
    "job_failed",
    "partition_creation_start",
    "partition_creation_complete",
    "partition_start",
    "partition_resume",
    "partition_complete",
    "partition_failed",
    "op_start",
    "op_complete",
    "op_failed",
    "checkpoint_save",
    "checkpoint_load",
    "dag_node_start",
    "dag_node_complete",
    "gpu_sample",
]


@st.composite
def vocabulary_events(draw) -> dict:
    kind = draw(st.sampled_from(VOCABULARY))
    pid = draw(st.integers(0, 2))
    idx = draw(st.integers(0, 2))
    name = OP_NAMES[idx]
    event: dict = {"event_type": kind, "timestamp": draw(st.integers(0, 60)) / 2}
    if kind.startswith(("partition", "op", "checkpoint")):
        event["partition_id"] = pid
    if kind.startswith(("op", "checkpoint")):
        # Data-Juicer names a loaded checkpoint's op by position only: ``op_0002``.
        event["operation_name"] = f"op_{idx:04d}" if kind == "checkpoint_load" else name
        # Checkpoint events always carry the absolute index; op events may count within a
        # checkpoint group (0) or leave it out.
        if kind.startswith("checkpoint"):
            event["operation_idx"] = idx
        elif draw(st.booleans()):
            event["operation_idx"] = draw(st.sampled_from([idx, 0]))
    node = f"op_{idx + 1:03d}_{name}_partition_{pid}"
    metadata = draw(
        st.sampled_from(
            [
                None,
                {"is_resuming": True},
                {"operations": OP_NAMES, "num_partitions": 3},
                {"num_partitions": draw(st.integers(1, 4))},
                {"input_rows": 50, "output_rows": 40},
                {"dag_node_id": node},
                {"node_id": node, "op_name": name},
                {"success": False, "error": "boom"},
                {"sample_count": draw(st.integers(1, 9))},
                {"checkpoint_strategy": "every_op"},
            ]
        )
    )
    if metadata is not None:
        event["metadata"] = metadata
    if kind in ("op_complete", "job_complete") and draw(st.booleans()):
        event["duration"] = draw(st.integers(1, 9)) / 4
    if kind == "op_complete" and draw(st.booleans()):
        event["input_rows"] = draw(st.integers(0, 100))
        event["output_rows"] = draw(st.integers(0, 100))
    if kind.endswith("failed"):
        event["error_message"] = draw(st.sampled_from(["ValueError: x", "KeyError: y"]))
    if kind == "op_complete" and draw(st.integers(0, 4)) == 0:
        event["status"] = "failed"
    if kind in ("job_start", "job_restart"):
        event["process_id"] = draw(st.integers(1, 3))
        event["job_id"] = "job"
    return event


# Shapes that once broke the invariants (kept so that CI always tries them).
RESTARTED_AFTER_FAILURE = [
    {"event_type": "job_start", "timestamp": 0.0, "process_id": 1, "job_id": "job"},
    {"event_type": "job_failed", "timestamp": 1.0, "error_message": "ValueError: x"},
    {"event_type": "job_restart", "timestamp": 2.0, "process_id": 2, "job_id": "job"},
]
OP_THEN_ITS_DAG_NODE = [
    {"event_type": "op_start", "timestamp": 1.0, "partition_id": 2, "operation_name": "b_filter"},
    {
        "event_type": "dag_node_start",
        "timestamp": 2.0,
        "metadata": {"node_id": "op_002_b_filter_partition_0", "op_name": "b_filter"},
    },
]
PLANNED_OP_WITH_ROWS_IN_START_METADATA = [
    {"event_type": "job_start", "timestamp": 0.0, "metadata": {"operations": OP_NAMES}},
    {
        "event_type": "op_start",
        "timestamp": 1.0,
        "partition_id": 0,
        "operation_name": "a_mapper",
        "metadata": {"input_rows": 50},
    },
]


def _checkpoint_groups() -> list[dict]:
    """Data-Juicer's every_n_ops shape: ops [0, 1] run and timed as one group, then [2]."""
    events: list[dict] = []
    for group_start, names in ((0, OP_NAMES[:2]), (2, OP_NAMES[2:3])):
        for kind in ("op_start", "op_complete"):
            for index, name in enumerate(names):
                node = f"op_{group_start + index + 1:03d}_{name}_partition_0"
                events.append(
                    {
                        "event_type": kind,
                        "timestamp": float(len(events)),
                        "partition_id": 0,
                        "operation_name": name,
                        "operation_idx": index,
                        "op_args": {"dag_node_id": node},
                        "duration": 0.5,
                    }
                )
    return events


CHECKPOINT_GROUPS = _checkpoint_groups()
TWO_OPS_AT_ONE_POSITION = [
    # c_dedup claims a_mapper's position; b_filter (next position) overlaps a_mapper.
    {"event_type": "job_start", "timestamp": 0.0, "job_id": "job"},
    {
        "event_type": "op_complete",
        "timestamp": 0.5,
        "partition_id": 1,
        "operation_name": "a_mapper",
        "duration": 0.25,
        "status": "failed",
    },
    {
        "event_type": "op_failed",
        "timestamp": 0.0,
        "partition_id": 1,
        "operation_name": "c_dedup",
        "operation_idx": 0,
        "error_message": "ValueError: x",
    },
    {
        "event_type": "checkpoint_save",
        "timestamp": 0.0,
        "partition_id": 0,
        "operation_name": "a_mapper",
        "operation_idx": 0,
    },
    {
        "event_type": "checkpoint_save",
        "timestamp": 0.0,
        "partition_id": 0,
        "operation_name": "b_filter",
        "operation_idx": 1,
    },
    {"event_type": "op_start", "timestamp": 0.0, "partition_id": 1, "operation_name": "b_filter"},
]
PARTITION_FAILED_INSIDE_A_GROUP = [
    # The next op starts before the previous one ends, then the partition fails under it.
    {"event_type": "job_start", "timestamp": 0.0, "job_id": "job"},
    {
        "event_type": "op_start",
        "timestamp": 0.0,
        "partition_id": 0,
        "operation_name": "b_filter",
        "operation_idx": 1,
    },
    {
        "event_type": "checkpoint_save",
        "timestamp": 0.0,
        "partition_id": 0,
        "operation_name": "a_mapper",
        "operation_idx": 0,
    },
    {
        "event_type": "partition_failed",
        "timestamp": 0.0,
        "partition_id": 0,
        "error_message": "ValueError: x",
    },
    {
        "event_type": "op_failed",
        "timestamp": 0.5,
        "partition_id": 0,
        "operation_name": "a_mapper",
        "error_message": "ValueError: x",
    },
]


@SETTINGS
@given(events=st.lists(vocabulary_events(), max_size=40), cut=st.integers(0, 40))
@example(events=CHECKPOINT_GROUPS, cut=3)
@example(events=RESTARTED_AFTER_FAILURE, cut=0)
@example(events=OP_THEN_ITS_DAG_NODE, cut=1)
@example(events=PLANNED_OP_WITH_ROWS_IN_START_METADATA, cut=1)
def test_merge_of_folded_pieces_equals_fold_of_the_whole(events, cut):
    cut = min(cut, len(events))
    merged = fold(events[:cut])
    merged.merge(fold(events[cut:]))
    assert state_view(merged) == state_view(fold(events))


@SETTINGS
@given(events=st.lists(vocabulary_events(), max_size=40))
@example(events=OP_THEN_ITS_DAG_NODE[::-1])
def test_folding_twice_changes_only_counters(events):
    assert state_view(fold(events + events), counters=False) == state_view(
        fold(events), counters=False
    )


@SETTINGS
@given(events=st.lists(vocabulary_events(), max_size=40))
def test_fold_is_the_same_event_by_event_and_in_one_batch(events):
    one_by_one = JobState()
    for event in events:
        fold([event], one_by_one)
    assert state_view(one_by_one) == state_view(fold(events))


KNOWN_TYPES = frozenset(kind.value for kind in EventType)


def _fold_with(decode, events: list[dict]) -> JobState:
    state = JobState()
    block = to_lines(events)
    if block:
        state.apply_all(decode(block))
    return state


@SETTINGS
@given(events=st.lists(vocabulary_events(), max_size=40))
@example(events=PLANNED_OP_WITH_ROWS_IN_START_METADATA)
def test_typed_generic_and_tolerant_decoding_fold_alike(events):
    generic = state_view(_fold_with(FAST_DECODER.decode_lines, events))
    tolerant = _fold_with(lambda block: [parse_line(line) for line in block.splitlines()], events)
    assert generic == state_view(tolerant)
    if all(event["event_type"] in KNOWN_TYPES for event in events):
        assert state_view(_fold_with(TYPED_DECODER.decode_lines, events)) == generic


@SETTINGS
@given(events=st.lists(vocabulary_events(), max_size=40))
@example(events=OP_THEN_ITS_DAG_NODE)
@example(events=CHECKPOINT_GROUPS)
@example(events=PARTITION_FAILED_INSIDE_A_GROUP)
@example(events=TWO_OPS_AT_ONE_POSITION)
def test_op_rows_agree_with_op_run(events):
    state = fold(events)
    parts = [part for _, part in sorted(state.partitions.items())]
    rows = op_rows(state, parts)
    as_rows = list(
        zip(
            rows.partition_id,
            rows.name,
            rows.index,
            rows.status,
            rows.start_time,
            rows.end_time,
            rows.duration,
            rows.input_rows,
            rows.output_rows,
            rows.checkpoint_time,
            rows.error_message,
            rows.cpu_seconds,
            rows.peak_rss_bytes,
            strict=True,
        )
    )
    assert as_rows == [tuple(run) for part in parts for run in state.op_runs(part)]
    assert rows.bounds == [0, *itertools.accumulate(len(part.ops) for part in parts)]
