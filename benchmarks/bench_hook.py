"""Per-event cost of the hook against the upstream event logger, and the cost of a scrape.

Usage::

    python benchmarks/bench_hook.py [--events N] [--repeat N] [--output benchmarks/RESULTS.md]

Every scenario runs in a fresh subprocess over the same realistic mix of events
(per partition: ``partition_start``, then ``op_start``, ``op_complete`` and
``checkpoint_save`` for each of 8 ops, then ``partition_complete``):

* ``floor``: append an orjson line to an open file and flush it;
* ``upstream (real, 1 sink)``: Data-Juicer's own ``EventLoggingMixin._log_event`` and
  ``EventLogger`` with one loguru file sink (the issue's measured configuration, and
  the baseline of its target);
* ``upstream (real)``: the same with the loguru set-up ``dj-process`` makes (both
  need the ``data-juicer`` extra; left out without it);
* ``upstream (1 sink)``: an emulation of what Data-Juicer's ``EventLogger`` does per event: build
  its ``Event`` dataclass (uuid4 event id), format the human line and log it
  through loguru with one file sink, then open the JSONL file, append
  ``json.dumps`` of the non-null fields and close it;
* ``upstream (all sinks)``: the same with loguru's stderr sink (to /dev/null) and
  the per-level files of the spec's log layout;
* ``hook: event log only``, ``hook: all sinks`` (event log, metrics, spans to an
  OTLP-JSON file; background delivery, the default), ``hook: all sinks,
  inline`` (everything on the caller's thread) and ``hook: all sinks, sidecar``
  (metrics and spans made by the sidecar process that follows the log).

For each: wall time per event on the caller's thread, and CPU time per event of
the executor's process (all threads) including draining the hook at close; for
the sidecar also its own CPU time per event, its start-up (measured by a run
with no events in the same process) excluded.  The
scrape part folds jobs of 100 and 10,000 partitions x 10 ops into a metrics sink
and times ``generate_latest`` of the registry and its size.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report import RESULTS, machine_info, write_section  # noqa: E402 - sibling module

OPS = [f"op_{index}_mapper" for index in range(8)]
SCENARIOS = (
    "floor",
    "upstream_real_one",
    "upstream_real",
    "upstream_one",
    "upstream_all",
    "hook_log",
    "hook_all",
    "hook_inline",
    "hook_sidecar",
)
LABELS = {
    "floor": "floor: orjson line to an open file + flush",
    "upstream_real_one": "upstream: Data-Juicer's own EventLogger, 1 loguru file sink",
    "upstream_real": "upstream: Data-Juicer's own EventLogger, its own logger set-up",
    "upstream_one": "upstream, emulated: EventLogger, 1 loguru file sink",
    "upstream_all": "upstream, emulated: EventLogger, all its loguru sinks",
    "hook_log": "hook: event log only",
    "hook_all": "hook: all sinks (log, metrics, spans), background thread",
    "hook_inline": "hook: all sinks, inline",
    "hook_sidecar": "hook: all sinks, sidecar process",
}
NEEDS_DATA_JUICER = ("upstream_real_one", "upstream_real")
TARGET_RATIO = 0.1


def event_mix(count: int) -> list[dict[str, Any]]:
    """``count`` events of a realistic job, as keyword fields of the hook's ``emit``."""
    events: list[dict[str, Any]] = [
        {"event_type": "job_start", "message": "Job started", "metadata": {"operations": OPS}}
    ]
    partition = 0
    while len(events) < count - 1:
        events.append(
            {
                "event_type": "partition_start",
                "partition_id": partition,
                "message": f"Partition {partition} started processing",
            }
        )
        rows = 20000
        for index, name in enumerate(OPS):
            base = {"partition_id": partition, "operation_name": name, "operation_idx": index}
            events.append(
                {
                    "event_type": "op_start",
                    **base,
                    "input_rows": rows,
                    "message": f"Operation {name} (idx {index}) started",
                }
            )
            events.append(
                {
                    "event_type": "op_complete",
                    **base,
                    "status": "success",
                    "duration": 0.0123,
                    "input_rows": rows,
                    "output_rows": rows - 7,
                    "message": f"Operation {name} (idx {index}) completed",
                    "metadata": {
                        "duration_seconds": 0.0123,
                        "input_rows": rows,
                        "output_rows": rows - 7,
                    },
                }
            )
            events.append(
                {
                    "event_type": "checkpoint_save",
                    **base,
                    "checkpoint_path": f"/data/checkpoints/p{partition}_op{index}.parquet",
                    "message": f"Checkpoint saved for operation {name}",
                }
            )
            rows -= 7
        events.append(
            {
                "event_type": "partition_complete",
                "partition_id": partition,
                "message": f"Partition {partition} completed successfully",
            }
        )
        partition += 1
    events.append(
        {
            "event_type": "job_complete",
            "status": "completed",
            "duration": 60.0,
            "message": "Job completed successfully",
        }
    )
    return events[:count]


