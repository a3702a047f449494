"""Job logs: layout, per-level routing, the event log, rotation and re-configuration."""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from loguru import logger

from dj_observe.events import EventType
from dj_observe.logging import (
    active_log_files,
    close_logger,
    event_logger,
    format_event_line,
    setup_logger,
)

LEVEL_FILES = {"DEBUG": "log_DEBUG.txt", "WARNING": "log_WARNING.txt", "ERROR": "log_ERROR.txt"}


@pytest.fixture(autouse=True)
def _close() -> Iterator[None]:
    yield
    close_logger()


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_layout_matches_the_spec(tmp_path: Path) -> None:
    logs = setup_logger(tmp_path / "job", console=False)

    assert logs == tmp_path / "job" / "logs"
    assert sorted(path.name for path in logs.iterdir()) == [
        "events.log",
        "log.txt",
        "log_DEBUG.txt",
        "log_ERROR.txt",
        "log_WARNING.txt",
    ]
    files = active_log_files()
    assert files is not None
    assert (files.main, files.debug, files.warning, files.error, files.events) == (
        logs / "log.txt",
        logs / "log_DEBUG.txt",
        logs / "log_WARNING.txt",
        logs / "log_ERROR.txt",
        logs / "events.log",
    )
    close_logger()
    assert active_log_files() is None


def test_custom_filename_names_the_level_files(tmp_path: Path) -> None:
    logs = setup_logger(tmp_path, filename="run.log", console=False)
    assert {path.name for path in logs.iterdir()} == {
        "run.log",
        "run_DEBUG.log",
        "run_WARNING.log",
        "run_ERROR.log",
        "events.log",
    }


def test_each_level_file_holds_only_its_level(tmp_path: Path) -> None:
    logs = setup_logger(tmp_path, level="DEBUG", console=False)
    for level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        logger.log(level, "marker-{}", level)
    close_logger()

    main = read(logs / "log.txt")
    for level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        assert f"marker-{level}" in main
    for level, name in LEVEL_FILES.items():
        lines = read(logs / name).splitlines()
        assert len(lines) == 1
        assert f"| {level}" in lines[0]
        assert lines[0].endswith(f"marker-{level}")


def test_level_threshold_applies_to_main_and_level_files(tmp_path: Path) -> None:
    logs = setup_logger(tmp_path, level="WARNING", console=False)
    logger.debug("marker-debug")
    logger.info("marker-info")
    logger.warning("marker-warning")
    close_logger()

    main = read(logs / "log.txt")
    assert "marker-warning" in main
    assert "marker-info" not in main
    assert "marker-debug" not in main
    assert read(logs / "log_DEBUG.txt") == ""
    assert "marker-warning" in read(logs / "log_WARNING.txt")


def test_events_log_receives_only_event_records(tmp_path: Path) -> None:
    logs = setup_logger(tmp_path, level="ERROR", console=False)
    event = {
        "event_type": "op_complete",
        "timestamp": 1_700_000_000.25,
        "partition_id": 3,
        "operation_name": "clean_links_mapper",
        "operation_idx": 0,
        "duration": 1.23456,
        "message": "Operation clean_links_mapper completed",
    }
    logger.error("not an event")
    event_logger().info(format_event_line(event))
    event_logger().info(format_event_line({"event_type": "job_complete"}))
    close_logger()

    assert read(logs / "events.log").splitlines() == [
        format_event_line(event),
        "EVENT[job_complete]",
    ]
    # Event records are ordinary records too: the main log applies its level to them.
    main = read(logs / "log.txt")
    assert "not an event" in main
    assert "EVENT[" not in main


def test_format_event_line_in_data_juicer_order() -> None:
    timestamp = 1_700_000_000.5
    line = format_event_line(
        {
            "event_type": EventType.OP_FAILED,
            "timestamp": timestamp,
            "partition_id": 2,
            "operation_name": "text_length_filter",
            "operation_idx": 4,
            "duration": 0.5,
            "message": "Operation failed",
            "error_message": "boom\nTraceback (most recent call last):",
            "checkpoint_path": "/work/job/checkpoints/partition_000002/op_003.parquet",
            "output_path": "/work/job/out/result.jsonl",
            "metadata": {"status": "failed", "retry_count": 1, "ignored": True},
            "job_id": "not shown",
        }
    )
    assert line == (
        f"EVENT[op_failed] | TIME[{datetime.fromtimestamp(timestamp).isoformat()}] | "
        "PARTITION[2] | OP[text_length_filter] | OP_IDX[4] | DURATION[0.500s] | "
        "MSG[Operation failed] | ERROR[boom\\nTraceback (most recent call last):] | "
        'CHECKPOINT[op_003.parquet] | OUTPUT[result.jsonl] | META[{"status": "failed", '
        '"retry_count": 1}]'
    )
    assert "\n" not in line


def test_format_event_line_omits_absent_parts() -> None:
    assert format_event_line({"event_type": "job_start"}) == "EVENT[job_start]"
    assert format_event_line({"event_type": "x", "partition_id": 0, "operation_idx": 0}) == (
        "EVENT[x] | PARTITION[0] | OP_IDX[0]"
    )
    assert format_event_line({"event_type": "x", "timestamp": "2025-08-09T04:00:53"}) == (
        "EVENT[x] | TIME[2025-08-09T04:00:53]"
    )


def test_rotation_compresses_and_keeps_backup_count(tmp_path: Path) -> None:
    logs = setup_logger(tmp_path, max_log_size_mb=0.001, backup_count=2, console=False)
    for index in range(200):
        logger.info("line {:04d} {}", index, "x" * 40)
        event_logger().info(format_event_line({"event_type": "op_start", "partition_id": index}))
    close_logger()

    for current, pattern in (("log.txt", "log.*.txt*"), ("events.log", "events.*.log*")):
        rotated = sorted(logs.glob(pattern))
        assert len(rotated) == 2, rotated
        assert all(path.suffix == ".gz" for path in rotated)
        assert (logs / current).stat().st_size <= 1000
        for path in rotated:
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                assert handle.read().strip()
    assert "line 0199" in read(logs / "log.txt")
    assert "PARTITION[199]" in read(logs / "events.log")
    # The per-level files saw nothing, so they did not rotate.
    assert sorted(path.name for path in logs.glob("log_*")) == sorted(LEVEL_FILES.values())


def test_setting_up_twice_does_not_duplicate_lines(tmp_path: Path) -> None:
    setup_logger(tmp_path / "first", console=False)
    logs = setup_logger(tmp_path / "second", console=False)
    logs = setup_logger(tmp_path / "second", console=False)
    logger.warning("once")
    event_logger().info("EVENT[once]")
    close_logger()

    assert read(logs / "log.txt").count("once") == 2  # the warning and the event line
    assert read(logs / "log_WARNING.txt").count("once") == 1
    assert read(logs / "events.log").splitlines() == ["EVENT[once]"]
    assert "once" not in read(tmp_path / "first" / "logs" / "log.txt")


def test_console_replaces_the_default_handler_and_spares_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured: list[str] = []
    foreign = logger.add(captured.append, level="INFO", format="{message}")
    try:
        console = io.StringIO()
        monkeypatch.setattr(sys, "stderr", console)
        setup_logger(tmp_path, console=True)
        setup_logger(tmp_path, console=True)
        logger.info("console marker")
        monkeypatch.undo()
        close_logger()
        logger.info("after close")
    finally:
        logger.remove(foreign)

    assert console.getvalue().count("console marker") == 1
    assert "after close" not in console.getvalue()
    assert captured == ["console marker\n", "after close\n"]
