"""A real job on Ray, its hook's /metrics scraped every second by a real Prometheus.

The job (the reference executor with an injected partition failure) serves its metrics
while it runs and lingers a few seconds after it ends; Prometheus evaluates the repo's
rules on them.  Checked: progress moves while the job runs, the partition-failed alert
fires with its payload, and the live scrape passes ``promtool check metrics``.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
import urllib.request

import pytest
import yaml

from dj_observe.runner.config import parse_config
from dj_observe.runner.executor import FAIL_ENV, run_job
from tests.test_prometheus import (
    PROMETHEUS,
    PROMETHEUS_DIR,
    PROMTOOL,
    LivePrometheus,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.timeout(300)

OPS = [
    {"clean_links_mapper": {}},
    {"whitespace_normalization_mapper": {}},
    {"text_length_filter": {"min_len": 20}},
    {"document_deduplicator": {}},
]


def test_a_live_job_is_scraped_and_its_failed_partition_alerts(tmp_path, ray_runtime, monkeypatch):
    if PROMETHEUS is None or PROMTOOL is None:
        pytest.skip("prometheus/promtool not installed (Debian package prometheus)")
    metrics_port, port = free_port(), free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(PROMETHEUS_DIR / "rules" / "*.yml")],
        "scrape_configs": [
            {
                "job_name": "dj-observe-job",
                "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = tmp_path / "prometheus.log"
    live = LivePrometheus(
        f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", log
    )
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        # The scrape loop runs (failing until the job's endpoint exists) before the job starts.
        wait_for(lambda: live.api("status/config")["status"] == "success", "Prometheus to start")
        wait_for(lambda: live.query("up"), "Prometheus's first scrape attempt")
        monkeypatch.setenv(FAIL_ENV, "1:2")
        job = parse_config(
            {
                "project_name": "live",
                "dataset_path": "demo://400000",
                "np": 1,
                "export_path": str(tmp_path / "result.jsonl"),
                "work_dir": str(tmp_path / "jobs"),
                "partition": {"size": 20000},
                "process": OPS,
                "on_partition_failure": "continue",
                "observability": {"metrics": {"port": metrics_port, "linger": 8}},
            }
        )
        scrapes: list[bytes] = []
        runner = threading.Thread(target=run_job, args=(job,), kwargs={"job_id": "live1"})
        runner.start()
        deadline = time.monotonic() + 120
        while runner.is_alive() and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                scrapes.append(urllib.request.urlopen(live.metrics_url, timeout=2).read())
            firing = [
                alert
                for alert in live.api("alerts")["data"]["alerts"]
                if alert["labels"].get("alertname") == "DjPartitionFailed"
                and alert["state"] == "firing"
            ]
            if firing:
                break
            time.sleep(0.5)
        assert firing, f"DjPartitionFailed never fired:\n{live.log_tail()}"
        labels = firing[0]["labels"]
        assert labels["job_id"] == "live1" and labels["partition"] == "1"
        assert labels["op"] == "text_length_filter" and labels["pipeline"] == "live"
        runner.join(timeout=120)  # the job ends; its endpoint lingers for the last scrapes
        progress = wait_for(
            lambda: live.query('dj_job:partition_progress:ratio{job_id="live1"} == 1'),
            "the progress rule to reach 1 (every partition ended)",
        )
        assert progress
        history = live.api(
            "query_range",
            query='sum(dj_ops_completed_total{job_id="live1"})',
            start=str(time.time() - 300),
            end=str(time.time()),
            step="1",
        )["data"]["result"][0]["values"]
        seen = sorted({float(value) for _, value in history})
        assert len(seen) >= 2, f"progress did not move while the job ran: {seen}"
        checked = subprocess.run(
            [PROMTOOL, "check", "metrics"],
            input=scrapes[-1],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        process.terminate()
        process.wait(timeout=10)
