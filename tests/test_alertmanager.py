"""``prometheus/alertmanager.yml``: amtool, routing, inhibition, and alerts delivered end to end.

The end-to-end test runs a real job of the demo config with a failed partition
(``DJ_OBSERVE_FAIL``), exposes it with ``dj-observe serve``'s exporter, scraped every second by a
real ``prometheus`` evaluating the repository's rules, which sends its alerts to a real
``prometheus-alertmanager`` running the repository's routing tree (only the receivers' URLs and
the group timings changed), which posts them to a loopback webhook. Resuming the job completes
the partition, and the resolution reaches the webhook too.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import (
    Alertmanager,
    Prometheus,
    WebhookReceiver,
    binary,
    demo_config,
    free_port,
    run_cli,
    wait_until,
)

from dj_observe.runner.executor import FAIL_ENV
from dj_observe.serve import JobsExporter

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]
ALERTMANAGER_CONFIG = REPO / "prometheus" / "alertmanager.yml"
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
RUNBOOKS_URL = "https://github.com/dj-observe/dj-observe/blob/main/docs/runbooks.md"
DELIVERY_TIMEOUT = 90.0
"""Upper bound of the wait for a notification (a scrape, an evaluation, a group flush: ~3 s)."""

PIPELINE, JOB_ID = "alerting", "failing1"
FAILED_PARTITION, FAILED_OP = 1, 4  # text_length_filter, the demo config's fifth op


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("amtool"), *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_amtool_accepts_the_config() -> None:
    checked = amtool("check-config", str(ALERTMANAGER_CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ("severity=critical", "dj-critical"),
        ("severity=warning", "dj-warning"),
        ("severity=info", "dj-warning"),  # anything else falls back to the warning receiver
    ],
)
def test_routes_send_each_severity_to_its_receiver(labels: str, receiver: str) -> None:
    routed = amtool("config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", labels)
    assert routed.returncode == 0, routed.stdout + routed.stderr
    assert routed.stdout.split() == [receiver]


def fast_config(webhook: str) -> dict[str, Any]:
    """The repository's Alertmanager config with its receivers posting to ``webhook``/<name>,
    and every group flushed within a second (the routing and inhibition are unchanged)."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = f"{webhook}/{receiver['name']}"
    for route in [config["route"], *config["route"]["routes"]]:
        route.update(group_wait="1s", group_interval="1s")
    return config


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as webhook:
        yield webhook


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: WebhookReceiver) -> Iterator[Alertmanager]:
    with Alertmanager(tmp_path, fast_config(receiver.url)) as manager:
        yield manager


def alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, "severity": severity, **labels}}


def test_a_failed_partition_inhibits_the_failure_ratio_of_its_job(alertmanager, receiver):
    alertmanager.post_alerts(
        [
            alert("DjPartitionFailed", "critical", pipeline="p", job_id="j1", partition="3"),
            alert("DjPartitionFailureRatioHigh", "warning", pipeline="p", job_id="j1"),
            alert("DjPartitionFailureRatioHigh", "warning", pipeline="p", job_id="j2"),
        ]
    )

    def delivered() -> set[tuple[str, str, str]]:
        return {
            (path, a["labels"]["alertname"], a["labels"]["job_id"]) for path, a in receiver.alerts()
        }

    expected = {
        ("/dj-critical", "DjPartitionFailed", "j1"),
        ("/dj-warning", "DjPartitionFailureRatioHigh", "j2"),
    }
    assert wait_until(lambda: delivered() == expected, 30), delivered()
    inhibited = {
        (a["labels"]["alertname"], a["labels"]["job_id"])
        for a in alertmanager.alerts()
        if a["status"]["inhibitedBy"]
    }
    assert inhibited == {("DjPartitionFailureRatioHigh", "j1")}
    time.sleep(2)  # two more group flushes: the inhibited alert still is not sent
    assert delivered() == expected


@pytest.mark.parametrize(
    ("source", "target", "labels"),
    [
        ("DjJobFailed", "DjPipelineNoRecentSuccess", {}),
        ("DjJobFailed", "DjOpRetentionShift", {"job_id": "j1", "op": "text_length_filter"}),
        ("DjJobFailed", "DjOpSlowdown", {"job_id": "j1", "op": "document_deduplicator"}),
    ],
)
def test_a_failed_job_inhibits_the_alerts_it_makes_redundant(
    alertmanager, receiver, source, target, labels
):
    """The same alert of another pipeline still goes out."""
    alertmanager.post_alerts(
        [
            alert(source, "critical", pipeline="p", job_id="j1"),
            alert(target, "warning", pipeline="p", **labels),
            alert(target, "warning", pipeline="other", **labels),
        ]
    )
    assert wait_until(lambda: len(receiver.alerts()) == 2, 30), receiver.alerts()
    time.sleep(2)  # two more group flushes: the inhibited alert still is not sent
    assert sorted(
        (a["labels"]["alertname"], a["labels"]["pipeline"]) for _, a in receiver.alerts()
    ) == sorted([(source, "p"), (target, "other")])


