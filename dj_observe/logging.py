"""Job logs with loguru: a main log, per-level logs and a human-readable event log.

:func:`setup_logger` writes the spec's "Log Structure" under ``<save_dir>/logs/``::

    log.txt          every record at ``level`` and above
    log_DEBUG.txt    DEBUG records only (empty unless ``level`` admits DEBUG)
    log_WARNING.txt  WARNING records only
    log_ERROR.txt    ERROR records only (as Data-Juicer: CRITICAL stays in log.txt)
    events.log       records bound with ``event=True``: one line per event

Every file rotates by size, keeps ``backup_count`` rotated files and gzips them.
The module owns only the handlers it adds; calling :func:`setup_logger` again replaces
them, and :func:`close_logger` removes them.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from loguru import Logger, Record

__all__ = [
    "LOG_FORMAT",
    "LogFiles",
    "active_log_files",
    "close_logger",
    "event_logger",
    "format_event_line",
    "setup_logger",
]

LOG_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}"
"""The line format of the main and per-level log files."""
_CONSOLE_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan>:<cyan>{line}</cyan> - <level>{message}</level>"
)
_EVENT_META_KEYS = ("status", "retry_count", "error_type", "operation_class")
"""The metadata keys Data-Juicer shows in an event line's ``META[...]`` part."""


@dataclass(frozen=True)
class LogFiles:
    """The files written by the active :func:`setup_logger` configuration."""

    logs_dir: Path
    main: Path
    debug: Path
    warning: Path
    error: Path
    events: Path


_lock = threading.Lock()
_handler_ids: list[int] = []
_active: LogFiles | None = None
_default_console_id: int | None = 0
"""Loguru's default stderr handler, or the stand-in restored by :func:`close_logger`."""
_replaced_default_console = False


def _is_event(record: Record) -> bool:
    return bool(record["extra"].get("event"))


def _event_format(record: Record) -> str:
    """The message alone: an event line carries its own time, and never a traceback."""
    return "{message}\n"


def _exact_level(name: str) -> Callable[[Record], bool]:
    def accept(record: Record) -> bool:
        return record["level"].name == name

    return accept


def setup_logger(
    save_dir: str | Path,
    filename: str = "log.txt",
    max_log_size_mb: float = 100,
    backup_count: int = 5,
    level: str | int = "INFO",
    *,
    console: bool = True,
) -> Path:
    """Log to ``<save_dir>/logs/`` (see the module docstring); returns that directory.

    ``max_log_size_mb`` is the size at which each file rotates (loguru's ``"N MB"``,
    10**6 bytes), ``backup_count`` the number of rotated, gzipped files kept per log.
    Records go to ``log.txt`` and the console from ``level`` up (event records stay off
    the console). ``events.log`` takes every event record (:func:`event_logger`)
    whatever ``level`` is. With
    ``console=True`` loguru's default stderr handler is replaced by one at ``level``;
    handlers added by other code are left alone.
    """
    global _active
    min_level = logger.level(level).no if isinstance(level, str) else int(level)
    logs_dir = Path(save_dir) / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    main = logs_dir / filename
    files = LogFiles(
        logs_dir=logs_dir,
        main=main,
        debug=main.with_name(f"{main.stem}_DEBUG{main.suffix}"),
        warning=main.with_name(f"{main.stem}_WARNING{main.suffix}"),
        error=main.with_name(f"{main.stem}_ERROR{main.suffix}"),
        events=logs_dir / "events.log",
    )
    file_options: dict[str, Any] = {
        "rotation": f"{max_log_size_mb} MB",
        "retention": backup_count,
        "compression": "gz",
        "encoding": "utf-8",
        "diagnose": False,
    }
    with _lock:
        _remove_own_handlers()
        _active = None
        if console:
            _replace_default_console()
            _handler_ids.append(
                logger.add(
                    sys.stderr,
                    level=min_level,
                    format=_CONSOLE_FORMAT,
                    filter=lambda record: not _is_event(record),
                )
            )
        _handler_ids.append(
            logger.add(files.main, level=min_level, format=LOG_FORMAT, **file_options)
        )
        for path, name in (
            (files.debug, "DEBUG"),
            (files.warning, "WARNING"),
            (files.error, "ERROR"),
        ):
            _handler_ids.append(
                logger.add(
                    path,
                    level=min_level,
                    filter=_exact_level(name),
                    format=LOG_FORMAT,
                    **file_options,
                )
            )
        _handler_ids.append(
            logger.add(
                files.events, level=0, filter=_is_event, format=_event_format, **file_options
            )
        )
        _active = files
    return logs_dir


