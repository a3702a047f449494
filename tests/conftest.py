"""Shared fixtures; in CI a skipped test fails (a missing component must not pass silently)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

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
    report = outcome.get_result()
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
