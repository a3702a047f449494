"""Getting metrics out: the HTTP /metrics endpoint and a real Pushgateway."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request

import pytest
from support import OPENMETRICS, T0, drive_job, finishes_within, free_port, scrape, wait_until

from dj_observe.exposition import wait_interruptibly
from dj_observe.hook import ObservabilityHook
from dj_observe.state import Status

NO_TRACES = {"tracing": {"enabled": False}}


def gateway_value(gateway, name: str, **labels: str) -> float | None:
    """The value of the one pushed sample called ``name`` whose labels include ``labels``."""
    found = [
        value
        for (sample_name, sample_labels), value in gateway.samples().items()
        if sample_name == name and labels.items() <= dict(sample_labels).items()
    ]
    assert len(found) <= 1, found
    return found[0] if found else None


def push_config(url: str, interval: float = 3600.0) -> dict:
    return {**NO_TRACES, "metrics": {"pushgateway": url, "push_interval": interval}}


# -- the HTTP endpoint ---------------------------------------------------------------------------


def test_endpoint_listens_on_loopback_by_default(job_dir):
    with ObservabilityHook(
        {**NO_TRACES, "metrics": {"port": 0}}, work_dir=job_dir, job_id="job1"
    ) as hook:
        hook.job_start(timestamp=T0)
        hook.flush()
        url = hook.metrics_url
        text = scrape(url)

    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/metrics")
    assert 'dj_job_status{job_id="job1",pipeline="",state="running"} 1.0' in text


def test_endpoint_on_a_chosen_port(job_dir):
    port = free_port()
    with ObservabilityHook(
        {**NO_TRACES, "metrics": {"port": port}}, work_dir=job_dir, job_id="job1"
    ) as hook:
        url = hook.metrics_url
        text = scrape(f"http://127.0.0.1:{port}/metrics")

    assert url == f"http://127.0.0.1:{port}/metrics"
    assert "# TYPE dj_job_status gauge" in text


def test_no_endpoint_without_a_port(job_dir):
    with ObservabilityHook(NO_TRACES, work_dir=job_dir, job_id="job1") as hook:
        assert hook.metrics_url is None
        assert hook.endpoint is None


def test_endpoint_negotiates_openmetrics(job_dir):
    with ObservabilityHook(
        {**NO_TRACES, "metrics": {"port": 0}}, work_dir=job_dir, job_id="job1"
    ) as hook:
        request = urllib.request.Request(hook.metrics_url, headers={"Accept": OPENMETRICS})
        with urllib.request.urlopen(request, timeout=5) as response:
            content_type = response.headers["Content-Type"]
            body = response.read().decode()

    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")


# -- the Pushgateway -----------------------------------------------------------------------------


def test_pushes_periodically_while_the_job_runs(job_dir, pushgateway):
    with ObservabilityHook(
        push_config(pushgateway.url, interval=0.2), work_dir=job_dir, job_id="push_periodic"
    ) as hook:
        drive_job(hook, partitions=2, end=False)
        hook.partition_start(2, timestamp=T0 + 100)

        pushed = wait_until(
            lambda: gateway_value(
                pushgateway, "dj_job_status", job_id="push_periodic", state="running"
            )
        )
        completed = gateway_value(
            pushgateway, "dj_partitions", job_id="push_periodic", state="completed"
        )

    assert pushed == 1
    assert completed == 2


def test_pushes_as_soon_as_the_job_ends(job_dir, pushgateway):
    with ObservabilityHook(
        push_config(pushgateway.url), work_dir=job_dir, job_id="push_on_end"
    ) as hook:
        drive_job(hook, partitions=2)

        pushed = wait_until(
            lambda: gateway_value(
                pushgateway, "dj_job_status", job_id="push_on_end", state="completed"
            )
        )

    assert pushed == 1


def test_pushes_the_final_values_on_close(job_dir, pushgateway):
    with ObservabilityHook(
        push_config(pushgateway.url), work_dir=job_dir, job_id="push_on_close"
    ) as hook:
        drive_job(hook, partitions=2)

    assert hook.pusher is not None and hook.pusher.pushes >= 1
    assert hook.stats.sink_errors == {}
    assert gateway_value(pushgateway, "dj_partitions_completed_total", job_id="push_on_close") == 2
    assert (
        gateway_value(pushgateway, "dj_job_last_success_timestamp_seconds", job_id="push_on_close")
        == T0 + 40
    )


def test_pushes_are_grouped_by_job_id(job_dir, pushgateway):
    with ObservabilityHook(
        push_config(pushgateway.url), work_dir=job_dir, job_id="push_grouped"
    ) as hook:
        drive_job(hook, partitions=1)

    assert (
        gateway_value(
            pushgateway,
            "dj_job_status",
            job="dj_observe",
            job_id="push_grouped",
            state="completed",
        )
        == 1
    )


def test_last_success_is_not_pushed_for_a_failed_job(job_dir, pushgateway):
    with ObservabilityHook(
        push_config(pushgateway.url), work_dir=job_dir, job_id="push_failed"
    ) as hook:
        drive_job(hook, partitions=2, failed={0: 0})

    assert gateway_value(pushgateway, "dj_job_status", job_id="push_failed", state="failed") == 1
    assert (
        gateway_value(pushgateway, "dj_job_last_success_timestamp_seconds", job_id="push_failed")
        is None
    )


@pytest.mark.parametrize("background", [True, False])
def test_pushgateway_down_never_stops_the_job(job_dir, background):
    down = f"http://127.0.0.1:{free_port()}"
    hook = ObservabilityHook(
        {**push_config(down, interval=0.2), "background": background},
        work_dir=job_dir,
        job_id="push_down",
    )

    assert finishes_within(10, lambda: drive_job(hook, partitions=3))
    assert finishes_within(10, hook.close)
    assert hook.stats.sink_errors["pushgateway"] > 0
    assert hook.feed().job_status == Status.COMPLETED
    assert len((job_dir / "events.jsonl").read_bytes().splitlines()) == 26


# -- the linger after the job ----------------------------------------------------------------------

LINGERING_JOB = """
import atexit, signal, sys
from dj_observe.hook import ObservabilityHook

def like_ray(signum, frame):  # Ray's driver turns SIGTERM into SystemExit
    sys.exit(signum)

signal.signal(signal.SIGTERM, like_ray)
hook = ObservabilityHook({"tracing": {"enabled": False}, "event_log": False,
                          "metrics": {"port": 0, "linger": 60}}, job_id="job1")
hook.job_start()
atexit.register(hook.close)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_linger_ends_it_quietly(signum):
    """The endpoint is announced, then a signal ends the wait: exit 0, no traceback."""
    process = subprocess.Popen(
        [sys.executable, "-c", LINGERING_JOB],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        announced = process.stderr.readline()
        assert re.fullmatch(
            r"dj-observe: keeping http://127\.0\.0\.1:\d+/metrics up 60 s \(Ctrl-C ends it\)\n",
            announced,
        ), announced
        scrape(announced.split()[2], timeout=5)  # still serving while it lingers
        process.send_signal(signum)
        rest = process.communicate(timeout=10)[1]
    finally:
        process.kill()
    assert process.returncode == 0, rest
    assert "Traceback" not in rest, rest


def test_wait_interruptibly_puts_the_handlers_back():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert wait_interruptibly(0.01) is False
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