def close_logger() -> None:
    """Remove the handlers :func:`setup_logger` added (flushing and closing its files).

    If it had replaced loguru's default stderr handler, a plain stderr handler is put back.
    """
    global _active, _default_console_id, _replaced_default_console
    with _lock:
        _remove_own_handlers()
        _active = None
        if _replaced_default_console:
            _default_console_id = logger.add(sys.stderr)
            _replaced_default_console = False


def active_log_files() -> LogFiles | None:
    """The files of the current :func:`setup_logger` configuration, or ``None``."""
    return _active


def event_logger() -> Logger:
    """A logger whose records go to ``events.log`` (and, as INFO etc., to the main log)."""
    return logger.bind(event=True)


def format_event_line(event: Mapping[str, Any]) -> str:
    """One human-readable line for an event dict, in Data-Juicer's layout.

    ``EVENT[type] | TIME[iso] | PARTITION[p] | OP[name] | OP_IDX[i] | DURATION[1.234s] |
    MSG[...] | ERROR[...] | CHECKPOINT[file] | OUTPUT[file] | META[{...}]``; a part whose
    field is absent is left out. ``TIME`` is the local time of the epoch ``timestamp``.
    Line breaks inside values are written as ``\\n`` so the event stays on one line.
    """
    event_type = event.get("event_type")
    if isinstance(event_type, Enum):
        event_type = event_type.value
    parts = [f"EVENT[{event_type}]"]
    timestamp = event.get("timestamp")
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        try:
            parts.append(f"TIME[{datetime.fromtimestamp(timestamp).isoformat()}]")
        except (OverflowError, OSError, ValueError):
            parts.append(f"TIME[{timestamp}]")
    elif timestamp is not None:
        parts.append(f"TIME[{timestamp}]")
    for label, key in (("PARTITION", "partition_id"), ("OP", "operation_name")):
        if event.get(key) is not None:
            parts.append(f"{label}[{event[key]}]")
    if event.get("operation_idx") is not None:
        parts.append(f"OP_IDX[{event['operation_idx']}]")
    duration = event.get("duration")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        parts.append(f"DURATION[{duration:.3f}s]")
    for label, key in (("MSG", "message"), ("ERROR", "error_message")):
        if event.get(key):
            parts.append(f"{label}[{event[key]}]")
    for label, key in (("CHECKPOINT", "checkpoint_path"), ("OUTPUT", "output_path")):
        if event.get(key):
            parts.append(f"{label}[{Path(str(event[key])).name}]")
    metadata = event.get("metadata")
    if isinstance(metadata, Mapping):
        meta = {key: metadata[key] for key in _EVENT_META_KEYS if key in metadata}
        if meta:
            parts.append(f"META[{json.dumps(meta, default=str)}]")
    return " | ".join(parts).replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def _remove_own_handlers() -> None:
    """Remove the handlers this module added; one already removed elsewhere is skipped."""
    for handler_id in _handler_ids:
        try:
            logger.remove(handler_id)
        except ValueError:
            continue
    _handler_ids.clear()


def _replace_default_console() -> None:
    """Remove loguru's default stderr handler (or our stand-in for it) once."""
    global _default_console_id, _replaced_default_console
    if _default_console_id is None:
        return
    try:
        logger.remove(_default_console_id)
        _replaced_default_console = True
    except ValueError:
        pass
    _default_console_id = None
