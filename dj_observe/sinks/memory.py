"""An in-memory sink for tests, and ``capture_events`` to use it around a block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dj_observe.dispatch import Change, JobFeed
from dj_observe.events import AnyEvent

if TYPE_CHECKING:
    from dj_observe.hook import ObservabilityHook

__all__ = ["InMemorySink", "capture_events"]


class InMemorySink:
    """Keeps every change it is given, in order."""

    name = "memory"

    def __init__(self) -> None:
        self.changes: list[Change] = []

    @property
    def events(self) -> list[AnyEvent]:
        return [change.event for change in self.changes]

    def on_change(self, change: Change, feed: JobFeed) -> None:
        self.changes.append(change)

    def flush(self, timeout: float | None = None) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        """Nothing to release."""


@contextmanager
def capture_events(hook: ObservabilityHook) -> Iterator[InMemorySink]:
    """Record what ``hook`` emits inside the block: ``with capture_events(hook) as sink: ...``."""
    sink = InMemorySink()
    hook.dispatcher.sinks.append(sink)
    try:
        yield sink
    finally:
        hook.dispatcher.sinks.remove(sink)
