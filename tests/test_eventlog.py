"""The streaming event-log reader (dj_observe.eventlog)."""

from __future__ import annotations

import json

from support import append_log, ev, log_lines, to_lines, write_log

from dj_observe.eventlog import BLOCK_BYTES, EventLogReader, ReadStats, find_event_logs, iter_range
from dj_observe.events import text


def read_all(reader: EventLogReader) -> list:
    return [event for block in reader.read() for event in block]


def timestamps(events) -> list[float]:
    return [event.timestamp for event in events]


def numbered(start: int, count: int, event_type: str = "op_start") -> list[dict]:
    return [
        ev(event_type, float(n), partition_id=n % 4, operation_name=f"op{n % 3}")
        for n in range(start, start + count)
    ]


# -- files and their order -------------------------------------------------------------


def test_reads_every_event_of_events_jsonl_in_order(job_dir):
    write_log(job_dir, numbered(0, 50))
    reader = EventLogReader(job_dir)
    events = read_all(reader)
    assert timestamps(events) == [float(n) for n in range(50)]
    assert reader.stats.events == 50
    assert reader.stats.skipped_lines == 0


def test_run_files_are_read_in_order_of_their_first_event(job_dir):
    """File names sort differently from write order; the first timestamp decides."""
    write_log(job_dir, numbered(200, 3), name="events_20240101_000000.jsonl")
    write_log(job_dir, numbered(100, 3), name="events_20250101_000000.jsonl")
    write_log(job_dir, numbered(300, 3), name="events.jsonl")
    names = [path.name for path in find_event_logs(job_dir)]
    assert names == [
        "events_20250101_000000.jsonl",
        "events_20240101_000000.jsonl",
        "events.jsonl",
    ]
    events = read_all(EventLogReader(job_dir))
    assert timestamps(events) == [100.0, 101.0, 102.0, 200.0, 201.0, 202.0, 300.0, 301.0, 302.0]


def test_find_event_logs_ignores_files_that_are_not_event_logs(job_dir):
    write_log(job_dir, numbered(0, 1))
    (job_dir / "events.log").write_text("human readable\n")
    (job_dir / "events.jsonl.bak").write_text("{}\n")
    (job_dir / "my_events.jsonl").write_text("{}\n")
    (job_dir / "events_dir.jsonl").mkdir()
    assert [path.name for path in find_event_logs(job_dir)] == ["events.jsonl"]


def test_resumed_job_second_run_file_is_read(make_job):
    job = make_job(
        style="data_juicer", partitions=3, crash_after_events=40, resume=True, summary=False
    )
    files = sorted(path.name for path in job.glob("events_*.jsonl"))
    assert len(files) == 2
    reader = EventLogReader(job)
    events = read_all(reader)
    assert [path.name for path in reader.files] == files
    assert len(events) == len(log_lines(job))
    restarts = [
        event
        for event in events
        if event.event_type == "job_start" and text(event.message).startswith("Resuming")
    ]
    assert len(restarts) == 1


# -- bad lines -------------------------------------------------------------------------


def test_torn_last_line_is_skipped_and_counted(job_dir):
    write_log(job_dir, numbered(0, 5))
    with (job_dir / "events.jsonl").open("ab") as handle:
        handle.write(b'{"event_type": "op_complete", "timestamp": 5.0, "partit')
    reader = EventLogReader(job_dir)
    events = read_all(reader)
    assert timestamps(events) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert reader.stats.torn_tail_lines == 1
    assert reader.stats.malformed_lines == 0
    assert reader.stats.skipped_lines == 1


def test_complete_last_line_without_newline_is_an_event(job_dir):
    write_log(job_dir, numbered(0, 2))
    with (job_dir / "events.jsonl").open("ab") as handle:
        handle.write(json.dumps(ev("job_complete", 9.0)).encode())
    reader = EventLogReader(job_dir)
    events = read_all(reader)
    assert [event.event_type for event in events] == ["op_start", "op_start", "job_complete"]
    assert reader.stats.torn_tail_lines == 0


