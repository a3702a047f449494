"""The event vocabulary and the tolerant parser (dj_observe.events)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from support import ev, to_lines

from dj_observe.events import (
    FAST_DECODER,
    Event,
    EventType,
    event_from_dict,
    event_to_dict,
    metadata_value,
    nested,
    parse_line,
    text,
)
from dj_observe.synthetic import JobSpec, events_for

ISSUE_EVENT_TYPES = [
    "job_start",
    "job_complete",
    "job_failed",
    "job_restart",
    "partition_creation_start",
    "partition_creation_complete",
    "partition_start",
    "partition_complete",
    "partition_failed",
    "partition_resume",
    "op_start",
    "op_complete",
    "op_failed",
    "checkpoint_save",
    "checkpoint_load",
    "dag_build_start",
    "dag_build_complete",
    "dag_node_ready",
    "dag_node_start",
    "dag_node_complete",
    "dag_node_failed",
    "dag_parallel_group_start",
    "dag_parallel_group_complete",
    "dag_execution_plan_saved",
    "dag_execution_plan_loaded",
    "processing_start",
    "processing_complete",
    "processing_error",
]


def parse(data: dict) -> Event:
    event = parse_line(json.dumps(data))
    assert event is not None
    return event


# -- the vocabulary ------------------------------------------------------------------


@pytest.mark.parametrize("value", ISSUE_EVENT_TYPES)
def test_event_type_exists(value):
    assert EventType(value).value == value


def test_event_type_compares_equal_to_its_string():
    assert EventType.OP_COMPLETE == "op_complete"
    assert str(EventType.CHECKPOINT_LOAD) == "checkpoint_load"


# -- normalising types -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("partition_id", "3", 3),
        ("partition_id", " 7 ", 7),
        ("partition_id", 4.0, 4),
        ("operation_idx", "0", 0),
        ("input_rows", "12.0", 12),
        ("output_rows", 19363, 19363),
        ("retry_count", "2", 2),
        ("process_id", "48213", 48213),
    ],
)
def test_parse_line_coerces_int_fields(field, raw, expected):
    event = parse(ev("op_complete", 1.0, **{field: raw}))
    value = getattr(event, field)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12.5", 12.5), (12, 12.0), (1754712053.496651, 1754712053.496651), (" 3 ", 3.0)],
)
def test_parse_line_coerces_timestamp_to_float(raw, expected):
    event = parse(ev("job_start", raw))
    assert event.timestamp == expected
    assert type(event.timestamp) is float


def test_parse_line_converts_iso_timestamp_with_zone_to_epoch():
    event = parse(ev("job_start", "2025-08-09T04:00:53.496651+00:00"))
    expected = datetime(2025, 8, 9, 4, 0, 53, 496651, tzinfo=timezone.utc).timestamp()
    assert event.timestamp == pytest.approx(expected)


def test_parse_line_converts_iso_timestamp_with_offset_to_epoch():
    event = parse(ev("job_start", "2025-08-09T12:00:53+08:00"))
    zone = timezone(timedelta(hours=8))
    assert event.timestamp == datetime(2025, 8, 9, 12, 0, 53, tzinfo=zone).timestamp()


def test_parse_line_converts_naive_iso_timestamp_as_local_time():
    event = parse(ev("job_start", "2025-08-09T04:00:53"))
    assert event.timestamp == datetime(2025, 8, 9, 4, 0, 53).timestamp()


@pytest.mark.parametrize("field", ["partition_id", "operation_idx", "input_rows", "retry_count"])
def test_parse_line_does_not_take_a_bool_for_an_int(field):
    event = parse(ev("op_start", 1.0, **{field: True}))
    assert getattr(event, field) is None


def test_parse_line_does_not_take_a_bool_for_a_timestamp():
    assert parse(ev("op_start", True)).timestamp is None


@pytest.mark.parametrize("raw", ["nan", "Infinity", "-inf", "soon", "", [1], {"a": 1}])
def test_parse_line_drops_a_timestamp_that_is_not_a_finite_time(raw):
    event = parse({"event_type": "op_start", "timestamp": raw, "partition_id": 1})
    assert event.timestamp is None
    assert event.partition_id == 1


@pytest.mark.parametrize("raw", [3.5, "3.5", "three", [3], {"id": 3}, None])
def test_parse_line_drops_an_int_field_that_is_not_an_integer(raw):
    event = parse({"event_type": "op_start", "timestamp": 1.0, "partition_id": raw})
    assert event.partition_id is None
    assert event.timestamp == 1.0


def test_parse_line_turns_scalar_message_into_text():
    assert parse(ev("op_start", 1.0, message=42)).message == "42"


def test_parse_line_drops_a_metadata_that_is_not_an_object():
    event = parse(ev("op_start", 1.0, metadata=[1, 2], operation_name="x"))
    assert event.metadata is None
    assert event.operation_name == "x"


# -- never raising ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"   ",
        b"garbage",
        b"\xff\xfe\x00\x01binary",
        b"\x00" * 16,
        b"[]",
        b"[1, 2, 3]",
        b'"x"',
        b"42",
        b"null",
        b"true",
        b"{}",
        b'{"timestamp": 1.0, "partition_id": 3}',
        b'{"event_type": ""}',
        b'{"event_type": null}',
        b'{"event_type": {"nested": 1}}',
        b'{"event_type": ["op_start"]}',
        b'{"a": [{"b": {"c": [1, 2, {"d": null}]}}], "e": {"f": []}}',
        b'{"event_type": "op_start", "timestamp": 1.0',
        b'{"event_type": "op_st',
        b'{"event_type": "\xff\xfe"}',
        '{"event_type": "op_start"}\u2028garbage'.encode(),
    ],
)
def test_parse_line_returns_none_for_a_line_that_is_not_an_event(line):
    assert parse_line(line) is None


def test_parse_line_returns_none_for_deeply_nested_json():
    """A hostile line nested thousands deep is "not an event", not a crash."""
    assert parse_line(b"[" * 5000 + b"]" * 5000) is None


def test_parse_line_survives_deeply_nested_metadata():
    metadata = b'{"a":' * 3000 + b"1" + b"}" * 3000
    line = b'{"event_type": "op_start", "timestamp": 1.0, "metadata": ' + metadata + b"}"
    event = parse_line(line)
    assert event is None or event.event_type == "op_start"


def test_parse_line_accepts_str_and_bytes_alike():
    line = json.dumps(ev("op_start", 2.0, partition_id=1, operation_name="x"))
    assert parse_line(line) == parse_line(line.encode())


# -- keeping what it does not know -----------------------------------------------------


def test_parse_line_keeps_an_unknown_event_type():
    event = parse(ev("gpu_memory_sample", 5.0, partition_id=2))
    assert event.event_type == "gpu_memory_sample"
    assert event.partition_id == 2


def test_parse_line_keeps_unknown_fields_in_extra():
    event = parse(ev("op_start", 1.0, gpu="A100", placement={"node": [1, "x"]}, attempt=3))
    assert event.extra == {"gpu": "A100", "placement": {"node": [1, "x"]}, "attempt": 3}


def test_parse_line_without_unknown_fields_has_no_extra():
    assert parse(ev("op_start", 1.0, partition_id=0)).extra is None


def test_event_to_dict_round_trips_a_well_typed_line_with_unknown_fields():
    original = ev(
        "op_complete",
        1754712074.366004,
        message="Operation clean_links_mapper (idx 0) completed",
        partition_id=0,
        operation_name="clean_links_mapper",
        operation_idx=0,
        duration=0.01,
        input_rows=20000,
        output_rows=19363,
        metadata={"dag_node_id": "op_001_clean_links_mapper_partition_0", "x": None},
        process_id=48213,
        thread_id=140211824932672,
        custom_field={"kept": True},
    )
    assert event_to_dict(parse(original)) == original


def test_event_from_dict_without_event_type_is_none():
    assert event_from_dict({"timestamp": 1.0, "partition_id": 0}) is None


# -- fields at top level or in metadata ------------------------------------------------


def test_metadata_value_reads_a_top_level_field():
    event = parse(ev("op_complete", 1.0, input_rows=10, metadata={"input_rows": 99}))
    assert metadata_value(event, "input_rows") == 10


def test_metadata_value_falls_back_to_metadata():
    event = parse(ev("op_complete", 1.0, metadata={"input_rows": 99, "sample_count": 5}))
    assert metadata_value(event, "input_rows") == 99
    assert metadata_value(event, "sample_count") == 5


def test_metadata_value_of_missing_field_is_none():
    assert metadata_value(parse(ev("op_complete", 1.0)), "output_rows") is None


# -- the bulk decoder agrees with the tolerant parser ------------------------------------

COMMON_FIELDS = (
    "event_type",
    "timestamp",
    "job_id",
    "partition_id",
    "operation_name",
    "operation_idx",
    "status",
    "duration",
    "job_duration",
    "error_message",
    "error_type",
    "input_rows",
    "output_rows",
    "process_id",
)


def _fast_and_tolerant(block: bytes):
    fast = FAST_DECODER.decode_lines(block)
    tolerant = [parse_line(line) for line in block.splitlines() if line.strip()]
    assert len(fast) == len(tolerant)
    return list(zip(fast, tolerant, strict=True))


def _assert_agree(fast, tolerant):
    for name in COMMON_FIELDS:
        assert getattr(fast, name) == getattr(tolerant, name), name
    assert text(fast.message) == tolerant.message
    for name in ("metadata", "config", "partition_meta", "op_args"):
        assert nested(getattr(fast, name)) == (getattr(tolerant, name) or {}), name


@pytest.mark.parametrize("style", ["spec", "data_juicer"])
def test_fast_decoder_and_parse_line_agree_on_generated_logs(style):
    spec = JobSpec(style=style, partitions=3, failed_partitions={1: 2}, seed=3)
    block = "".join(line for _, line in events_for(spec)).encode()
    pairs = _fast_and_tolerant(block)
    assert len(pairs) > 50
    for fast, tolerant in pairs:
        _assert_agree(fast, tolerant)


def test_fast_decoder_and_parse_line_agree_on_hand_written_lines():
    block = to_lines(
        [
            ev("job_start", 1754712053, job_id="j", metadata={"num_partitions": 2}),
            ev("partition_start", 1754712054.25, partition_id=0, message="Partition 0 \u2192"),
            ev(
                "op_complete",
                1754712055.5,
                partition_id=0,
                operation_name="clean_links_mapper",
                operation_idx=0,
                status="success",
                duration=0.5,
                input_rows=20000,
                output_rows=19363,
                op_args={"dag_node_id": "op_001_clean_links_mapper_partition_0"},
            ),
            ev("partition_failed", 1754712056.0, partition_id=1, error_message="boom"),
            ev("job_complete", 1754712057.0, job_duration=4.0, error_type="none"),
            ev("custom_thing", 1754712058.0, unknown={"a": [1]}),
        ]
    )
    pairs = _fast_and_tolerant(block)
    assert len(pairs) == 6
    for fast, tolerant in pairs:
        _assert_agree(fast, tolerant)
    assert pairs[2][0].input_rows == 20000
    assert pairs[0][0].timestamp == 1754712053.0


def test_text_of_a_raw_message_is_the_decoded_string():
    (fast,) = FAST_DECODER.decode_lines(b'{"event_type": "x", "message": "a \\u2192 b"}\n')
    assert text(fast.message) == "a \u2192 b"


def test_nested_of_a_missing_object_is_empty():
    (fast,) = FAST_DECODER.decode_lines(b'{"event_type": "x"}\n')
    assert nested(fast.metadata) == {}
    assert nested(None) == {}
