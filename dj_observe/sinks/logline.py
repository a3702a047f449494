"""A sink that writes one human-readable line per event to the job's ``logs/events.log``."""

from __future__ import annotations

import msgspec

from dj_observe.dispatch import Change, JobFeed
from dj_observe.events import Event, event_to_dict
from dj_observe.logging import event_logger, format_event_line

__all__ = ["EventLineSink"]


class EventLineSink:
    """Formats each event as Data-Juicer's ``EVENT[...] | TIME[...] | ...`` line (loguru)."""

    name = "events_log"

    def __init__(self) -> None:
        self.log = event_logger()

    def on_change(self, change: Change, feed: JobFeed) -> None:
        event = change.event
        fields = event_to_dict(event) if isinstance(event, Event) else msgspec.structs.asdict(event)
        self.log.info(format_event_line(fields))

    def flush(self, timeout: float | None = None) -> None:
        """loguru writes each line as it comes."""

    def close(self) -> None:
        """The handlers belong to :func:`dj_observe.logging.setup_logger`."""
