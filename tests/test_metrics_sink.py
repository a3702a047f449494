"""Prometheus metrics from events, read through a real scrape of the hook's /metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from support import (
    OPENMETRICS,
    OPS,
    T0,
    drive_job,
    op_times,
    promtool_check_metrics,
    sample,
    samples,
    scrape,
    series,
)

from dj_observe.hook import ObservabilityHook
from dj_observe.ids import op_span_id, trace_id_hex
from dj_observe.sinks.metrics import MAX_OPS_PER_JOB

JOB = {"job_id": "job1", "pipeline": "demo"}
CLEAN, LENGTH = OPS
METRICS_ONLY = {"metrics": {"port": 0}, "tracing": {"enabled": False}}


class Scraped:
    """A driven job's /metrics, as text and as parsed samples."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = samples(text)

    def value(self, name: str, **labels: str) -> float | None:
        return sample(self.samples, name, **{**JOB, **labels})


def run_job(job_dir, *, sinks=(), **drive) -> Scraped:
    with ObservabilityHook(
        METRICS_ONLY, work_dir=job_dir, job_id="job1", pipeline="demo", sinks=sinks
    ) as hook:
        drive_job(hook, **drive)
        hook.flush()
        return Scraped(scrape(hook.metrics_url))


@pytest.fixture(scope="module")
def failed_job(tmp_path_factory) -> Scraped:
    """Three partitions, two ops each; partition 1 fails at its second op (read-only)."""
    return run_job(tmp_path_factory.mktemp("failed_job"), partitions=3, failed={1: 1})


@pytest.fixture(scope="module")
def completed_job(tmp_path_factory) -> Scraped:
    """Two partitions that complete (read-only)."""
    return run_job(tmp_path_factory.mktemp("completed_job"), partitions=2)


def test_job_status_has_one_series_per_state_and_1_for_failed(failed_job):
    assert {
        state: failed_job.value("dj_job_status", state=state)
        for state in ("pending", "running", "completed", "failed")
    } == {"pending": 0, "running": 0, "completed": 0, "failed": 1}


def test_job_status_is_completed_for_a_successful_job(completed_job):
    assert completed_job.value("dj_job_status", state="completed") == 1
    assert completed_job.value("dj_job_status", state="failed") == 0


def test_job_status_is_running_while_the_job_runs(job_dir):
    with ObservabilityHook(METRICS_ONLY, work_dir=job_dir, job_id="job1", pipeline="demo") as hook:
        drive_job(hook, end=False, partitions=1)
        hook.partition_start(1, timestamp=T0 + 100)
        hook.flush()
        scraped = Scraped(scrape(hook.metrics_url))

    assert scraped.value("dj_job_status", state="running") == 1
    assert scraped.value("dj_partitions", state="running") == 1


def test_job_start_timestamp(failed_job):
    assert failed_job.value("dj_job_start_timestamp_seconds") == T0


def test_job_end_timestamp_is_the_time_of_the_jobs_terminal_event(failed_job):
    """job_failed comes 11 s after the last partition ended: it says when the job ended."""
    assert failed_job.value("dj_job_end_timestamp_seconds") == T0 + 50


def test_job_duration_runs_to_the_jobs_terminal_event(failed_job):
    assert failed_job.value("dj_job_duration_seconds") == 50


def test_job_end_and_duration_of_a_completed_job(completed_job):
    assert completed_job.value("dj_job_end_timestamp_seconds") == T0 + 40
    assert completed_job.value("dj_job_duration_seconds") == 40


def test_partitions_by_state(failed_job):
    assert {
        state: failed_job.value("dj_partitions", state=state)
        for state in ("pending", "running", "completed", "failed")
    } == {"pending": 0, "running": 0, "completed": 2, "failed": 1}


def test_planned_partitions_not_started_are_pending(job_dir):
    with ObservabilityHook(METRICS_ONLY, work_dir=job_dir, job_id="job1", pipeline="demo") as hook:
        hook.job_start(timestamp=T0, metadata={"num_partitions": 5})
        hook.partition_start(0, timestamp=T0 + 1)
        hook.flush()
        scraped = Scraped(scrape(hook.metrics_url))

    assert scraped.value("dj_partitions", state="pending") == 4
    assert scraped.value("dj_partitions", state="running") == 1


def test_partition_counters(failed_job):
    assert failed_job.value("dj_partitions_completed_total") == 2
    assert failed_job.value("dj_partitions_failed_total") == 1


