"""The event vocabulary: event types, the :class:`Event` record and the tolerant parser.

Every line of ``events.jsonl`` is one JSON object.  Two decoders turn lines into
:class:`Event` records and agree on every well-formed line:

* :data:`FAST_DECODER` decodes a whole block of well-typed lines in one call (the
  bulk reader's fast path);
* :func:`parse_line` accepts anything: it normalises types (``"3"`` becomes ``3``,
  an ISO date becomes epoch seconds), keeps unknown event types and unknown fields,
  and returns ``None`` instead of raising on a line that is not an event.
"""

from __future__ import annotations

import enum
import math
from datetime import datetime
from typing import Annotated, Any, Union

import msgspec

__all__ = [
    "FAST_DECODER",
    "FIELD_ORDER",
    "TYPED_DECODER",
    "AnyEvent",
    "Event",
    "EventType",
    "FoldEvent",
    "OpMetrics",
    "event_from_dict",
    "event_to_dict",
    "metadata_value",
    "nested",
    "op_metrics",
    "parse_line",
    "text",
]


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
"""Integers the fold can store; a larger one is treated as absent."""
_DECODE_ERRORS = (
    msgspec.DecodeError,
    msgspec.ValidationError,
    UnicodeDecodeError,
    ValueError,
    RecursionError,
)


class EventType(str, enum.Enum):
    """Every event type written by Data-Juicer executors and by dj-observe."""

    JOB_START = "job_start"
    JOB_COMPLETE = "job_complete"
    JOB_FAILED = "job_failed"
    JOB_RESTART = "job_restart"
    PARTITION_CREATION_START = "partition_creation_start"
    PARTITION_CREATION_COMPLETE = "partition_creation_complete"
    PARTITION_START = "partition_start"
    PARTITION_COMPLETE = "partition_complete"
    PARTITION_FAILED = "partition_failed"
    PARTITION_RESUME = "partition_resume"
    OP_START = "op_start"
    OP_COMPLETE = "op_complete"
    OP_FAILED = "op_failed"
    CHECKPOINT_SAVE = "checkpoint_save"
    CHECKPOINT_LOAD = "checkpoint_load"
    DAG_BUILD_START = "dag_build_start"
    DAG_BUILD_COMPLETE = "dag_build_complete"
    DAG_NODE_READY = "dag_node_ready"
    DAG_NODE_START = "dag_node_start"
    DAG_NODE_COMPLETE = "dag_node_complete"
    DAG_NODE_FAILED = "dag_node_failed"
    DAG_PARALLEL_GROUP_START = "dag_parallel_group_start"
    DAG_PARALLEL_GROUP_COMPLETE = "dag_parallel_group_complete"
    DAG_EXECUTION_PLAN_SAVED = "dag_execution_plan_saved"
    DAG_EXECUTION_PLAN_LOADED = "dag_execution_plan_loaded"
    PROCESSING_START = "processing_start"
    PROCESSING_COMPLETE = "processing_complete"
    PROCESSING_ERROR = "processing_error"
    JOB_INFO = "job_info"
    """dj-observe's: what the executor's configuration says of the job (``metadata``:
    ``pipeline``, ``executor_type``, ``checkpoint_strategy``, ``operations``)."""
    PHASE_START = "phase_start"
    """dj-observe's: a phase of the job outside its ops began (``metadata.phase``: e.g.
    ``dataset_load``, ``partitioning``, ``export``, ``checkpoint_write``)."""
    PHASE_COMPLETE = "phase_complete"
    """dj-observe's: that phase ended (``status: "failed"`` if it raised)."""

    def __str__(self) -> str:
        return self.value


