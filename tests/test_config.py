"""Hook configuration: dict / YAML, environment variables, defaults and their precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import drive_job, scrape

from dj_observe.config import ConfigError, ObservabilityConfig
from dj_observe.hook import ObservabilityHook
from dj_observe.redact import DEFAULT_SECRET_KEYS

ENVIRONMENT = (
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "DJ_OBSERVE_METRICS_HOST",
    "DJ_OBSERVE_METRICS_PORT",
    "DJ_OBSERVE_PUSHGATEWAY",
    "DJ_OBSERVE_PUSH_INTERVAL",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def test_defaults():
    config = ObservabilityConfig.from_dict({})

    assert (config.event_log, config.background) == (True, True)
    assert (config.metrics.enabled, config.metrics.host, config.metrics.port) == (
        True,
        "127.0.0.1",
        None,
    )
    assert (config.metrics.pushgateway, config.metrics.push_interval) == (None, 15.0)
    assert (config.tracing.enabled, config.tracing.exporter, config.tracing.endpoint) == (
        True,
        ["file"],
        None,
    )
    assert config.tracing.service_name == "dj-observe"
    assert config.redact_keys == list(DEFAULT_SECRET_KEYS)


def test_values_from_a_dict():
    config = ObservabilityConfig.from_dict(
        {
            "work_dir": "/jobs/j1",
            "background": False,
            "metrics": {"port": 9100, "host": "0.0.0.0", "push_interval": 5},
            "tracing": {"exporter": ["otlp", "file"], "endpoint": "http://c:4318/v1/traces"},
        }
    )

    assert (config.work_dir, config.background) == ("/jobs/j1", False)
    assert (config.metrics.port, config.metrics.host, config.metrics.push_interval) == (
        9100,
        "0.0.0.0",
        5.0,
    )
    assert config.tracing.exporter == ["otlp", "file"]
    assert config.tracing.endpoint == "http://c:4318/v1/traces"


def test_exporters_as_a_comma_separated_string():
    config = ObservabilityConfig.from_dict({"tracing": {"exporter": "otlp, console"}})

    assert config.tracing.exporter == ["otlp", "console"]


def test_keyword_overrides_win_over_the_dict():
    config = ObservabilityConfig.from_dict(
        {"work_dir": "/a", "job_id": "from-dict"}, work_dir="/b", job_id="j2", pipeline="p"
    )

    assert (config.work_dir, config.job_id, config.pipeline) == ("/b", "j2", "p")


def test_log_and_traces_paths_follow_the_work_dir():
    config = ObservabilityConfig.from_dict({"work_dir": "/jobs/j1"})

    assert config.log_path == Path("/jobs/j1/events.jsonl")
    assert config.traces_path == Path("/jobs/j1/traces.otlp.jsonl")


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"colour": "red"}, "observability.colour"),
        ({"metrics": {"prot": 9100}}, "observability.metrics.prot"),
        ({"tracing": {"exporters": "otlp"}}, "observability.tracing.exporters"),
    ],
)
def test_unknown_key_is_an_error_naming_it(data, named):
    with pytest.raises(ConfigError, match=rf"^{named}: unknown key"):
        ObservabilityConfig.from_dict(data)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"metrics": {"port": "abc"}}, "observability.metrics.port"),
        ({"metrics": {"port": 91.5}}, "observability.metrics.port"),
        ({"metrics": {"port": True}}, "observability.metrics.port"),
        ({"metrics": {"push_interval": "fast"}}, "observability.metrics.push_interval"),
        ({"metrics": {"enabled": "yes"}}, "observability.metrics.enabled"),
        ({"background": 1}, "observability.background"),
        ({"tracing": {"exporter": 5}}, "observability.tracing.exporter"),
        ({"tracing": {"endpoint": 4318}}, "observability.tracing.endpoint"),
        ({"redact_keys": "password"}, "observability.redact_keys"),
        ({"metrics": 9100}, "observability.metrics"),
    ],
)
def test_wrong_type_is_an_error_naming_the_key(data, named):
    with pytest.raises(ConfigError, match=rf"^{named}"):
        ObservabilityConfig.from_dict(data)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"metrics": {"port": 70000}}, "observability.metrics.port"),
        ({"metrics": {"port": -1}}, "observability.metrics.port"),
        ({"metrics": {"push_interval": 0}}, "observability.metrics.push_interval"),
        ({"tracing": {"exporter": "zipkin"}}, "observability.tracing.exporter"),
    ],
)
def test_bad_value_is_an_error_naming_the_key(data, named):
    with pytest.raises(ConfigError, match=rf"^{named}"):
        ObservabilityConfig.from_dict(data)


def test_the_hook_rejects_a_bad_config():
    with pytest.raises(ConfigError, match=r"observability\.metrics\.port"):
        ObservabilityHook({"metrics": {"port": "abc"}})


# -- environment variables -------------------------------------------------------------------------


def test_otel_service_name(monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "my-job")

    assert ObservabilityConfig.from_dict({}).tracing.service_name == "my-job"


def test_otel_exporter_otlp_endpoint_adds_otlp_with_the_traces_path(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")

    tracing = ObservabilityConfig.from_dict({}).tracing
    assert tracing.endpoint == "http://collector:4318/v1/traces"
    assert tracing.exporter == ["file", "otlp"]


def test_otel_exporter_otlp_endpoint_with_a_trailing_slash(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")

    assert ObservabilityConfig.from_dict({}).tracing.endpoint == "http://collector:4318/v1/traces"


def test_otel_exporter_otlp_traces_endpoint_is_used_as_is(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/custom")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4318")

    tracing = ObservabilityConfig.from_dict({}).tracing
    assert tracing.endpoint == "http://collector:4318/custom"
    assert "otlp" in tracing.exporter


@pytest.mark.parametrize(
    ("value", "expected"),
    [("console", ["console"]), ("otlp,file", ["otlp", "file"]), ("none", ["none"])],
)
def test_otel_traces_exporter(monkeypatch, value, expected):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)

    assert ObservabilityConfig.from_dict({}).tracing.exporter == expected


def test_bad_otel_traces_exporter_is_logged_and_ignored(monkeypatch, warnings_logged):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")

    assert ObservabilityConfig.from_dict({}).tracing.exporter == ["file"]
    assert any("OTEL_TRACES_EXPORTER" in message for message in warnings_logged)


def test_metrics_port_from_the_environment(monkeypatch):
    monkeypatch.setenv("DJ_OBSERVE_METRICS_PORT", "9100")

    assert ObservabilityConfig.from_dict({}).metrics.port == 9100


def test_bad_metrics_port_in_the_environment_is_logged_and_ignored(monkeypatch, warnings_logged):
    monkeypatch.setenv("DJ_OBSERVE_METRICS_PORT", "abc")

    assert ObservabilityConfig.from_dict({}).metrics.port is None
    assert any(
        "DJ_OBSERVE_METRICS_PORT" in message and "'abc'" in message for message in warnings_logged
    )


def test_metrics_host_from_the_environment(monkeypatch):
    monkeypatch.setenv("DJ_OBSERVE_METRICS_HOST", "0.0.0.0")

    assert ObservabilityConfig.from_dict({}).metrics.host == "0.0.0.0"


def test_pushgateway_from_the_environment(monkeypatch):
    monkeypatch.setenv("DJ_OBSERVE_PUSHGATEWAY", "http://gateway:9091")
    monkeypatch.setenv("DJ_OBSERVE_PUSH_INTERVAL", "2.5")

    metrics = ObservabilityConfig.from_dict({}).metrics
    assert (metrics.pushgateway, metrics.push_interval) == ("http://gateway:9091", 2.5)


def test_bad_push_interval_in_the_environment_is_ignored(monkeypatch, warnings_logged):
    monkeypatch.setenv("DJ_OBSERVE_PUSH_INTERVAL", "often")

    assert ObservabilityConfig.from_dict({}).metrics.push_interval == 15.0
    assert any("DJ_OBSERVE_PUSH_INTERVAL" in message for message in warnings_logged)


@pytest.mark.parametrize(
    ("variable", "value", "data", "read", "expected"),
    [
        (
            "OTEL_SERVICE_NAME",
            "from-env",
            {"tracing": {"service_name": "from-arg"}},
            lambda c: c.tracing.service_name,
            "from-arg",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://env:4318",
            {"tracing": {"endpoint": "http://arg:4318/v1/traces"}},
            lambda c: c.tracing.endpoint,
            "http://arg:4318/v1/traces",
        ),
        (
            "OTEL_TRACES_EXPORTER",
            "console",
            {"tracing": {"exporter": "file"}},
            lambda c: c.tracing.exporter,
            ["file"],
        ),
        (
            "DJ_OBSERVE_METRICS_PORT",
            "9100",
            {"metrics": {"port": 9200}},
            lambda c: c.metrics.port,
            9200,
        ),
        (
            "DJ_OBSERVE_PUSHGATEWAY",
            "http://env:9091",
            {"metrics": {"pushgateway": "http://arg:9091"}},
            lambda c: c.metrics.pushgateway,
            "http://arg:9091",
        ),
    ],
    ids=["service_name", "endpoint", "exporter", "port", "pushgateway"],
)
def test_argument_wins_over_environment(monkeypatch, variable, value, data, read, expected):
    monkeypatch.setenv(variable, value)

    assert read(ObservabilityConfig.from_dict(data)) == expected


def test_environment_configures_a_hook_end_to_end(monkeypatch, job_dir, otlp_receiver):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.url)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "env-service")
    monkeypatch.setenv("DJ_OBSERVE_METRICS_PORT", "0")
    with ObservabilityHook(work_dir=job_dir, job_id="job1") as hook:
        drive_job(hook, partitions=1)
        hook.flush()
        text = scrape(hook.metrics_url)

    assert 'dj_job_status{job_id="job1",pipeline="",state="completed"} 1.0' in text
    spans = otlp_receiver.wait_for_spans(4)
    assert {span.service_name for span in spans} == {"env-service"}
    assert not (job_dir / "traces.otlp.jsonl").exists()


# -- YAML ----------------------------------------------------------------------------------------


def test_from_yaml_reads_the_observability_section(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(
        "project_name: demo\n"
        "observability:\n"
        "  metrics:\n"
        "    port: 9100\n"
        "  tracing:\n"
        "    exporter: [otlp]\n"
        "    endpoint: http://collector:4318/v1/traces\n"
    )

    config = ObservabilityConfig.from_yaml(path, job_id="j1")
    assert (config.metrics.port, config.tracing.exporter, config.job_id) == (9100, ["otlp"], "j1")


def test_from_yaml_without_the_section_gives_defaults(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("project_name: demo\n")

    assert ObservabilityConfig.from_yaml(path).tracing.exporter == ["file"]


def test_from_yaml_names_an_unknown_key(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("observability:\n  metric:\n    port: 9100\n")

    with pytest.raises(ConfigError, match=r"observability\.metric: unknown key"):
        ObservabilityConfig.from_yaml(path)


def test_from_yaml_rejects_invalid_yaml(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("observability: [unclosed\n")

    with pytest.raises(ConfigError, match="not valid YAML"):
        ObservabilityConfig.from_yaml(path)