def test_partition_duration_histogram(failed_job):
    assert failed_job.value("dj_partition_duration_seconds_count") == 2
    assert failed_job.value("dj_partition_duration_seconds_sum") == 18  # 9 s each


def test_one_info_series_for_the_failed_partition(failed_job):
    assert series(failed_job.samples, "dj_partition_failed_info") == {
        (
            ("error_type", "ValueError"),
            ("job_id", "job1"),
            ("op", LENGTH),
            ("partition", "1"),
            ("pipeline", "demo"),
        ): 1.0
    }


def test_partition_label_appears_on_no_other_metric(failed_job):
    with_partition = {name for name, labels in failed_job.samples if "partition" in dict(labels)}
    assert with_partition == {"dj_partition_failed_info"}


def test_rerun_partition_that_completes_clears_its_failure_series(job_dir):
    with ObservabilityHook(METRICS_ONLY, work_dir=job_dir, job_id="job1", pipeline="demo") as hook:
        drive_job(hook, partitions=2, failed={1: 0}, end=False)
        hook.partition_start(1, timestamp=T0 + 100)
        hook.op_start(1, CLEAN, 0, timestamp=T0 + 101)
        hook.op_complete(1, CLEAN, 0, timestamp=T0 + 102, duration=1.0)
        hook.op_start(1, LENGTH, 1, timestamp=T0 + 103)
        hook.op_complete(1, LENGTH, 1, timestamp=T0 + 104, duration=1.0)
        hook.partition_complete(1, timestamp=T0 + 105)
        hook.flush()
        scraped = Scraped(scrape(hook.metrics_url))

    assert series(scraped.samples, "dj_partition_failed_info") == {}
    assert scraped.value("dj_partitions", state="failed") == 0
    assert scraped.value("dj_partitions", state="completed") == 2


def test_rows_in_and_out_per_op(failed_job):
    assert failed_job.value("dj_op_rows_in_total", op=CLEAN) == 300
    assert failed_job.value("dj_op_rows_out_total", op=CLEAN) == 270
    assert failed_job.value("dj_op_rows_in_total", op=LENGTH) == 180
    assert failed_job.value("dj_op_rows_out_total", op=LENGTH) == 160


def test_ops_completed_and_failed_per_op(failed_job):
    assert failed_job.value("dj_ops_completed_total", op=CLEAN) == 3
    assert failed_job.value("dj_ops_completed_total", op=LENGTH) == 2
    assert failed_job.value("dj_ops_failed_total", op=LENGTH) == 1
    assert failed_job.value("dj_ops_failed_total", op=CLEAN) in (None, 0)


def test_op_running_when_its_partition_fails_counts_as_failed(job_dir):
    """Data-Juicer writes no op_failed: the op that was running failed with its partition."""
    with ObservabilityHook(METRICS_ONLY, work_dir=job_dir, job_id="job1", pipeline="demo") as hook:
        hook.job_start(timestamp=T0)
        hook.partition_start(0, timestamp=T0 + 1)
        hook.op_start(0, CLEAN, 0, timestamp=T0 + 2)
        hook.partition_failed(0, "KeyError: 'text'", timestamp=T0 + 3)
        hook.flush()
        scraped = Scraped(scrape(hook.metrics_url))

    assert scraped.value("dj_ops_failed_total", op=CLEAN) == 1
    assert (
        scraped.value("dj_partition_failed_info", partition="0", op=CLEAN, error_type="KeyError")
        == 1
    )


def test_op_duration_histogram_per_op(failed_job):
    assert failed_job.value("dj_op_duration_seconds_count", op=CLEAN) == 3
    assert failed_job.value("dj_op_duration_seconds_sum", op=CLEAN) == 4.5
    assert failed_job.value("dj_op_duration_seconds_count", op=LENGTH) == 2
    assert failed_job.value("dj_op_duration_seconds_bucket", op=LENGTH, le="1.0") == 0
    assert failed_job.value("dj_op_duration_seconds_bucket", op=LENGTH, le="2.5") == 2


def test_checkpoints_saved_and_last_checkpoint_time(failed_job):
    assert failed_job.value("dj_checkpoints_saved_total") == 5
    assert failed_job.value("dj_last_checkpoint_timestamp_seconds") == op_times(2, 1)[1] + 0.0625


def test_events_by_type(failed_job):
    assert {
        dict(labels)["event_type"]: value
        for labels, value in series(failed_job.samples, "dj_events_total").items()
    } == {
        "job_start": 1,
        "partition_start": 3,
        "op_start": 6,
        "op_complete": 5,
        "op_failed": 1,
        "checkpoint_save": 5,
        "partition_complete": 2,
        "partition_failed": 1,
        "job_failed": 1,
    }