def test_the_stack_sends_prometheus_alerts_to_its_alertmanager() -> None:
    """prometheus.yml alerts the compose stack's ``alertmanager`` service, which loads the file
    tested here and publishes its UI on loopback only."""
    (manager,) = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["alerting"]["alertmanagers"]
    assert manager["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["alertmanager"]
    assert (
        "./prometheus/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in service["volumes"]
    )
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in service["command"]
    assert service["ports"] == ["127.0.0.1:9093:9093"]


# -------------------------------------------------------------------- end to end


def prometheus_config(metrics: str, alertmanager: str) -> dict[str, Any]:
    """The repository's prometheus.yml, scraping ``metrics`` and alerting ``alertmanager``
    every second."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    config["rule_files"] = [str(REPO / "prometheus" / "rules" / "*.yml")]
    config["scrape_configs"] = [
        {"job_name": "dj-observe-serve", "static_configs": [{"targets": [metrics]}]}
    ]
    (manager,) = config["alerting"]["alertmanagers"]
    manager["static_configs"] = [{"targets": [alertmanager]}]
    return config


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An outputs directory served by ``dj-observe serve``'s exporter: (root, host:port)."""
    root = tmp_path / "outputs"
    root.mkdir()
    exporter = JobsExporter(root)
    port = free_port()
    thread = threading.Thread(
        target=exporter.serve_forever, args=("127.0.0.1", port, 0.2), daemon=True
    )
    thread.start()
    try:
        yield root, f"127.0.0.1:{port}"
    finally:
        exporter.stop()
        thread.join(10)


def delivered(receiver: WebhookReceiver, status: str) -> dict[str, dict[str, Any]]:
    """The alerts of our job delivered with ``status``, by alert name (the latest of each)."""
    return {
        a["labels"]["alertname"]: {**a, "path": path}
        for path, a in receiver.alerts()
        if a["status"] == status and a["labels"].get("job_id") == JOB_ID
    }


def test_a_failed_partition_reaches_the_webhook_and_its_resume_resolves_it(
    tmp_path, ray_runtime, served, alertmanager, receiver, monkeypatch
):
    root, metrics = served
    prometheus_dir = tmp_path / "prometheus"
    prometheus_dir.mkdir()
    config = demo_config(tmp_path / "job.yaml", root / PIPELINE, project_name=PIPELINE)
    alerting = prometheus_config(metrics, f"127.0.0.1:{alertmanager.port}")
    with Prometheus(prometheus_dir, alerting) as prom:
        assert wait_until(lambda: prom.query("up == 1"), 30), prom.log_tail()

        monkeypatch.setenv(FAIL_ENV, f"{FAILED_PARTITION}:{FAILED_OP}")
        code, out, err = run_cli("run", str(config), "--job-id", JOB_ID)
        assert code == 4, out + err  # the job failed: one partition failed on every attempt
        monkeypatch.delenv(FAIL_ENV)

        both = {"DjPartitionFailed", "DjJobFailed"}
        firing = wait_until(
            lambda: (found := delivered(receiver, "firing")).keys() >= both and found,
            DELIVERY_TIMEOUT,
        )
        assert firing, f"{receiver.alerts()}\n{prom.alerts()}\n{alertmanager.log_tail()}"
        partition = firing["DjPartitionFailed"]
        assert partition["path"] == "/dj-critical"
        assert partition["labels"] == {
            "alertname": "DjPartitionFailed",
            "severity": "critical",
            "job_id": JOB_ID,
            "pipeline": PIPELINE,
            "partition": str(FAILED_PARTITION),
            "op": "text_length_filter",
            "error_type": "RuntimeError",
        }
        assert partition["annotations"]["summary"] == (
            f"Partition {FAILED_PARTITION} of job {JOB_ID} failed"
        )
        runbook = partition["annotations"]["runbook_url"]
        assert runbook == f"{RUNBOOKS_URL}#runbook-djpartitionfailed"
        job = firing["DjJobFailed"]
        assert job["path"] == "/dj-critical"
        assert job["annotations"]["summary"] == f"Job {JOB_ID} failed"
        assert job["annotations"]["runbook_url"] == f"{RUNBOOKS_URL}#runbook-djjobfailed"

        code, out, err = run_cli("run", str(config), "--job-id", JOB_ID)
        assert code == 0, out + err  # resumed: the failed partition completed
        resolved = wait_until(
            lambda: (found := delivered(receiver, "resolved")).keys() >= both and found,
            DELIVERY_TIMEOUT,
        )
        assert resolved, f"{receiver.alerts()}\n{prom.alerts()}\n{alertmanager.log_tail()}"
        assert resolved["DjPartitionFailed"]["labels"] == partition["labels"]
        assert resolved["DjJobFailed"]["labels"] == job["labels"]
