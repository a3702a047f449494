"""The sidecar: metrics and spans made by a process that follows the event log equal
those of in-process delivery; the executor's process survives whatever the sidecar does."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import (
    drive_job,
    read_traces_file,
    samples,
    scrape,
    wait_until,
    without_created,
)

from dj_observe.config import ConfigError
from dj_observe.hook import ObservabilityHook

IN_PROCESS = {"metrics": {"port": 0}, "tracing": {"exporter": "file"}}
SIDECAR = {"sidecar": True, **IN_PROCESS}


def logged(job_dir: Path) -> int:
    return (job_dir / "events.jsonl").read_bytes().count(b"\n")


def spans(job_dir: Path) -> dict:
    return {
        span.span_id: span.comparable() for span in read_traces_file(job_dir / "traces.otlp.jsonl")
    }


def events_seen(url: str) -> float:
    found = samples(scrape(url))
    return sum(value for (name, _), value in found.items() if name == "dj_events_total")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The same job through an in-process hook and through a sidecar hook (read-only)."""
    result = {}
    for name, config in (("in_process", IN_PROCESS), ("sidecar", SIDECAR)):
        job_dir = tmp_path_factory.mktemp(name) / "job1"
        with ObservabilityHook(config, work_dir=job_dir, job_id="job1") as hook:
            drive_job(hook, partitions=3, failed={1: 1})
            hook.flush()
            url, events = hook.metrics_url, logged(job_dir)
            assert url is not None
            assert wait_until(lambda url=url, n=events: events_seen(url) >= n)
            assert events_seen(url) == events
            result[name] = {
                "metrics": without_created(samples(scrape(url))),
                "hook": hook,
                "job_dir": job_dir,
            }
        result[name]["spans"] = spans(job_dir)
    return result


def test_sidecar_metrics_equal_in_process_metrics(runs):
    assert runs["sidecar"]["metrics"] == runs["in_process"]["metrics"]


def test_sidecar_spans_equal_in_process_spans(runs):
    sidecar, in_process = runs["sidecar"]["spans"], runs["in_process"]["spans"]
    assert len(sidecar) == 1 + 3 + 6  # job, partitions, op runs
    assert sidecar == in_process


def test_sidecar_hook_makes_no_metrics_or_spans_itself(runs):
    hook = runs["sidecar"]["hook"]
    assert hook.metrics is None and hook.endpoint is None
    assert hook.stats.sink_errors == {}
    assert hook.sidecar is not None and hook.sidecar.process is None  # stopped at close


def test_sidecar_stops_serving_after_close(runs):
    url = runs["sidecar"]["hook"].metrics_url
    with pytest.raises(OSError):
        scrape(url, timeout=2)


def test_a_killed_sidecar_is_counted_and_the_job_goes_on(tmp_path):
    with ObservabilityHook(SIDECAR, work_dir=tmp_path, job_id="job1") as hook:
        assert hook.metrics_url is not None  # started
        hook.sidecar.process.kill()
        hook.sidecar.process.wait(10)
        drive_job(hook, partitions=2)
    assert hook.stats.sink_errors == {"sidecar": 1}
    assert logged(tmp_path) == 1 + 2 * 8 + 1


def test_a_sidecar_that_cannot_start_is_counted_and_the_log_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    with ObservabilityHook(SIDECAR, work_dir=tmp_path, job_id="job1") as hook:
        drive_job(hook, partitions=1)
        assert hook.metrics_url is None
    assert hook.stats.sink_errors == {"sidecar": 1}
    assert logged(tmp_path) == 1 + 8 + 1


def test_the_sidecar_finishes_the_log_when_the_executor_dies(tmp_path):
    """The executor's process exits without closing the hook: the sidecar sees its stdin
    close, reads the log to its end, writes the spans and stops."""
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from support import drive_job
        from dj_observe.hook import ObservabilityHook
        hook = ObservabilityHook({{"sidecar": True}}, work_dir={str(tmp_path)!r}, job_id="job1")
        drive_job(hook, partitions=2)
        os._exit(3)
        """
    )
    executor = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert executor.returncode == 3
    traces = tmp_path / "traces.otlp.jsonl"
    assert wait_until(lambda: traces.exists() and len(spans(tmp_path)) == 1 + 2 + 4, timeout=30)


def test_sidecar_needs_the_event_log(tmp_path):
    with pytest.raises(ConfigError, match="sidecar"):
        ObservabilityHook({"sidecar": True, "event_log": False}, work_dir=tmp_path)
    with pytest.raises(ConfigError, match="sidecar"):
        ObservabilityHook({"sidecar": True})
    with pytest.raises(ConfigError, match=r"not my\.jsonl"):
        ObservabilityHook({"sidecar": True, "event_log_path": str(tmp_path / "my.jsonl")})


def test_sidecar_cannot_fill_a_registry_of_this_process(tmp_path):
    from prometheus_client import CollectorRegistry

    with pytest.raises(ConfigError, match="sidecar"):
        ObservabilityHook({"sidecar": True}, work_dir=tmp_path, registry=CollectorRegistry())


def test_sidecar_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DJ_OBSERVE_SIDECAR", "1")
    with ObservabilityHook({"tracing": {"enabled": False}}, work_dir=tmp_path) as hook:
        assert hook.sidecar is not None and hook.metrics is None
    monkeypatch.setenv("DJ_OBSERVE_SIDECAR", "0")
    with ObservabilityHook({"tracing": {"enabled": False}}, work_dir=tmp_path) as hook:
        assert hook.sidecar is None and hook.metrics is not None


def test_sidecar_process_is_gone_after_close(tmp_path):
    with ObservabilityHook(SIDECAR, work_dir=tmp_path, job_id="job1") as hook:
        pid = hook.sidecar.process.pid
        drive_job(hook, partitions=1)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
