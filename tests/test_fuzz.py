"""Fuzzing every reader of hostile input: no view, ``serve`` or ``hook.emit`` ever raises.

Lines are arbitrary bytes, or real Data-Juicer lines with one field (or one ``metadata``
field) replaced by a hostile JSON token: integers of hundreds of digits, ``NaN`` and
``Infinity``, numbers beyond float's range, nesting thousands deep, invalid UTF-8, control
characters and rich markup, and the wrong type for the field.  Each log goes through the
snapshot (JSON and tables, piped and on a terminal), ``watch``'s views, the report,
``replay``, ``jobs`` and a serving exporter that is scraped after every poll; the hook
gets hostile Python values of every kind.  Examples are bounded (see ``SETTINGS``) so the
suite runs in well under a minute.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from support import TtyStringIO, scrape

from dj_observe.cli import main
from dj_observe.eventlog import EventLogReader
from dj_observe.events import FIELD_ORDER
from dj_observe.exposition import MetricsEndpoint
from dj_observe.hook import ObservabilityHook
from dj_observe.serve import JobsExporter
from dj_observe.sinks.memory import InMemorySink
from dj_observe.synthetic import JobSpec, events_for
from dj_observe.watch import watch

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

REAL_LINES = [
    line.encode()
    for _, line in itertools.islice(
        events_for(JobSpec(partitions=3, failed_partitions={1: 2}, style="data_juicer")), 200
    )
]
"""Lines of a real-format job (Data-Juicer's own layout), to mutate."""


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


HOSTILE_TOKENS = [
    b"1" + b"0" * 400,
    b"-" + b"9" * 400,
    b"1e400",
    b"-1e400",
    b"1e-400",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b'"' + b"9" * 400 + b'"',
    b'"1e400"',
    b'"9999-12-31T23:59:59"',
    b'"0001-01-01T00:00:00+14:00"',
    b"true",
    b"null",
    b"[]",
    b"{}",
    b"[1, [2, [3]]]",
    b'"\\ud800"',
    b'"\\u0000\\u001b]0;title\\u0007\\u001b[2J\\r"',
    b'"[/link] [bold]x[/] [/data/shard-0001.parquet]"',
    b'"\xff\xfe\xfd"',
    b'"' + b"x" * 100_000 + b'"',
    b"[" * 900 + b"]" * 900,
    b"[" * 5000 + b"]" * 5000,
    _deep(950),
    _deep(3000),
    b"-0",
    b"1e18",  # beyond the platform's time_t
    b"-62135600000",  # before year 1
    b"18446744073709551616",
    b"9223372036854775808",
]
PLACEHOLDER = "\x00hostile\x00"
FIELDS = [*FIELD_ORDER, "unknown_field"]


@st.composite
def mutated_lines(draw) -> bytes:
    """A real line with one field, or one of its ``metadata``'s, set to a hostile token."""
    data = json.loads(draw(st.sampled_from(REAL_LINES)))
    token = draw(st.sampled_from(HOSTILE_TOKENS))
    if draw(st.booleans()) or not isinstance(data.get("metadata"), dict):
        data[draw(st.sampled_from(FIELDS))] = PLACEHOLDER
    else:
        keys = [*data["metadata"], "input_rows", "duration_seconds", "operations"]
        data["metadata"][draw(st.sampled_from(keys))] = PLACEHOLDER
    return json.dumps(data).encode().replace(json.dumps(PLACEHOLDER).encode(), token)


lines = st.one_of(
    mutated_lines(),
    mutated_lines(),
    st.sampled_from(REAL_LINES),
    st.binary(max_size=80).map(lambda data: data.replace(b"\n", b" ")),
)
logs = st.lists(lines, min_size=1, max_size=12).map(lambda chosen: b"\n".join(chosen) + b"\n")


def run(*argv: str, stdout: io.StringIO | None = None) -> int:
    err = io.StringIO()
    code = main(list(argv), stdout=stdout or io.StringIO(), stderr=err)
    assert "Traceback" not in err.getvalue()
    assert code == 0 or "unexpected" not in err.getvalue(), err.getvalue()
    return code


OUT_OF_RANGE = (
    b'{"event_type":"op_start","timestamp":1' + b"0" * 400 + b',"partition_id":0}\n'
    b'{"event_type":"op_complete","partition_id":0,"duration":1e400,"timestamp":1}\n'
)
"""The lines that once stopped every view (``OverflowError``)."""


@settings(SETTINGS, max_examples=60)
@given(log=logs)
@example(log=OUT_OF_RANGE)
def test_every_view_survives_a_hostile_log(log):
    with tempfile.TemporaryDirectory() as root:
        job_dir = Path(root, "outputs", "job")
        job_dir.mkdir(parents=True)
        (job_dir / "events.jsonl").write_bytes(log)
        out = io.StringIO()
        assert run("snapshot", str(job_dir), stdout=out) == 0
        json.loads(out.getvalue())
        for stream in (io.StringIO, TtyStringIO):
            assert run("snapshot", "--human-readable", str(job_dir), stdout=stream()) == 0
            assert run("jobs", str(job_dir.parent), stdout=stream()) == 0
            assert watch(job_dir, stream(), interval=0.01, max_refreshes=1) in (0, 4)
        assert run("report", str(job_dir), "-o", str(Path(root, "report.html"))) == 0
        assert run("replay", str(job_dir)) in (0, 3)


@pytest.fixture(scope="module")
def serving(tmp_path_factory):
    """A serving exporter: job directories under ``outputs``, /metrics on a free port."""
    outputs = tmp_path_factory.mktemp("served")
    exporter = JobsExporter(outputs, retention=math.inf)
    endpoint = MetricsEndpoint(exporter.registry, "127.0.0.1", 0)
    yield outputs, exporter, endpoint.url
    endpoint.close()


_served_jobs = itertools.count()


@SETTINGS
@given(log=logs)
@example(log=OUT_OF_RANGE)
def test_serve_keeps_serving_hostile_logs(serving, log):
    outputs, exporter, url = serving
    job_dir = outputs / f"job{next(_served_jobs)}"
    job_dir.mkdir()
    half = len(log) // 2
    (job_dir / "events.jsonl").write_bytes(log[:half])
    exporter.poll()
    with (job_dir / "events.jsonl").open("ab") as handle:  # the rest is appended later
        handle.write(log[half:])
    exporter.poll()
    list(text_string_to_metric_families(scrape(url)))  # every scrape parses
    assert not exporter.stats.sink_errors


# -- the hook ------------------------------------------------------------------------------


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"k": value}
    return value


