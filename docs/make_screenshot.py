"""Regenerate ``docs/report.png``: the report of the demo job with one failed partition.

Run from the repository root with the package installed: ``python docs/make_screenshot.py``.
Runs the bundled demo (``dj-observe run demo``, about 20 s on a local Ray runtime) in a
temporary directory with partition 2 failing at its sixth op, writes its report, and
renders it with Debian's ``chromium`` (``apt-get install chromium``) headless with the
network blocked, exactly as ``tests/test_report.py`` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from dj_observe.report import chromium_command, write_report
from dj_observe.runner.executor import FAIL_ENV

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parent / "report.png"
MAX_BYTES = 300_000
FAILING = "2:5:2"
"""Partition 2 fails at op 5 on both of its attempts (the demo retries once)."""


def main() -> int:
    """Run the job, write its report and the screenshot; returns the exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, FAIL_ENV: FAILING}
        env.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        run = [sys.executable, "-m", "dj_observe.cli", "run", "demo", "--job-id", "demo"]
        done = subprocess.run(run, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        job = root / "outputs" / "demo" / "demo"
        if not (job / "events.jsonl").exists():
            print(f"the demo job did not run (exit {done.returncode}):", file=sys.stderr)
            print(done.stderr[-2000:], file=sys.stderr)
            return 1
        page = write_report(job, root / "report.html")
        png = root / "report.png"
        command = chromium_command(
            CHROMIUM,
            page.as_uri(),
            f"--user-data-dir={root / 'profile'}",
            f"--screenshot={png}",
            "--window-size=1400,1000",
        )
        subprocess.run(command, capture_output=True, timeout=60, check=True, cwd=root)
        data = png.read_bytes()
    if len(data) > MAX_BYTES:
        print(f"screenshot is {len(data)} bytes, over {MAX_BYTES}", file=sys.stderr)
        return 1
    OUTPUT.write_bytes(data)
    print(f"wrote {OUTPUT} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
