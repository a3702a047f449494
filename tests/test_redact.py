"""Secrets are redacted before they reach the event log, the sinks, spans and metrics."""

from __future__ import annotations

import pytest
from support import drive_job, read_events, scrape

from dj_observe.hook import ObservabilityHook
from dj_observe.redact import DEFAULT_SECRET_KEYS, REDACTED, Redactor
from dj_observe.sinks.memory import InMemorySink

SECRET = "hunter2-s3cr3t"
SECRET_KEYS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "access_key",
    "credential",
    "private_key",
)
QUIET = {"tracing": {"enabled": False}, "background": False}


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_default_keys_include(key):
    assert key in DEFAULT_SECRET_KEYS


@pytest.mark.parametrize(
    "key",
    [
        *SECRET_KEYS,
        "PASSWORD",
        "Api_Key",
        "db_password",
        "AWS_SECRET_ACCESS_KEY",
        "hf_token",
        "credentials",
        "ssh_private_key",
    ],
)
def test_secret_key_in_metadata_is_redacted_in_the_log(job_dir, key):
    with ObservabilityHook(QUIET, work_dir=job_dir, job_id="job1") as hook:
        hook.job_start(metadata={key: SECRET, "num_partitions": 2})

    [event] = read_events(job_dir)
    assert event["metadata"] == {key: REDACTED, "num_partitions": 2}


def test_secrets_nested_in_dicts_and_lists_of_the_config_are_redacted(job_dir):
    config = {
        "dataset": {"path": "s3://bucket/data", "storage": {"access_key": SECRET, "region": "x"}},
        "sinks": [{"name": "db", "Password": SECRET}, {"name": "hub", "tokens": [SECRET]}],
        "process": [{"clean_links_mapper": {"api_key": SECRET, "lang": "en"}}],
    }
    with ObservabilityHook(QUIET, work_dir=job_dir, job_id="job1") as hook:
        hook.job_start(config=config)

    [event] = read_events(job_dir)
    assert event["config"] == {
        "dataset": {"path": "s3://bucket/data", "storage": {"access_key": REDACTED, "region": "x"}},
        "sinks": [{"name": "db", "Password": REDACTED}, {"name": "hub", "tokens": REDACTED}],
        "process": [{"clean_links_mapper": {"api_key": REDACTED, "lang": "en"}}],
    }


def test_secrets_in_top_level_and_op_args_fields_are_redacted(job_dir):
    with ObservabilityHook(QUIET, work_dir=job_dir, job_id="job1") as hook:
        hook.op_start(0, "llm_mapper", 0, op_args={"api_key": SECRET, "model": "m"}, token=SECRET)

    [event] = read_events(job_dir)
    assert event["op_args"] == {"api_key": REDACTED, "model": "m"}
    assert event["token"] == REDACTED


def test_non_secret_keys_are_untouched(job_dir):
    metadata = {
        "num_partitions": 4,
        "text_key": "text",
        "path": "/data/in.jsonl",
        "nested": {"lang": "en", "items": [1, 2, {"model": "qwen"}]},
        "empty": None,
    }
    with ObservabilityHook(QUIET, work_dir=job_dir, job_id="job1") as hook:
        hook.job_start(metadata=metadata)

    [event] = read_events(job_dir)
    assert event["metadata"] == metadata


def test_the_callers_dict_is_not_modified(job_dir):
    metadata = {"password": SECRET, "inner": {"token": SECRET}}
    with ObservabilityHook(QUIET, work_dir=job_dir, job_id="job1") as hook:
        hook.job_start(metadata=metadata)

    assert metadata == {"password": SECRET, "inner": {"token": SECRET}}


def test_configured_redact_keys_are_redacted(job_dir):
    with ObservabilityHook(
        {**QUIET, "redact_keys": ["ssn", "password"]}, work_dir=job_dir, job_id="job1"
    ) as hook:
        hook.job_start(metadata={"user_ssn": "123-45-6789", "password": SECRET, "lang": "en"})

    [event] = read_events(job_dir)
    assert event["metadata"] == {"user_ssn": REDACTED, "password": REDACTED, "lang": "en"}


def test_sinks_see_the_redacted_event(job_dir):
    sink = InMemorySink()
    with ObservabilityHook(QUIET, work_dir=job_dir, job_id="job1", sinks=[sink]) as hook:
        hook.job_start(metadata={"password": SECRET}, config={"db": {"secret": SECRET}})

    [event] = sink.events
    assert event.metadata == {"password": REDACTED}
    assert event.config == {"db": {"secret": REDACTED}}


def test_no_secret_reaches_the_log_spans_or_metrics(job_dir):
    with ObservabilityHook(
        {"metrics": {"port": 0}, "tracing": {"exporter": "file"}, "background": False},
        work_dir=job_dir,
        job_id="job1",
    ) as hook:
        drive_job(
            hook,
            failed={1: 1},
            metadata={"password": SECRET, "config": {"api_key": SECRET}},
        )
        exposition = scrape(hook.metrics_url)

    assert SECRET not in (job_dir / "events.jsonl").read_text()
    assert SECRET not in (job_dir / "traces.otlp.jsonl").read_text()
    assert SECRET not in exposition


def test_redactor_returns_fields_unchanged_when_no_keys_are_configured():
    redact = Redactor([])

    assert redact({"password": SECRET}) == {"password": SECRET}


def test_redactor_leaves_absent_secrets_absent():
    assert Redactor()({"password": None, "token": "t"}) == {"password": None, "token": REDACTED}


@pytest.mark.parametrize(
    "late",
    [
        {"metadata": {"input_rows": 1, "api_token": SECRET}},
        {"metadata": {"input_rows": 1, "nested": {"password": SECRET}}},
        {"op_args": {"creds": [{"secret": SECRET}]}},
        {"private_key": SECRET},
        {"extra_field": {"token": SECRET}},
    ],
)
def test_a_secret_after_many_plain_events_of_the_same_shape_is_still_redacted(late):
    """The redactor skips walking events whose keys it already knows to be safe:
    a new secret-looking key anywhere in an event of a familiar shape is still found."""
    redact = Redactor()
    plain = {"event_type": "op_complete", "partition_id": 0, "metadata": {"input_rows": 1}}
    for _ in range(3):
        assert redact(plain) is plain
    scrubbed = redact({**plain, **late})
    assert SECRET not in repr(scrubbed)
    assert REDACTED in repr(scrubbed)


def test_a_configured_key_that_names_a_data_juicer_field_is_redacted(job_dir):
    with ObservabilityHook(
        {**QUIET, "redact_keys": ["message"]}, work_dir=job_dir, job_id="j"
    ) as hook:
        hook.emit("job_start", message=SECRET)
        hook.emit("job_start", message=SECRET)
    assert all(event["message"] == REDACTED for event in read_events(job_dir))
