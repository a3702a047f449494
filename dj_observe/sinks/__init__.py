"""Sinks: listeners that turn each folded event into an output (log, metrics, spans)."""

from dj_observe.sinks.eventlog import EventLogSink
from dj_observe.sinks.memory import InMemorySink, capture_events

__all__ = ["EventLogSink", "InMemorySink", "capture_events"]
