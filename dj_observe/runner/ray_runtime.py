"""The Ray runtime a job runs on: a cluster it joins, or a private local one it starts.

A local runtime is always a new one (``address="local"``), never a cluster another process
on the machine started.  It gets Ray's token authentication explicitly
(``RAY_AUTH_MODE=token``: Ray's own default for a new local cluster, the token kept in
``~/.ray``), so Ray has no notice to print about it; a ``RAY_AUTH_MODE`` already set is
respected, and so are Ray's defaults when the caller imported Ray first.
"""

from __future__ import annotations

import os
import sys

__all__ = ["AUTH_MODE_VARIABLE", "start_ray"]

AUTH_MODE_VARIABLE = "RAY_AUTH_MODE"


def start_ray(address: str | None, num_cpus: int) -> None:
    """Join the cluster at ``address``, or start a local runtime with ``num_cpus`` workers.

    Does nothing when this process is already connected to Ray.
    """
    if address is None and "ray" not in sys.modules:  # Ray reads it once, when imported
        os.environ.setdefault(AUTH_MODE_VARIABLE, "token")
    import ray

    if ray.is_initialized():
        return
    ray.init(
        address=address or "local",  # "local": always a new runtime, never another's cluster
        num_cpus=None if address else num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