def test_unknown_event_types_share_one_series(job_dir):
    with ObservabilityHook(METRICS_ONLY, work_dir=job_dir, job_id="job1", pipeline="demo") as hook:
        for n in range(50):
            hook.emit(f"custom_event_{n}", timestamp=T0 + n)
        hook.flush()
        scraped = Scraped(scrape(hook.metrics_url))

    assert series(scraped.samples, "dj_events_total") == {
        (("event_type", "other"), ("job_id", "job1"), ("pipeline", "demo")): 50.0
    }


def test_op_label_values_are_bounded_per_job(job_dir):
    with ObservabilityHook(METRICS_ONLY, work_dir=job_dir, job_id="job1", pipeline="demo") as hook:
        for n in range(MAX_OPS_PER_JOB + 50):
            hook.op_start(0, f"op_{n}_mapper", n, timestamp=T0 + n)
            hook.op_complete(0, f"op_{n}_mapper", n, timestamp=T0 + n + 0.5, duration=0.5)
        hook.flush()
        scraped = Scraped(scrape(hook.metrics_url))

    ops = {dict(labels)["op"] for labels in series(scraped.samples, "dj_ops_completed_total")}
    assert len(ops) == MAX_OPS_PER_JOB + 1
    assert scraped.value("dj_ops_completed_total", op="other") == 50


def test_last_event_timestamp_is_the_latest_event(failed_job):
    assert failed_job.value("dj_last_event_timestamp_seconds") == T0 + 50


def test_last_success_timestamp_is_not_set_when_the_job_fails(failed_job):
    assert series(failed_job.samples, "dj_job_last_success_timestamp_seconds") == {}


def test_last_success_timestamp_is_set_when_the_job_succeeds(completed_job):
    assert completed_job.value("dj_job_last_success_timestamp_seconds") == T0 + 40


def test_self_metric_events_handled(failed_job):
    assert sample(failed_job.samples, "dj_observe_events_handled_total") == 25
    assert sample(failed_job.samples, "dj_observe_events_dropped_total") == 0


def test_self_metric_events_dropped(job_dir):
    with ObservabilityHook(METRICS_ONLY, work_dir=job_dir, job_id="job1") as hook:
        hook.emit({"message": "no event type"})
        hook.flush()
        scraped = Scraped(scrape(hook.metrics_url))

    assert sample(scraped.samples, "dj_observe_events_dropped_total") == 1


class BrokenSink:
    name = "broken"

    def on_change(self, change, feed):
        raise RuntimeError("broken sink")

    def flush(self, timeout=None):
        pass

    def close(self):
        pass


def test_self_metric_sink_errors_by_sink(job_dir):
    scraped = run_job(job_dir, partitions=1, sinks=[BrokenSink()])

    events = sample(scraped.samples, "dj_observe_events_handled_total")
    assert sample(scraped.samples, "dj_observe_sink_errors_total", sink="broken") == events


def test_metric_names_follow_prometheus_conventions(failed_job):
    families = list(text_string_to_metric_families(failed_job.text))
    assert all(family.name.startswith("dj_") for family in families)
    counter_samples = {
        sample.name for family in families if family.type == "counter" for sample in family.samples
    }
    assert counter_samples
    assert all(name.endswith(("_total", "_created")) for name in counter_samples)
    timestamps = {family.name for family in families if "timestamp" in family.name}
    assert all(name.endswith("_timestamp_seconds") for name in timestamps)


DOCUMENTED_ROW = re.compile(r"^\| `(dj_\w+)` \| (\w+) \|([\w, ]*)\|", re.MULTILINE)


def test_every_exposed_metric_is_documented(failed_job):
    table = (Path(__file__).parents[1] / "docs" / "metrics.md").read_text()
    documented = {
        name: (kind, {label.strip() for label in labels.split(",") if label.strip()})
        for name, kind, labels in DOCUMENTED_ROW.findall(table)
    }
    exposed = {}
    for family in text_string_to_metric_families(failed_job.text):
        if family.name.endswith("_created"):  # prometheus_client's counter creation times
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {label for sample in family.samples for label in sample.labels} - {"le"}
        exposed[name] = (family.type, labels)

    for name, (kind, labels) in exposed.items():
        assert name in documented, f"{name} is not in docs/metrics.md"
        assert documented[name][0] == kind, name
        assert labels <= documented[name][1], name


