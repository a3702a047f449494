"""``dj-observe serve``: Prometheus metrics for every job under an outputs directory.

Jobs that ran without the hook get the same metrics as hooked ones: each job
directory is followed with the offset reader (only appended bytes are read and
folded) and its events go through the metrics sink.  New job directories are
picked up on every poll; a job that ended stays exposed for ``retention``
seconds after its last event, then its series are dropped.  A scrape reads the
registry only, so it costs the same for a 1M-event log as for a 1k-event one.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from loguru import logger
from prometheus_client import CollectorRegistry

from dj_observe.dispatch import Dispatcher, HookStats
from dj_observe.exposition import MetricsEndpoint
from dj_observe.jobs import find_job_dirs
from dj_observe.replay import JobFollower
from dj_observe.sinks.metrics import MetricsSink
from dj_observe.state import Status
from dj_observe.tracker import JobDirectoryError

__all__ = ["JobsExporter"]

DEFAULT_RETENTION = 24 * 3600.0


class JobsExporter:
    """Follows the job directories under ``root`` and keeps their metrics current."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        retention: float = DEFAULT_RETENTION,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise JobDirectoryError(f"outputs directory not found: {self.root}")
        self.retention = retention
        self.stats = HookStats()
        self.metrics = MetricsSink(registry, stats=self.stats)
        self.dispatcher = Dispatcher([self.metrics], self.stats)
        self.followers: dict[Path, JobFollower] = {}
        self.retired: set[Path] = set()
        self._stop = threading.Event()

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    def poll(self) -> int:
        """Find new jobs, fold what every job appended, retire old ones; returns events read."""
        for job_dir in find_job_dirs(self.root):
            if job_dir not in self.followers and job_dir not in self.retired:
                self.followers[job_dir] = JobFollower(job_dir, self.dispatcher)
        events = 0
        now = time.time()
        for job_dir, follower in list(self.followers.items()):
            try:
                events += follower.poll()
            except Exception as exc:  # one job's directory never takes the others down
                self.stats.sink_failed(f"read:{job_dir.name}", exc)
                continue
            self._retire_if_old(job_dir, follower, now)
        return events

    def _retire_if_old(self, job_dir: Path, follower: JobFollower, now: float) -> None:
        if follower.job_id is None:
            return
        feed = self.dispatcher.feeds.get(follower.job_id)
        if feed is None or feed.job_status not in (Status.COMPLETED, Status.FAILED):
            return
        last = feed.state.last_event_time
        if last is not None and now - last > self.retention:
            self.metrics.remove_job(follower.job_id)
            self.dispatcher.feeds.pop(follower.job_id, None)
            del self.followers[job_dir]
            self.retired.add(job_dir)

    def serve_forever(self, host: str, port: int, interval: float) -> None:
        """Serve /metrics and poll every ``interval`` seconds until :meth:`stop`."""
        endpoint = MetricsEndpoint(self.registry, host, port)
        try:
            self.poll()  # say what it found once it looked
            found = len(self.followers)
            logger.info(
                "dj-observe serve: {} job{} under {} at {}",
                found,
                "" if found == 1 else "s",
                self.root,
                endpoint.url,
            )
            while not self._stop.wait(interval):
                self.poll()
        finally:
            endpoint.close()

    def stop(self) -> None:
        self._stop.set()
