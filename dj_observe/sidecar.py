"""The sidecar: metrics and spans made in a process of their own, from the event log.

With ``sidecar: true`` the hook writes ``events.jsonl`` in the executor's process
(a few microseconds an event) and starts ``python -m dj_observe.sidecar_process``, which
follows the log as ``replay`` does and feeds the same metrics and trace sinks:
the same values and spans as in-process delivery (live equals replay), a poll
interval later.  The sidecar serves /metrics and pushes to the Pushgateway as
configured.  It stops when the hook closes its standard input, or when the
executor's process dies, after reading the log to its end.

Protocol on the sidecar's standard streams: the hook writes one JSON line
(``{"config": ..., "job_dir": ...}``) and later closes stdin; the sidecar
answers one JSON line (``{"metrics_url": ...}``) once its sinks are up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import select
import subprocess
import sys
from typing import Any

from dj_observe.config import ObservabilityConfig
from dj_observe.dispatch import HookStats

__all__ = ["POLL_INTERVAL", "Sidecar"]

POLL_INTERVAL = 0.2
"""Seconds between two looks at the log."""
READY_TIMEOUT = 30.0
"""Seconds :attr:`Sidecar.metrics_url` waits for the sidecar to start."""


class Sidecar:
    """The executor's handle on its sidecar process (never raises: failures are counted)."""

    name = "sidecar"

    def __init__(self, config: ObservabilityConfig, stats: HookStats) -> None:
        assert config.log_path is not None  # checked by ObservabilityConfig
        self.stats = stats
        self._answer: dict[str, Any] | None = None
        own = dataclasses.replace(config, sidecar=False, event_log=False, background=False)
        payload = {"config": dataclasses.asdict(own), "job_dir": str(config.log_path.parent)}
        try:
            self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", "dj_observe.sidecar_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
            )
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(payload).encode() + b"\n")
            self.process.stdin.flush()
        except OSError as exc:
            self.process = None
            stats.sink_failed(self.name, exc)

    @property
    def metrics_url(self) -> str | None:
        """Where the sidecar serves /metrics (waits for it to start), if it does."""
        if self._answer is None:
            self._answer = {}
            output = self.process.stdout if self.process is not None else None
            if output is not None and select.select([output], [], [], READY_TIMEOUT)[0]:
                with contextlib.suppress(ValueError):
                    self._answer = json.loads(output.readline() or b"{}")
        return self._answer.get("metrics_url")

    def close(self, timeout: float) -> None:
        """Let the sidecar read the log to its end and stop; kill it after ``timeout``."""
        process = self.process
        if process is None:
            return
        self.process = None
        try:
            assert process.stdin is not None
            process.stdin.close()
            code = process.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            process.kill()
            process.wait()
            self.stats.sink_failed(self.name, exc)
            return
        except OSError as exc:  # its stdin already broken: it died
            code = process.wait()
            if code == 0:
                self.stats.sink_failed(self.name, exc)
        if code != 0:
            self.stats.sink_failed(self.name, RuntimeError(f"sidecar exited with {code}"))
