"""Shared fixtures; in CI a skipped test fails (a missing component must not pass silently)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import settings
from loguru import logger
from support import OtlpReceiver, Pushgateway

from dj_observe.synthetic import JobSpec, write_job

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# In CI, property tests draw the same examples on every run (a red build is reproducible);
# locally they explore new ones each time.
settings.register_profile("ci", derandomize=True)
if IN_CI:
    settings.load_profile("ci")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A whole module skipped while collecting (``importorskip`` at module level) too."""
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


def _fail_skip_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {report.longrepr}"


@pytest.fixture
def make_job(tmp_path: Path):
    """Write a synthetic job directory: ``make_job(partitions=4, ...)`` -> its path."""

    def make(**spec: object) -> Path:
        return write_job(tmp_path / "outputs", JobSpec(**spec))

    return make


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    """An empty job directory for hand-written event logs."""
    path = tmp_path / "job"
    path.mkdir()
    return path


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., OtlpReceiver]]:
    """Start loopback OTLP/HTTP receivers: ``make_receiver(status=500)``, ``(hang=30)``."""
    with ExitStack() as stack:
        yield lambda **options: stack.enter_context(OtlpReceiver(**options))


@pytest.fixture
def otlp_receiver(make_receiver) -> OtlpReceiver:
    """A healthy loopback OTLP/HTTP receiver; spans go to ``otlp_receiver.url + "/v1/traces"``."""
    return make_receiver()


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory) -> Iterator[Pushgateway]:
    """A real ``prometheus-pushgateway`` on a free loopback port, killed at the end."""
    gateway = Pushgateway(tmp_path_factory.mktemp("pushgateway"))
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
def warnings_logged() -> Iterator[list[str]]:
    """Messages loguru logs at WARNING or above while the test runs."""
    messages: list[str] = []
    handler = logger.add(lambda message: messages.append(str(message)), level="WARNING")
    try:
        yield messages
    finally:
        logger.remove(handler)


@pytest.fixture(scope="session")
def ray_runtime():
    """One local Ray runtime for every test here (starting one costs seconds)."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(  # "local": a private cluster, never one another process started
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def private_fold_cache(tmp_path_factory, monkeypatch) -> Path:
    """Every test's persisted folds go to a fresh directory, never the user's cache."""
    directory = tmp_path_factory.mktemp("fold-cache")
    monkeypatch.setenv("DJ_OBSERVE_CACHE_DIR", str(directory))
    return directory