# -- the scenarios, each run in its own process ------------------------------------------


@dataclass
class _UpstreamEvent:
    """Data-Juicer's ``Event`` dataclass (the fields its helpers fill)."""

    event_type: str
    timestamp: float
    message: str
    event_id: str | None = None
    job_id: str | None = None
    partition_id: int | None = None
    operation_name: str | None = None
    operation_idx: int | None = None
    status: str | None = None
    duration: float | None = None
    error_message: str | None = None
    checkpoint_path: str | None = None
    input_rows: int | None = None
    output_rows: int | None = None
    metadata: dict[str, Any] | None = None
    process_id: int | None = None
    thread_id: int | None = None


def _one_file_sink(work: Path) -> None:
    """Loguru with one file sink, as Data-Juicer's ``EventLogger`` adds for its events."""
    from loguru import logger

    logger.remove()
    logger.add(
        work / "logs" / "events.log",
        format="{time:YYYY-MM-DD HH:mm:ss.SSS} | {level} | {message}",
        rotation="100 MB",
        retention=5,
        compression="gz",
    )


def _upstream(work: Path, all_sinks: bool) -> Any:
    from loguru import logger

    _one_file_sink(work)
    if all_sinks:
        logger.add(lambda message: None, level="INFO")  # loguru's default stderr sink
        logger.add(work / "logs" / "log.txt", rotation="100 MB")
        for level in ("DEBUG", "WARNING", "ERROR"):
            logger.add(
                work / "logs" / f"log_{level}.txt",
                level=level,
                rotation="100 MB",
                filter=lambda record, level=level: record["level"].name == level,
            )
    jsonl = work / "events.jsonl"
    lock = threading.Lock()

    def emit(fields: dict[str, Any]) -> None:
        kind = fields["event_type"]
        event = _UpstreamEvent(
            timestamp=time.time(),
            process_id=os.getpid(),
            thread_id=threading.get_ident(),
            job_id="job",
            event_id=f"{kind}_{int(time.time())}_{uuid.uuid4().hex[:8]}",
            **fields,
        )
        parts = [
            f"EVENT[{kind}]",
            f"TIME[{_dt.datetime.fromtimestamp(event.timestamp).isoformat()}]",
        ]
        if event.partition_id is not None:
            parts.append(f"PARTITION[{event.partition_id}]")
        if event.operation_name:
            parts.append(f"OP[{event.operation_name}]")
        if event.duration is not None:
            parts.append(f"DURATION[{event.duration:.3f}s]")
        parts.append(f"MSG[{event.message}]")
        with lock:
            logger.info(" | ".join(parts))
            with open(jsonl, "a") as handle:
                handle.write(
                    json.dumps(
                        {key: value for key, value in event.__dict__.items() if value is not None}
                    )
                    + "\n"
                )

    return emit, lambda: None


def _upstream_real(work: Path, one_sink: bool) -> Any:
    """Data-Juicer's real ``EventLoggingMixin._log_event`` and ``EventLogger``, with one
    loguru file sink or with the loguru set-up ``dj-process`` makes (``setup_logger``:
    stderr and log files, enqueued; stderr goes to /dev/null)."""
    import data_juicer.utils.logger_utils as logger_utils
    from data_juicer.core.executor.event_logging_mixin import (
        EventLogger,
        EventLoggingMixin,
        EventType,
    )

    if one_sink:
        _one_file_sink(work)
    else:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the child's stderr, until it exits
        logger_utils.setup_logger(save_dir=str(work / "logs"), redirect=False)

    class Executor(EventLoggingMixin):
        def __init__(self) -> None:
            self.event_logger = EventLogger(str(work / "logs"), job_id="job", work_dir=str(work))

    executor = Executor()

    def emit(fields: dict[str, Any]) -> None:
        fields = dict(fields)
        kind = EventType(fields.pop("event_type"))
        executor._log_event(kind, fields.pop("message"), **fields)

    return emit, logger_utils.logger.complete


