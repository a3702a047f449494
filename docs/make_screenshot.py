"""Regenerate ``docs/report.png``: the report of a 6-partition job with one failure.

Run from the repository root with the package installed: ``python docs/make_screenshot.py``.
Needs Debian's ``chromium`` (``apt-get install chromium``); runs it headless with the
network blocked, exactly as ``tests/test_report.py`` does.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from dj_observe.report import chromium_command, write_report
from dj_observe.synthetic import JobSpec, write_job

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parent / "report.png"
MAX_BYTES = 300_000


def main() -> int:
    """Write the job, its report and the screenshot; returns the exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        job = write_job(root / "outputs", JobSpec(partitions=6, failed_partitions={2: 3}))
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