class Event(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """One event, with the fields Data-Juicer writes.

    ``event_type`` is a plain string so that unknown types survive; compare it
    with :class:`EventType` members (they are ``str`` subclasses).  ``extra``
    holds fields this version does not know; the bulk reader leaves it empty.
    """

    event_type: Annotated[str, msgspec.Meta(min_length=1)]
    timestamp: float | None = None
    message: str | None = None
    event_id: str | None = None
    job_id: str | None = None
    partition_id: Int64 | None = None
    operation_name: str | None = None
    operation_idx: Int64 | None = None
    status: str | None = None
    duration: float | None = None
    error_message: str | None = None
    stack_trace: str | None = None
    retry_count: Int64 | None = None
    checkpoint_path: str | None = None
    op_args: dict[str, Any] | None = None
    input_rows: Int64 | None = None
    output_rows: Int64 | None = None
    output_path: str | None = None
    sample_count: Int64 | None = None
    partition_meta: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    total_partitions: Int64 | None = None
    successful_partitions: Int64 | None = None
    failed_partitions: Int64 | None = None
    job_duration: float | None = None
    completion_time: float | None = None
    failure_time: float | None = None
    error_type: str | None = None
    process_id: Int64 | None = None
    thread_id: Int64 | None = None
    measured: str | None = None
    """Set on op events that dj-observe measured where the op ran (``"driver"`` or
    ``"workers"``): they take precedence over the executor's own op events for that run."""
    extra: dict[str, Any] | None = None


class OpMetrics(msgspec.Struct, gc=False):
    """The op measurements Data-Juicer may put in ``metadata`` (any scalar type accepted)."""

    input_rows: int | float | str | None = None
    output_rows: int | float | str | None = None
    duration_seconds: int | float | str | None = None
    dag_node_id: int | float | str | None = None
    cpu_seconds: int | float | str | None = None
    """dj-observe's measured events: CPU seconds the op's own calls used."""
    peak_rss_bytes: int | float | str | None = None
    """dj-observe's measured events: the peak resident memory of the processes that ran it."""


class FoldEvent(msgspec.Struct, kw_only=True, gc=False):
    """The fields the fold reads, for bulk reading.

    Nested objects and the message stay raw JSON (``msgspec.Raw``) until a
    handler asks for them through :func:`nested` or :func:`text`, so the bulk
    reader parses only what the fold needs.
    """

    event_type: Annotated[str, msgspec.Meta(min_length=1)]
    timestamp: float | None = None
    job_id: str | None = None
    partition_id: Int64 | None = None
    operation_name: str | None = None
    operation_idx: Int64 | None = None
    status: str | None = None
    duration: float | None = None
    job_duration: float | None = None
    error_message: str | None = None
    error_type: str | None = None
    input_rows: Int64 | None = None
    output_rows: Int64 | None = None
    sample_count: Int64 | None = None
    process_id: Int64 | None = None
    measured: str | None = None
    message: msgspec.Raw = msgspec.Raw()
    metadata: msgspec.Raw = msgspec.Raw()
    config: msgspec.Raw = msgspec.Raw()
    partition_meta: msgspec.Raw = msgspec.Raw()
    op_args: msgspec.Raw = msgspec.Raw()


AnyEvent = Event | FoldEvent
"""What the fold accepts: a full event, or the bulk reader's lean one."""

FIELD_ORDER: tuple[str, ...] = tuple(name for name in Event.__struct_fields__ if name != "extra")
"""Data-Juicer's key order for a log line (its ``Event`` dataclass's field order)."""

FAST_DECODER = msgspec.json.Decoder(FoldEvent)
"""Strict decoder for blocks of well-typed lines (``decode_lines``); raises on any bad line."""


class _Tagged(msgspec.Struct, tag_field="event_type", kw_only=True, gc=False):
    """Base of the per-type lean events: what every event type gives the fold."""

    timestamp: float | None = None
    job_id: str | None = None


class _OpFields(_Tagged, kw_only=True, gc=False):
    """What the fold reads from the frequent op events; ``metadata`` decoded in the same pass."""

    partition_id: Int64 | None = None
    operation_name: str | None = None
    operation_idx: Int64 | None = None
    status: str | None = None
    duration: float | None = None
    error_message: str | None = None
    input_rows: Int64 | None = None
    output_rows: Int64 | None = None
    measured: str | None = None
    message: msgspec.Raw = msgspec.Raw()
    metadata: OpMetrics | None = None
    op_args: msgspec.Raw = msgspec.Raw()


_LEAN_FIELDS = {
    # The fold's handlers read only these fields of the most frequent event types;
    # every other known type gets all of FoldEvent's fields.
    EventType.OP_START: _OpFields,
    EventType.OP_COMPLETE: _OpFields,
    EventType.CHECKPOINT_SAVE: _OpFields,
    EventType.DAG_NODE_READY: _Tagged,
    EventType.DAG_NODE_START: _Tagged,
    EventType.DAG_NODE_COMPLETE: _Tagged,
    EventType.DAG_NODE_FAILED: _Tagged,
    EventType.DAG_PARALLEL_GROUP_START: _Tagged,
    EventType.DAG_PARALLEL_GROUP_COMPLETE: _Tagged,
}
_FOLD_FIELDS = [
    (info.name, info.type, info.default)
    for info in msgspec.structs.fields(FoldEvent)
    if info.name not in _Tagged.__struct_fields__ and info.name != "event_type"
]


def _typed_event(kind: EventType) -> type[msgspec.Struct]:
    base = _LEAN_FIELDS.get(kind)
    return msgspec.defstruct(
        f"Fold_{kind.value}",
        [] if base else _FOLD_FIELDS,
        bases=(base or _Tagged,),
        tag=kind.value,
        namespace={"event_type": kind.value, "__module__": __name__},
        kw_only=True,
        gc=False,
    )


TYPED_DECODER = msgspec.json.Decoder(Union[tuple(_typed_event(kind) for kind in EventType)])  # noqa: UP007
"""The bulk reader's first try: one lean struct per known event type, chosen by
``event_type``, with only the fields the fold reads (an op event's ``metadata``
decoded in the same pass).  Raises on an unknown type or any bad line; the
reader then falls back to :data:`FAST_DECODER`."""


_OP_METRICS_DECODER = msgspec.json.Decoder(OpMetrics)

_NO_METRICS = OpMetrics()

_GENERIC_DECODER = msgspec.json.Decoder()

_INT_FIELDS = frozenset(
    {
        "partition_id",
        "operation_idx",
        "retry_count",
        "input_rows",
        "output_rows",
        "total_partitions",
        "successful_partitions",
        "failed_partitions",
        "process_id",
        "thread_id",
    }
)
_FLOAT_FIELDS = frozenset(
    {"timestamp", "duration", "job_duration", "completion_time", "failure_time"}
)
_STR_FIELDS = frozenset(
    {
        "message",
        "event_id",
        "job_id",
        "operation_name",
        "status",
        "error_message",
        "stack_trace",
        "checkpoint_path",
        "output_path",
        "error_type",
        "measured",
    }
)
_DICT_FIELDS = frozenset({"op_args", "partition_meta", "config", "metadata"})
_KNOWN_FIELDS = _INT_FIELDS | _FLOAT_FIELDS | _STR_FIELDS | _DICT_FIELDS | {"event_type"}


def to_int(value: Any) -> int | None:
    """Coerce a JSON value to a 64-bit int, or ``None`` when it is not one (``"3"`` -> 3)."""
    if value is None:
        return None
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    number = _to_int(value)
    return number if number is not None and INT64_MIN <= number <= INT64_MAX else None


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            number = to_float(text)
            return int(number) if number is not None and number.is_integer() else None
    return None


def to_float(value: Any) -> float | None:
    """Coerce a JSON value to a finite float; ISO-8601 strings become epoch seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float's range
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                return datetime.fromisoformat(text).timestamp()
            except (ValueError, OverflowError, OSError):
                return None
        return number if math.isfinite(number) else None
    return None


def _to_str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, str):
        return value
    return str(value).lower() if isinstance(value, bool) else str(value)


def event_from_dict(data: dict[str, Any]) -> Event | None:
    """Build a normalised :class:`Event` from a decoded JSON object.

    Returns ``None`` when the object has no usable ``event_type``.  Fields of the
    wrong type are coerced where the meaning is clear and dropped otherwise.
    """
    event_type = _to_str(data.get("event_type"))
    if not event_type:
        return None
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        if value is None or key == "event_type":
            continue
        if key in _INT_FIELDS:
            converted: Any = to_int(value)
        elif key in _FLOAT_FIELDS:
            converted = to_float(value)
        elif key in _STR_FIELDS:
            converted = _to_str(value)
        elif key in _DICT_FIELDS:
            converted = value if isinstance(value, dict) else None
        else:
            if isinstance(key, str):
                extra[key] = value
            continue
        if converted is not None:
            fields[key] = converted
    if extra:
        fields["extra"] = extra
    return Event(event_type=event_type, **fields)


def parse_line(line: bytes | str) -> Event | None:
    """Parse one log line; never raises.  ``None`` means "not an event" (count it)."""
    try:
        data = _GENERIC_DECODER.decode(line)
        if not isinstance(data, dict):
            return None
        return event_from_dict(data)
    except _DECODE_ERRORS:
        return None


def event_to_dict(event: Event) -> dict[str, Any]:
    """The event as the JSON object written to the log (unset fields omitted, extras inlined)."""
    data = msgspec.structs.asdict(event)
    extra = data.pop("extra", None) or {}
    out = {key: value for key, value in data.items() if value is not None}
    for key, value in extra.items():
        out.setdefault(key, value)
    return out


def nested(value: dict[str, Any] | msgspec.Raw | None) -> dict[str, Any]:
    """A nested object (``metadata``, ``config``...), decoded on demand; ``{}`` if absent."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if not value:
        return {}
    try:
        data = _GENERIC_DECODER.decode(value)
    except _DECODE_ERRORS:
        return {}
    return data if isinstance(data, dict) else {}


def text(value: str | msgspec.Raw | None) -> str | None:
    """A string field that may still be raw JSON (the lean event's ``message``)."""
    if value is None or type(value) is str:
        return value
    if not value:
        return None
    try:
        return _to_str(_GENERIC_DECODER.decode(value))
    except _DECODE_ERRORS:
        return None


def op_metrics(event: AnyEvent) -> OpMetrics:
    """The ``metadata`` fields that describe an op run, decoded without the rest."""
    # TYPED_DECODER's op events carry it decoded already (they are neither Event nor FoldEvent).
    raw: dict[str, Any] | msgspec.Raw | OpMetrics | None = event.metadata
    if isinstance(raw, OpMetrics):
        return raw
    if raw is None or not raw:
        return _NO_METRICS
    if isinstance(raw, dict):
        return OpMetrics(
            **{key: raw.get(key) for key in OpMetrics.__struct_fields__ if _scalar(raw.get(key))}
        )
    try:
        return _OP_METRICS_DECODER.decode(raw)
    except _DECODE_ERRORS:
        data = nested(raw)
        return OpMetrics(
            **{key: data.get(key) for key in OpMetrics.__struct_fields__ if _scalar(data.get(key))}
        )


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def metadata_value(event: AnyEvent, key: str) -> Any:
    """A field that Data-Juicer writes either at top level or inside ``metadata``."""
    value = getattr(event, key, None) if key in _KNOWN_FIELDS else None
    if value is None:
        value = nested(event.metadata).get(key)
    return value