def _floor(work: Path) -> Any:
    import orjson

    handle = open(work / "events.jsonl", "ab")  # noqa: SIM115 - closed by the returned closer

    def emit(fields: dict[str, Any]) -> None:
        handle.write(
            orjson.dumps({"timestamp": time.time(), **fields}, option=orjson.OPT_APPEND_NEWLINE)
        )
        handle.flush()

    return emit, handle.close


def _hook(work: Path, scenario: str) -> Any:
    from dj_observe.hook import ObservabilityHook

    config: dict[str, Any] = {"tracing": {"exporter": "file"}}
    if scenario == "hook_log":
        config = {"metrics": {"enabled": False}, "tracing": {"enabled": False}}
    if scenario == "hook_inline":
        config["background"] = False
    if scenario == "hook_sidecar":
        config["sidecar"] = True
    hook = ObservabilityHook(config, work_dir=work, job_id="job", pipeline="bench")
    return hook.emit, hook.close


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sidecar_start_up(work: Path) -> float:
    """CPU seconds of a sidecar that starts and stops with no events (its imports, mostly)."""
    before = _children_cpu()
    _, close = _hook(work / "empty", "hook_sidecar")
    close()
    return _children_cpu() - before


def run_scenario(scenario: str, count: int) -> dict[str, float]:
    events = event_mix(count)
    with tempfile.TemporaryDirectory(prefix="dj-bench-hook-") as scratch:
        work = Path(scratch)
        (work / "logs").mkdir()
        start_up = _sidecar_start_up(work) if scenario == "hook_sidecar" else 0.0
        if scenario == "floor":
            emit, close = _floor(work)
        elif scenario.startswith("upstream_real"):
            emit, close = _upstream_real(work, one_sink=scenario == "upstream_real_one")
        elif scenario.startswith("upstream"):
            emit, close = _upstream(work, all_sinks=scenario == "upstream_all")
        else:
            emit, close = _hook(work, scenario)
        children = _children_cpu()
        cpu, wall = time.process_time(), time.perf_counter()
        for fields in events:
            emit(fields)
        caller = time.perf_counter() - wall
        close()
        total_cpu = time.process_time() - cpu
        total_wall = time.perf_counter() - wall
        sidecar = _children_cpu() - children - start_up
    return {
        "caller_us": caller / count * 1e6,
        "cpu_us": total_cpu / count * 1e6,
        "wall_us": total_wall / count * 1e6,
        "sidecar_us": sidecar / count * 1e6 if scenario == "hook_sidecar" else None,
        "sidecar_start_s": start_up,
    }


def run_scrape(partitions: int, ops: int = 10) -> dict[str, float]:
    from prometheus_client import disable_created_metrics, generate_latest

    from dj_observe.dispatch import Dispatcher
    from dj_observe.events import Event
    from dj_observe.sinks.metrics import MetricsSink

    disable_created_metrics()
    sink = MetricsSink()
    dispatcher = Dispatcher([sink])
    clock = 1_700_000_000.0

    def send(**fields: Any) -> None:
        nonlocal clock
        clock += 0.001
        dispatcher.dispatch(Event(timestamp=clock, job_id="job", **fields), "job")

    names = [f"op_{index}" for index in range(ops)]
    send(event_type="job_start", metadata={"operations": names, "num_partitions": partitions})
    for pid in range(partitions):
        send(event_type="partition_start", partition_id=pid)
        for index, name in enumerate(names):
            send(
                event_type="op_start",
                partition_id=pid,
                operation_name=name,
                operation_idx=index,
                input_rows=100,
            )
            if pid == 7 and index == 3:
                send(
                    event_type="op_failed",
                    partition_id=pid,
                    operation_name=name,
                    operation_idx=index,
                    error_message="ValueError: bad row",
                )
                send(
                    event_type="partition_failed",
                    partition_id=pid,
                    error_message="ValueError: bad row",
                )
                break
            send(
                event_type="op_complete",
                partition_id=pid,
                operation_name=name,
                operation_idx=index,
                duration=0.01,
                input_rows=100,
                output_rows=90,
            )
        else:
            send(event_type="partition_complete", partition_id=pid)
    timings = []
    for _ in range(7):
        start = time.perf_counter()
        body = generate_latest(sink.registry)
        timings.append(time.perf_counter() - start)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return {"scrape_ms": min(timings) * 1e3, "bytes": len(body), "series": series}


