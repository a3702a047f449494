"""Job configs: Data-Juicer-style YAML, checked strictly.

Unknown keys and wrong types are errors that name the key (``partition.size:
expected an integer, got "ten"``).  The ``observability:`` section goes to
:class:`dj_observe.config.ObservabilityConfig`, which checks it the same way.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from dj_observe.config import ConfigError, ObservabilityConfig
from dj_observe.runner.ops import OpConfigError, build_op

__all__ = [
    "CheckpointConfig",
    "ConfigError",
    "JobConfig",
    "PartitionConfig",
    "load_config",
]

DEMO_SCHEME = "demo://"
"""``dataset_path: demo://40000`` is a generated demo dataset of that many rows."""


class PartitionConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    mode: Literal["auto", "manual"] = "manual"
    size: int = 10_000
    """Rows per partition (manual mode)."""
    max_size_mb: float = 128.0


class CheckpointConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True
    strategy: Literal["every_op", "every_partition", "every_n_ops", "disabled"] = "every_op"
    n_ops: int = 1


class ResourceOptimization(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    auto_configure: bool = False


class EventLogging(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True


class JobConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A job: where the data is, how to cut it, what to run on it, what to observe."""

    project_name: str = "dj-observe"
    dataset_path: str
    export_path: str
    work_dir: str = "./outputs"
    job_id: str | None = None
    np: int = 2
    text_key: str = "text"
    partition: PartitionConfig = msgspec.field(default_factory=PartitionConfig)
    checkpoint: CheckpointConfig = msgspec.field(default_factory=CheckpointConfig)
    resource_optimization: ResourceOptimization = msgspec.field(
        default_factory=ResourceOptimization
    )
    event_logging: EventLogging = msgspec.field(default_factory=EventLogging)
    observability: dict[str, Any] = msgspec.field(default_factory=dict)
    on_partition_failure: Literal["fail", "continue"] = "fail"
    retries: int = 0
    process: list[dict[str, dict[str, Any] | None]]
    source: str | None = None
    """The file this config was read from (set by :func:`load_config`)."""

    def __post_init__(self) -> None:
        for key, value, low in (
            ("np", self.np, 1),
            ("retries", self.retries, 0),
            ("partition.size", self.partition.size, 1),
            ("checkpoint.n_ops", self.checkpoint.n_ops, 1),
        ):
            if value < low:
                raise ConfigError(f"{key}: must be at least {low}, got {value}")
        if not self.process:
            raise ConfigError("process: the pipeline needs at least one op")
        for index, entry in enumerate(self.process):
            if len(entry) != 1:
                raise ConfigError(
                    f"process[{index}]: each op is a mapping of one op name to its arguments"
                )

    @property
    def ops(self) -> list[tuple[str, dict[str, Any]]]:
        """``(op name, arguments)`` in pipeline order."""
        return [(name, dict(args or {})) for entry in self.process for name, args in entry.items()]

    @property
    def demo_rows(self) -> int | None:
        """Rows of the generated demo dataset, when ``dataset_path`` asks for one."""
        if not self.dataset_path.startswith(DEMO_SCHEME):
            return None
        return int(self.dataset_path[len(DEMO_SCHEME) :])

    def observability_config(self, work_dir: Path, job_id: str) -> ObservabilityConfig:
        overrides = dict(self.observability)
        overrides.setdefault("event_log", self.event_logging.enabled)
        return ObservabilityConfig.from_dict(
            overrides, work_dir=str(work_dir), job_id=job_id, pipeline=self.project_name
        )


_PATH = re.compile(r"at `\$(.*)`")


def _where(message: str) -> tuple[str, str]:
    """msgspec's ``... - at `$.partition.size``` -> ("partition.size", "...")."""
    found = _PATH.search(message)
    path = found.group(1).lstrip(".") if found else ""
    text = _PATH.sub("", message).rstrip(" -")
    return path, text


def parse_config(data: Any, source: str | None = None) -> JobConfig:
    """Check a decoded YAML document and build the config (errors name the key)."""
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping of keys to values")
    try:
        config = msgspec.convert({**data, "source": source}, JobConfig)
    except msgspec.ValidationError as exc:
        path, text = _where(str(exc))
        unknown = re.search(r"unknown field `([^`]+)`", text)
        if unknown:
            key = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
            raise ConfigError(f"{key}: unknown key") from None
        missing = re.search(r"missing required field `([^`]+)`", text)
        if missing:
            key = f"{path}.{missing.group(1)}" if path else missing.group(1)
            raise ConfigError(f"{key}: required") from None
        raise ConfigError(f"{path or 'config'}: {text[0].lower()}{text[1:]}") from None
    if config.dataset_path.startswith(DEMO_SCHEME):
        rows = config.dataset_path[len(DEMO_SCHEME) :]
        if not rows.isdigit() or int(rows) < 1:
            raise ConfigError(f"dataset_path: {DEMO_SCHEME}ROWS needs a positive row count")
    elif not Path(config.dataset_path).is_file():
        raise ConfigError(f"dataset_path: {config.dataset_path} does not exist")
    for index, (name, args) in enumerate(config.ops):
        try:
            build_op(name, {"text_key": config.text_key, **args})
        except OpConfigError as exc:
            raise ConfigError(f"process[{index}]: {exc}") from None
    config.observability_config(Path(config.work_dir), "check")  # fail early on a bad section
    return config


def load_config(path: str | os.PathLike[str]) -> JobConfig:
    """Read and check a YAML job config."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    return parse_config(data, str(file))
