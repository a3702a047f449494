"""The local Ray runtime ``dj-observe run`` starts for itself: quiet, with token auth on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import demo_config


def test_run_on_a_fresh_machine_prints_no_ray_notice(tmp_path):
    """No RAY_* variable set, an empty home: what a newcomer's first run sees."""
    config = demo_config(tmp_path / "job.yaml", tmp_path / "jobs", rows=400, partition_size=200)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dj-observe")), "run", str(config)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "Job " in done.stdout and " completed" in done.stdout
    assert "RAY_AUTH_MODE" not in done.stderr and "authentication" not in done.stderr.lower()
    assert "Traceback" not in done.stderr
    assert (tmp_path / "home" / ".ray" / "auth_token").is_file()  # Ray's token auth is on