def test_promtool_check_metrics_passes(failed_job):
    result = promtool_check_metrics(failed_job.text)

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_metrics_passes_for_a_completed_job(completed_job):
    result = promtool_check_metrics(completed_job.text)

    assert result.returncode == 0, result.stdout + result.stderr


def test_op_duration_buckets_carry_trace_id_exemplars(job_dir):
    with ObservabilityHook(METRICS_ONLY, work_dir=job_dir, job_id="job1", pipeline="demo") as hook:
        drive_job(hook, partitions=3, failed={1: 1})
        hook.flush()
        text = scrape(hook.metrics_url, accept=OPENMETRICS)

    exemplars = {
        (sample.labels["op"], sample.labels["le"]): sample.exemplar
        for family in openmetrics_families(text)
        if family.name == "dj_op_duration_seconds"
        for sample in family.samples
        if sample.exemplar is not None
    }
    assert set(exemplars) == {(CLEAN, "2.5"), (LENGTH, "2.5")}
    assert {exemplar.labels["trace_id"] for exemplar in exemplars.values()} == {
        trace_id_hex("job1")
    }
    # The latest observation: the op on partition 2, whose span it links to.
    assert exemplars[(CLEAN, "2.5")].labels["span_id"] == f"{op_span_id('job1', 2, 0, 1):016x}"
    assert exemplars[(CLEAN, "2.5")].value == 1.5


def test_series_do_not_grow_with_the_number_of_partitions(tmp_path):
    def scrape_job(partitions: int) -> Scraped:
        return run_job(tmp_path / f"p{partitions}", partitions=partitions, failed={1: 1})

    small, large = scrape_job(3), scrape_job(300)

    def keys(scraped: Scraped) -> set:
        return {key for key in scraped.samples if key[0] != "dj_partition_failed_info"}

    assert keys(small) == keys(large)
    assert len(small.text.splitlines()) == len(large.text.splitlines())
    assert large.value("dj_partitions", state="completed") == 299


def test_metrics_go_to_a_given_registry(job_dir):
    registry = CollectorRegistry()
    with ObservabilityHook(
        {"tracing": {"enabled": False}}, work_dir=job_dir, job_id="job1", registry=registry
    ) as hook:
        drive_job(hook, partitions=2)
        hook.flush()

    assert hook.metrics_url is None
    labels = {"job_id": "job1", "pipeline": "", "state": "completed"}
    assert registry.get_sample_value("dj_job_status", labels) == 1


def test_pipeline_label_comes_from_the_job_start_event(job_dir):
    registry = CollectorRegistry()
    with ObservabilityHook(
        {"tracing": {"enabled": False}, "background": False},
        work_dir=job_dir,
        job_id="job1",
        registry=registry,
    ) as hook:
        hook.job_start(timestamp=T0, metadata={"pipeline": "from-event"})

    labels = {"job_id": "job1", "pipeline": "from-event", "state": "running"}
    assert registry.get_sample_value("dj_job_status", labels) == 1


def test_pipeline_label_comes_from_the_config(job_dir):
    registry = CollectorRegistry()
    with ObservabilityHook(
        {"tracing": {"enabled": False}, "background": False, "pipeline": "from-config"},
        work_dir=job_dir,
        job_id="job1",
        registry=registry,
    ) as hook:
        hook.job_start(timestamp=T0, metadata={"pipeline": "from-event"})

    labels = {"job_id": "job1", "pipeline": "from-config", "state": "running"}
    assert registry.get_sample_value("dj_job_status", labels) == 1


def test_each_job_gets_its_own_series(job_dir):
    """A hook without a job id of its own labels each event by the event's job id."""
    registry = CollectorRegistry()
    with ObservabilityHook(
        {"tracing": {"enabled": False}, "background": False},
        work_dir=job_dir,
        registry=registry,
    ) as hook:
        hook.job_start(job_id="a", timestamp=T0)
        hook.job_start(job_id="b", timestamp=T0)
        hook.job_complete(job_id="b", timestamp=T0 + 1)

    def status(job: str, state: str) -> float | None:
        labels = {"job_id": job, "pipeline": "", "state": state}
        return registry.get_sample_value("dj_job_status", labels)

    assert (status("a", "running"), status("b", "completed"), status("b", "running")) == (1, 1, 0)


def test_metrics_can_be_turned_off(job_dir):
    with ObservabilityHook(
        {"metrics": {"enabled": False, "port": 0}, "tracing": {"enabled": False}},
        work_dir=job_dir,
        job_id="job1",
    ) as hook:
        hook.job_start()

    assert hook.metrics is None
    assert hook.metrics_url is None
