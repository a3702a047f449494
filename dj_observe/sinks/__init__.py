"""Sinks: listeners that turn each folded event into an output (log, metrics, spans)."""

from dj_observe.sinks.eventlog import EventLogWriter
from dj_observe.sinks.memory import InMemorySink, capture_events

__all__ = ["EventLogWriter", "InMemorySink", "capture_events"]
