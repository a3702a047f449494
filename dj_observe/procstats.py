"""What the current process used, for per-op resource figures: its peak resident memory."""

from __future__ import annotations

import resource
import sys

__all__ = ["peak_rss_bytes"]

_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _UNIT
