"""Hook configuration: from a dict (a YAML ``observability:`` section), env vars, defaults.

Precedence is argument > environment variable > default, as in
opentelemetry-python.  A bad environment value is logged and the default used;
a bad value in a config dict is an error that names the key.

Environment variables:

================================  =================================================
``OTEL_SERVICE_NAME``             service name on spans (default ``dj-observe``)
``OTEL_TRACES_EXPORTER``          ``otlp``, ``console``, ``file`` or ``none``
                                  (comma-separated for several)
``OTEL_EXPORTER_OTLP_ENDPOINT``   OTLP/HTTP base URL; ``/v1/traces`` is appended
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``  full OTLP/HTTP traces URL
``DJ_OBSERVE_METRICS_HOST``       address of the /metrics endpoint (``127.0.0.1``)
``DJ_OBSERVE_METRICS_PORT``       its port (unset: no endpoint; ``0``: any free port)
``DJ_OBSERVE_PUSHGATEWAY``        Pushgateway URL to push metrics to
``DJ_OBSERVE_PUSH_INTERVAL``      seconds between pushes (default 15)
``DJ_OBSERVE_METRICS_LINGER``     seconds /metrics stays up after the hook closes (0)
``DJ_OBSERVE_SIDECAR``            ``1``: metrics and spans made by a sidecar process
================================  =================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dj_observe.eventlog import is_event_log_name
from dj_observe.redact import DEFAULT_SECRET_KEYS

__all__ = ["ConfigError", "MetricsConfig", "ObservabilityConfig", "TracingConfig"]

TRACE_EXPORTERS = ("otlp", "console", "file", "none")
TRACES_FILE = "traces.otlp.jsonl"


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key."""


@dataclass
class MetricsConfig:
    """Where metrics go: an HTTP endpoint, a Pushgateway, or only the registry."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int | None = None
    pushgateway: str | None = None
    push_interval: float = 15.0
    linger: float = 0.0
    """Seconds the endpoint keeps serving after the hook closes, so that a scraper sees
    a short job's final values."""


@dataclass
class TracingConfig:
    """Where spans go: OTLP/HTTP, the console, and/or an OTLP-JSON file in the job dir."""

    enabled: bool = True
    exporter: list[str] = field(default_factory=lambda: ["file"])
    endpoint: str | None = None
    service_name: str = "dj-observe"
    file: str | None = None
    export_timeout: float = 10.0


@dataclass
class ObservabilityConfig:
    """Everything the hook needs to know."""

    work_dir: str | None = None
    job_id: str | None = None
    pipeline: str | None = None
    event_log: bool = True
    event_log_path: str | None = None
    background: bool = True
    """Fold and update metrics and spans on a background thread (the log is always
    written before ``emit`` returns); ``False`` does it all on the caller's thread."""
    sidecar: bool = False
    """Make metrics and spans in a process of their own that follows the event log
    (:mod:`dj_observe.sidecar`): the executor's process only writes the log."""
    redact_keys: list[str] = field(default_factory=lambda: list(DEFAULT_SECRET_KEYS))
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None = None, **overrides: Any
    ) -> ObservabilityConfig:
        """Build from a dict such as a YAML ``observability:`` section, then the environment."""
        merged = dict(data or {})
        merged.update({key: value for key, value in overrides.items() if value is not None})
        config = cls()
        _apply(config, merged, "observability")
        config._apply_environment(set(merged), merged)
        config._check()
        return config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], **overrides: Any) -> ObservabilityConfig:
        """Build from the ``observability:`` section of a YAML job config (if it has one)."""
        import yaml

        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(document, Mapping):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        return cls.from_dict(document.get("observability") or {}, **overrides)

    @property
    def log_path(self) -> Path | None:
        if self.event_log_path:
            return Path(self.event_log_path)
        return Path(self.work_dir) / "events.jsonl" if self.work_dir else None

    @property
    def traces_path(self) -> Path | None:
        if self.tracing.file:
            return Path(self.tracing.file)
        return Path(self.work_dir) / TRACES_FILE if self.work_dir else None

    def _apply_environment(self, given: set[str], data: Mapping[str, Any]) -> None:
        metrics = data.get("metrics") or {}
        tracing = data.get("tracing") or {}
        env = os.environ
        if "service_name" not in tracing and env.get("OTEL_SERVICE_NAME"):
            self.tracing.service_name = env["OTEL_SERVICE_NAME"]
        if "endpoint" not in tracing:
            endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            if not endpoint and base:
                endpoint = base.rstrip("/") + "/v1/traces"
            if endpoint:
                self.tracing.endpoint = endpoint
        if "exporter" not in tracing:
            names = env.get("OTEL_TRACES_EXPORTER")
            if names:
                chosen = [name.strip() for name in names.split(",") if name.strip()]
                bad = [name for name in chosen if name not in TRACE_EXPORTERS]
                if bad:
                    _warn("dj-observe: ignoring OTEL_TRACES_EXPORTER={!r}", names)
                else:
                    self.tracing.exporter = chosen
            elif self.tracing.endpoint and "otlp" not in self.tracing.exporter:
                self.tracing.exporter = [*self.tracing.exporter, "otlp"]
        if "sidecar" not in given and env.get("DJ_OBSERVE_SIDECAR"):
            self.sidecar = env["DJ_OBSERVE_SIDECAR"].strip().lower() in ("1", "true", "yes", "on")
        if "host" not in metrics and env.get("DJ_OBSERVE_METRICS_HOST"):
            self.metrics.host = env["DJ_OBSERVE_METRICS_HOST"]
        if "port" not in metrics:
            self.metrics.port = _env_number("DJ_OBSERVE_METRICS_PORT", int, self.metrics.port)
        if "pushgateway" not in metrics and env.get("DJ_OBSERVE_PUSHGATEWAY"):
            self.metrics.pushgateway = env["DJ_OBSERVE_PUSHGATEWAY"]
        if "linger" not in metrics:
            self.metrics.linger = _env_number(
                "DJ_OBSERVE_METRICS_LINGER", float, self.metrics.linger
            )
        if "push_interval" not in metrics:
            self.metrics.push_interval = _env_number(
                "DJ_OBSERVE_PUSH_INTERVAL", float, self.metrics.push_interval
            )
        _say_overridden(metrics, tracing, given)

    def _check(self) -> None:
        if self.sidecar and (not self.event_log or self.log_path is None):
            raise ConfigError(
                "observability.sidecar: the sidecar follows the event log; "
                "it needs event_log: true and a work_dir"
            )
        if self.sidecar and self.log_path is not None and not is_event_log_name(self.log_path.name):
            raise ConfigError(
                "observability.sidecar: the sidecar follows events.jsonl or events_<run>.jsonl, "
                f"not {self.log_path.name}"
            )
        port = self.metrics.port
        if port is not None and not 0 <= port <= 65535:
            raise ConfigError(f"observability.metrics.port: {port} is not a TCP port")
        if self.metrics.linger < 0:
            raise ConfigError("observability.metrics.linger: must not be negative")
        if self.metrics.push_interval <= 0:
            raise ConfigError("observability.metrics.push_interval: must be positive")
        bad = [name for name in self.tracing.exporter if name not in TRACE_EXPORTERS]
        if bad:
            raise ConfigError(
                f"observability.tracing.exporter: unknown {bad[0]!r} "
                f"(choose from {', '.join(TRACE_EXPORTERS)})"
            )