def test_garbage_and_binary_lines_are_counted_and_neighbours_survive(job_dir):
    lines = [
        ev("job_start", 1.0),
        b"this is not json",
        ev("partition_start", 2.0, partition_id=0),
        b"\xff\xfe\x00\x81\x92binary",
        b"[1, 2, 3]",
        ev("op_start", 3.0, partition_id=0, operation_name="a"),
        b'{"no_event_type": true}',
        ev("op_complete", 4.0, partition_id=0, operation_name="a"),
    ]
    write_log(job_dir, lines)
    reader = EventLogReader(job_dir)
    events = read_all(reader)
    assert [event.event_type for event in events] == [
        "job_start",
        "partition_start",
        "op_start",
        "op_complete",
    ]
    assert reader.stats.malformed_lines == 4
    assert reader.stats.events == 4


def test_deeply_nested_line_is_counted_as_malformed(job_dir):
    """A hostile line must not stop the reader (the other events survive)."""
    write_log(job_dir, [ev("job_start", 1.0), b"[" * 5000 + b"]" * 5000, ev("job_complete", 2.0)])
    reader = EventLogReader(job_dir)
    events = read_all(reader)
    assert [event.event_type for event in events] == ["job_start", "job_complete"]
    assert reader.stats.malformed_lines == 1


def test_wrong_field_types_are_coerced_not_dropped(job_dir):
    write_log(
        job_dir,
        [
            ev("op_start", 1.0, partition_id=0, operation_name="a"),
            ev("op_complete", "2.5", partition_id="3", operation_name="a", input_rows="10"),
        ],
    )
    reader = EventLogReader(job_dir)
    events = read_all(reader)
    assert len(events) == 2
    assert (events[1].timestamp, events[1].partition_id, events[1].input_rows) == (2.5, 3, 10)
    assert reader.stats.malformed_lines == 0


def test_blank_lines_are_neither_events_nor_skipped(job_dir):
    write_log(job_dir, [ev("job_start", 1.0), b"", b"   ", ev("job_complete", 2.0)])
    reader = EventLogReader(job_dir)
    assert len(read_all(reader)) == 2
    assert reader.stats.skipped_lines == 0


def test_ten_megabyte_line_is_parsed(job_dir):
    message = "x" * (10 * 1024 * 1024)
    write_log(
        job_dir,
        [
            ev("job_start", 1.0),
            ev("op_failed", 2.0, partition_id=0, operation_name="a", message=message),
            ev("job_failed", 3.0),
        ],
    )
    reader = EventLogReader(job_dir)
    events = read_all(reader)
    assert [event.event_type for event in events] == ["job_start", "op_failed", "job_failed"]
    assert text(events[1].message) == message
    assert reader.stats.skipped_lines == 0


def test_line_over_max_line_bytes_is_counted_and_neighbours_survive(job_dir):
    huge = ev("op_failed", 2.0, partition_id=0, message="y" * 2000)
    write_log(job_dir, [ev("job_start", 1.0), huge, ev("job_complete", 3.0)])
    reader = EventLogReader(job_dir, max_line_bytes=500)
    events = read_all(reader)
    assert [event.event_type for event in events] == ["job_start", "job_complete"]
    assert reader.stats.oversized_lines == 1
    assert reader.stats.malformed_lines == 0


def test_line_over_max_line_bytes_spanning_blocks_is_counted(job_dir):
    """A line longer than the read buffer is skipped without losing the next line."""
    huge = ev("op_failed", 2.0, partition_id=0, message="z" * (5 * 1024 * 1024))
    write_log(job_dir, [ev("job_start", 1.0), huge, ev("job_complete", 3.0)])
    reader = EventLogReader(job_dir, max_line_bytes=1024 * 1024)
    events = read_all(reader)
    assert [event.event_type for event in events] == ["job_start", "job_complete"]
    assert reader.stats.oversized_lines == 1


def test_empty_log_yields_nothing(job_dir):
    (job_dir / "events.jsonl").write_bytes(b"")
    reader = EventLogReader(job_dir)
    assert read_all(reader) == []
    assert reader.stats == ReadStats()
    assert [path.name for path in reader.files] == ["events.jsonl"]


# -- reading again from offsets ----------------------------------------------------------


def test_second_read_returns_exactly_the_appended_events(job_dir):
    write_log(job_dir, numbered(0, 100))
    reader = EventLogReader(job_dir)
    assert len(read_all(reader)) == 100
    append_log(job_dir, numbered(100, 1000))
    again = read_all(reader)
    assert timestamps(again) == [float(n) for n in range(100, 1100)]
    assert reader.stats.events == 1100


