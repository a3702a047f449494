"""The sidecar's process (``python -m dj_observe.sidecar_process``): the protocol of
:mod:`dj_observe.sidecar` on its standard streams, the hook's sinks fed from the log."""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from typing import IO, Any

from dj_observe.config import ObservabilityConfig
from dj_observe.hook import ObservabilityHook
from dj_observe.replay import JobFollower
from dj_observe.sidecar import POLL_INTERVAL

__all__ = ["main"]


def main(stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> int:
    """Run the sidecar until ``stdin`` closes (see the module's protocol)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the executor; we follow it
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    payload: dict[str, Any] = json.loads(stdin.readline())
    hook = ObservabilityHook(ObservabilityConfig.from_dict(payload["config"]))
    try:
        try:
            stdout.write(json.dumps({"metrics_url": hook.metrics_url}).encode() + b"\n")
            stdout.flush()
        except OSError:  # the executor is gone already: finish its log all the same
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        follower = JobFollower(payload["job_dir"], hook.dispatcher)
        while True:
            follower.poll()
            readable, _, _ = select.select([stdin], [], [], POLL_INTERVAL)
            if readable and not os.read(stdin.fileno(), 4096):  # closed: the job is done
                follower.poll()
                return 0
    finally:
        hook.close()


if __name__ == "__main__":
    sys.exit(main())