# -- driver ----------------------------------------------------------------------------------


def _child(argv: list[str]) -> int:
    kind, value = argv[0], int(argv[1])
    result = run_scrape(value) if kind == "scrape" else run_scenario(kind, value)
    print("BENCH_RESULT " + json.dumps(result))
    return 0


def _spawn(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "_child", *args],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH_RESULT "))
    return json.loads(line.removeprefix("BENCH_RESULT "))


def _report(
    results: dict[str, dict[str, float]],
    scrapes: dict[int, dict[str, float]],
    count: int,
    command: str,
) -> list[str]:
    baseline_name = "upstream_real_one" if "upstream_real_one" in results else "upstream_one"
    baseline = results[baseline_name]["cpu_us"]
    sidecar = results["hook_sidecar"]
    lines = [
        "## Hook: per-event cost and scrape cost (bench_hook.py)",
        "",
        f"Date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"Command: `{command}`. {count:,} events per scenario, best of the repeats, "
        "each scenario in a fresh process.",
        "",
        "### Machine",
        "",
        *(f"- {key}: {value}" for key, value in machine_info().items()),
        "",
        "### Per event",
        "",
        "*caller* is the wall time per `emit` on the calling thread; *CPU* is the CPU time "
        "per event of the executor's process over all its threads, including draining the "
        "hook at `close()`; *sidecar CPU* is the sidecar process's own, its start-up "
        f"({sidecar['sidecar_start_s']:.2f} s, mostly imports) excluded. The ratio is CPU "
        f"against {LABELS[baseline_name]!r}, the configuration the issue measured.",
        "",
        "| scenario | caller us/event | CPU us/event | sidecar CPU us/event | ratio |",
        "|---|--:|--:|--:|--:|",
    ]
    for scenario in SCENARIOS:
        row = results.get(scenario)
        if row is None:
            continue
        side = f"{row['sidecar_us']:.1f}" if row.get("sidecar_us") is not None else "-"
        lines.append(
            f"| {LABELS[scenario]} | {row['caller_us']:.1f} | {row['cpu_us']:.1f} | {side} | "
            f"{row['cpu_us'] / baseline:.3f} |"
        )
    limit = TARGET_RATIO * baseline
    lines += [""]
    for scenario, what in (
        ("hook_sidecar", "the executor's CPU with all sinks on (sidecar)"),
        ("hook_all", "all sinks in the executor's process (background thread)"),
        ("hook_inline", "all sinks on the caller's thread"),
    ):
        cost = results[scenario]["cpu_us"]
        verdict = "met" if cost <= limit else "**not met**"
        lines.append(
            f"- Target (issue #3), at most {TARGET_RATIO:g} x the upstream logger "
            f"({limit:.1f} us), {what}: {cost:.1f} us, {verdict}."
        )
    machine = sidecar["cpu_us"] + sidecar["sidecar_us"]
    lines.append(
        f"- With the sidecar, the machine as a whole spends {machine:.1f} us an event "
        f"(executor {sidecar['cpu_us']:.1f} + sidecar {sidecar['sidecar_us']:.1f}): "
        f"{machine / baseline:.2f} x the upstream logger, on a second process."
    )
    lines += [
        "",
        "### /metrics scrape (10 ops, one failed partition)",
        "",
        "| partitions | scrape ms | bytes | samples |",
        "|--:|--:|--:|--:|",
    ]
    for partitions, row in scrapes.items():
        lines.append(
            f"| {partitions:,} | {row['scrape_ms']:.2f} | {row['bytes']:,} | {row['series']:,} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        return _child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    for _ in range(args.repeat):
        for scenario in SCENARIOS:
            if scenario in NEEDS_DATA_JUICER and importlib.util.find_spec("data_juicer") is None:
                continue  # pip install 'dj-observe[data-juicer]' to measure it
            row = _spawn(scenario, str(args.events))
            best = results.get(scenario)
            if best is None or row["cpu_us"] < best["cpu_us"]:
                results[scenario] = row
            print(f"{scenario:14s} {row}", file=sys.stderr)
    scrapes = {partitions: _spawn("scrape", str(partitions)) for partitions in (100, 10_000)}
    command = shlex.join(["python", "benchmarks/bench_hook.py", *argv])
    lines = _report(results, scrapes, args.events, command)
    print("\n".join(lines))
    write_section(args.output, "hook", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