def test_read_without_appended_bytes_yields_nothing(job_dir):
    write_log(job_dir, numbered(0, 10))
    reader = EventLogReader(job_dir)
    read_all(reader)
    assert read_all(reader) == []


def test_torn_tail_completed_later_is_read_as_an_event(job_dir):
    write_log(job_dir, numbered(0, 3))
    complete = json.dumps(ev("op_complete", 3.0, partition_id=1, operation_name="a")).encode()
    with (job_dir / "events.jsonl").open("ab") as handle:
        handle.write(complete[:20])
    reader = EventLogReader(job_dir)
    assert len(read_all(reader)) == 3
    assert reader.stats.torn_tail_lines == 1
    with (job_dir / "events.jsonl").open("ab") as handle:
        handle.write(complete[20:] + b"\n")
    again = read_all(reader)
    assert [(event.event_type, event.timestamp) for event in again] == [("op_complete", 3.0)]
    assert reader.stats.torn_tail_lines == 0
    assert reader.stats.events == 4


def test_run_file_created_after_first_read_is_picked_up(job_dir):
    write_log(job_dir, numbered(0, 3), name="events_20250809_040053.jsonl")
    reader = EventLogReader(job_dir)
    assert len(read_all(reader)) == 3
    write_log(job_dir, numbered(10, 2), name="events_20250809_050053.jsonl")
    assert timestamps(read_all(reader)) == [10.0, 11.0]


def test_file_rewritten_shorter_is_read_from_the_start(job_dir):
    write_log(job_dir, numbered(0, 20))
    reader = EventLogReader(job_dir)
    read_all(reader)
    write_log(job_dir, numbered(50, 2))
    assert timestamps(read_all(reader)) == [50.0, 51.0]


# -- byte ranges -------------------------------------------------------------------------


def test_iter_range_reports_the_offset_after_the_last_line(job_dir):
    data = to_lines(numbered(0, 4))
    (job_dir / "events.jsonl").write_bytes(data)
    stats = ReadStats()
    blocks = list(iter_range(job_dir / "events.jsonl", 0, len(data), stats=stats))
    assert sum(len(events) for events, _ in blocks) == 4
    assert blocks[-1][1] == len(data)
    assert stats.bytes_read == len(data)


def test_iter_range_reads_only_the_lines_inside_the_range(job_dir):
    lines = [to_lines([event]) for event in numbered(0, 6)]
    (job_dir / "events.jsonl").write_bytes(b"".join(lines))
    start = len(lines[0]) + len(lines[1])
    end = start + len(lines[2]) + len(lines[3])
    events = [
        event
        for block, _ in iter_range(job_dir / "events.jsonl", start, end, stats=ReadStats())
        for event in block
    ]
    assert timestamps(events) == [2.0, 3.0]


def test_a_line_longer_than_the_read_buffer_is_read_whole(job_dir):
    long_message = "w" * (3 * BLOCK_BYTES + 17)
    write_log(
        job_dir,
        [ev("job_start", 1.0), ev("op_failed", 2.0, partition_id=0, message=long_message)]
        + [ev("partition_start", 3.0 + pid, partition_id=pid) for pid in range(3)],
    )
    reader = EventLogReader(job_dir)
    events = read_all(reader)
    assert [event.event_type for event in events][:2] == ["job_start", "op_failed"]
    assert text(events[1].message) == long_message
    assert len(events) == 5 and reader.stats.skipped_lines == 0


def test_events_kept_past_their_block_stay_intact_and_transient_ones_read_the_same(job_dir):
    """By default a block's events own their raw fields; ``transient=True`` decodes in
    place (valid until the next block), which a fold that consumes each block can use."""
    messages = [f"message {i} " + "m" * (i % 7) * 100 for i in range(3 * BLOCK_BYTES // 300)]
    write_log(
        job_dir,
        [ev("op_failed", float(i), partition_id=i, message=m) for i, m in enumerate(messages)],
    )
    path = job_dir / "events.jsonl"
    blocks = list(iter_range(path, stats=ReadStats()))
    assert len(blocks) > 2
    kept = [text(event.message) for events, _ in blocks for event in events]
    transient = [
        text(event.message)
        for events, _ in iter_range(path, stats=ReadStats(), transient=True)
        for event in events
    ]
    assert kept == transient == messages
