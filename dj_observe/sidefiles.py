"""Safe reading of the files beside a job's event log.

``job_summary.json``, ``dag_execution_plan.json``, ``checkpoints/partitioning_info.json``
and Data-Juicer's ``cli.yaml`` are read only if they are regular files (a FIFO would
hang the reader, a link to ``/dev/zero`` would read until memory runs out) and no
larger than a cap; nesting too deep to decode is an error like any other.  Every
failure is a :class:`SideFileError` whose message says why, for
``metadata.side_file_errors``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = [
    "CLI_ARGUMENTS",
    "MAX_PLAN_BYTES",
    "MAX_SIDE_FILE_BYTES",
    "SideFileError",
    "command_line_config",
    "read_side_file",
]

MAX_SIDE_FILE_BYTES = 64 << 20
"""A side file larger than this (64 MiB) is not read."""
MAX_PLAN_BYTES = 1 << 30
"""The DAG plan's cap (1 GiB): Data-Juicer writes a node per partition and op."""
MAX_CLI_BYTES = 1 << 20
"""``cli.yaml`` holds one command line; more than 1 MiB is not one."""
CLI_ARGUMENTS = "cli.yaml"
"""Data-Juicer's record of the command line in the job directory (not a config)."""


class SideFileError(Exception):
    """A side file that could not be used, and why (``name: reason``)."""


def read_side_file(path: Path, max_bytes: int = MAX_SIDE_FILE_BYTES) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``.

    Raises :class:`FileNotFoundError` when there is no such file, and
    :class:`SideFileError` when it cannot be used.
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SideFileError(f"{path.name}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SideFileError(f"{path.name}: not a regular file")
        if info.st_size > max_bytes:
            raise SideFileError(f"{path.name}: larger than {max_bytes:,} bytes")
        chunks = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:  # it grew past the cap while being read
            raise SideFileError(f"{path.name}: larger than {max_bytes:,} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise SideFileError(f"{path.name}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def command_line_config(job_dir: str | os.PathLike[str]) -> tuple[str | None, str | None]:
    """The ``--config`` the job was started with, from ``cli.yaml``: ``(config, error)``.

    ``(None, None)`` when the job directory has no ``cli.yaml`` or it names no config.
    """
    path = Path(job_dir, CLI_ARGUMENTS)
    try:
        content = read_side_file(path, MAX_CLI_BYTES)
    except FileNotFoundError:
        return None, None
    except SideFileError as exc:
        return None, str(exc)
    import yaml  # only for a job that has the file: a poll of one without it skips the import

    try:
        data = yaml.safe_load(content)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "invalid YAML"
        return None, f"{path.name}: {reason}"
    arguments = data.get("arguments") if isinstance(data, dict) else None
    if not isinstance(arguments, list) or "--config" not in arguments:
        return None, None
    index = arguments.index("--config") + 1
    config = arguments[index] if index < len(arguments) else None
    return (config, None) if isinstance(config, str) else (None, None)