class _Odd:
    def __str__(self) -> str:
        return "odd \x1b]0;x\x07"


python_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, 2**64, -(2**63) - 1]),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308]),
    st.text(max_size=20),
    st.sampled_from(["\ud800", "[/link]", "s3://k:secret@b/x", "password=x", "\x1b[2J"]),
    st.binary(max_size=8),
    st.builds(_Odd),
)
python_values = st.one_of(
    st.recursive(
        python_scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.tuples(inner, inner),
            st.dictionaries(
                st.one_of(
                    st.text(max_size=8),
                    st.integers(),
                    st.none(),
                    st.sampled_from(["password", "apiKey", "x-api-key"]),
                ),
                inner,
                max_size=3,
            ),
        ),
        max_leaves=6,
    ),
    st.sampled_from([50, 900, 1100, 3000]).map(_nested),
    st.frozensets(st.integers(), max_size=3),
)
event_types = st.one_of(
    st.sampled_from(["op_start", "op_complete", "partition_failed", "job_start", "job_failed"]),
    python_values,
)
_POSITIONAL = {"event_type", "partition_id", "operation_name", "operation_idx", "status"}
"""Fields ``op_complete`` takes as its own arguments."""
hostile_fields = st.dictionaries(st.sampled_from(FIELDS), python_values, max_size=5)


@pytest.fixture(scope="module")
def hooks(tmp_path_factory):
    """An inline and a background hook with every in-process sink, sharing nothing."""
    made = []
    for background in (False, True):
        work_dir = tmp_path_factory.mktemp(f"hook-{background}")
        made.append(
            (
                ObservabilityHook(
                    {"background": background, "tracing": {"exporter": "file"}},
                    work_dir=work_dir,
                    job_id="fuzz",
                    registry=CollectorRegistry(),
                    sinks=[InMemorySink()],
                ),
                work_dir,
            )
        )
    yield made
    for hook, _ in made:
        hook.close()


@settings(SETTINGS, max_examples=200)
@given(event_type=event_types, fields=hostile_fields)
@example(event_type="op_start", fields={"timestamp": 10**400, "duration": 10**400})
def test_hook_emit_never_raises(hooks, event_type, fields):
    for hook, work_dir in hooks:
        hook.emit(event_type, **fields)
        hook.emit({"event_type": event_type, **fields})
        hook.op_complete(0, "op", 0, **{k: v for k, v in fields.items() if k not in _POSITIONAL})
        hook.flush()
        for _ in EventLogReader(work_dir).read():  # what it wrote is readable
            pass