_OVERRIDABLE = (  # (section, key, environment variable)
    ("metrics", "host", "DJ_OBSERVE_METRICS_HOST"),
    ("metrics", "port", "DJ_OBSERVE_METRICS_PORT"),
    ("metrics", "pushgateway", "DJ_OBSERVE_PUSHGATEWAY"),
    ("metrics", "linger", "DJ_OBSERVE_METRICS_LINGER"),
    ("metrics", "push_interval", "DJ_OBSERVE_PUSH_INTERVAL"),
    ("tracing", "endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    ("tracing", "endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ("tracing", "exporter", "OTEL_TRACES_EXPORTER"),
    ("tracing", "service_name", "OTEL_SERVICE_NAME"),
    ("", "sidecar", "DJ_OBSERVE_SIDECAR"),
)
_said: set[str] = set()


def _say_overridden(metrics: Any, tracing: Any, given: set[str]) -> None:
    """Once per variable: a setting from the environment that the config overrides."""
    sections = {"metrics": metrics, "tracing": tracing, "": given}
    for section, key, variable in _OVERRIDABLE:
        if os.environ.get(variable) and variable not in _said:
            keys = sections[section]
            if isinstance(keys, (set, Mapping)) and key in keys:
                _said.add(variable)
                where = f"observability.{section + '.' if section else ''}{key}"
                _warn("dj-observe: {} is set, but the config's {} wins", variable, where)


def _env_number(name: str, kind: type, default: Any) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        _warn("dj-observe: ignoring {}={!r}: not a number", name, raw)
        return default


def _apply(target: Any, data: Mapping[str, Any], where: str) -> None:
    """Set dataclass fields from ``data``, checking names and types."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {item.name: item for item in fields(target)}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
        current = getattr(target, key)
        if isinstance(current, (MetricsConfig, TracingConfig)):
            _apply(current, value or {}, f"{where}.{key}")
            continue
        setattr(target, key, _coerce(value, current, key, f"{where}.{key}"))


def _coerce(value: Any, current: Any, key: str, where: str) -> Any:
    if key == "exporter":
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise ConfigError(f"{where}: expected a name or a list of names")
    if key == "redact_keys":
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise ConfigError(f"{where}: expected a list of key names")
    if value is None:
        return None
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if key == "port" or isinstance(current, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if isinstance(current, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, (str, os.PathLike)):
        return str(value)
    raise ConfigError(f"{where}: expected a string, got {value!r}")


def _warn(message: str, *args: Any) -> None:
    from loguru import logger  # imported when needed: it costs the CLI's start-up ~20 ms

    logger.warning(message, *args)
