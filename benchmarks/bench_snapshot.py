"""Benchmark of ``dj-observe snapshot`` against a floor measured in the same run.

Usage::

    python benchmarks/bench_snapshot.py [--sizes 100k,1m,3m:1] [--data-dir DIR]
                                        [--repeat N] [--output benchmarks/RESULTS.md]

For every size it generates (once, cached in ``--data-dir``) a job directory in
Data-Juicer's real format with :func:`dj_observe.synthetic.write_job`, then runs,
each in a fresh subprocess so that peak RSS is per process:

* the floor: ``for line in f: orjson.loads(line)`` over every ``events*.jsonl`` line;
* ``dj-observe snapshot <dir> -o <tmp>`` (the CLI, in-process via ``cli.main``),
  with the default 2 workers and with ``--workers 1``;
* a re-snapshot through the offset reader: ``generate_snapshot()`` once, append
  1,000 events, time ``generate_snapshot()`` again, and time rendering the full
  JSON document to ``/dev/null``.

``--sizes`` takes ``SIZE[:REPEAT]`` items (``3m:1`` runs the 3M size once).  See
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import inspect
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report import machine_info, write_section  # noqa: E402 - a sibling module of this script

DEFAULT_DATA_DIR = HERE / ".data"
DEFAULT_OUTPUT = HERE / "RESULTS.md"
DEFAULT_SIZES = "100k,1m,3m:1"

RESULT_PREFIX = "BENCH_RESULT "
APPENDED_EVENTS = 1000
HEADER_EVENTS = 4  # job_start, dag_build_start, dag_build_complete, job_start
FAILED_AT_OPS = (2, 5, 7)  # a few partitions fail, at these op indices
BYTES_PER_EVENT_ESTIMATE = 650  # log line plus its share of the DAG plan
DISK_HEADROOM = 6 << 30
CHILD_TIMEOUT = 900

TARGETS = {
    "events": 1_000_000,
    "snapshot_s": 1.3,
    "rss_mb": 150.0,
    "resnapshot_ms": 50.0,
}

# -- sizes and the generated jobs ----------------------------------------------------


@dataclass
class Size:
    label: str
    events: int
    repeat: int


def parse_sizes(text: str, default_repeat: int) -> list[Size]:
    sizes = []
    for item in filter(None, (part.strip().lower() for part in text.split(","))):
        label, _, repeat = item.partition(":")
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([km]?)", label)
        if not match:
            raise SystemExit(f"bad size {item!r}: use e.g. 100k, 1m, 3m or 3m:1")
        scale = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2)]
        events = int(float(match.group(1)) * scale)
        if events < 1000:
            raise SystemExit(f"size {item!r} is too small (at least 1k events)")
        sizes.append(Size(label, events, int(repeat) if repeat else default_repeat))
    return sizes


def _ops() -> tuple[str, ...]:
    from dj_observe.synthetic import DEFAULT_OPS

    return DEFAULT_OPS


def events_per_partition() -> int:
    """Data-Juicer style: partition_start + 5 per op + partition_complete."""
    return 2 + 5 * len(_ops())


def partitions_for(events: int) -> tuple[int, dict[int, int]]:
    """The partition count whose log has about ``events`` events, and the failures."""
    per = events_per_partition()
    # A partition failing at op k writes partition_start, k whole ops,
    # dag_node_start + op_start of op k, and partition_failed.
    lost = sum(per - (1 + 5 * k + 3) for k in FAILED_AT_OPS)
    count = max(10, math.ceil((events - HEADER_EVENTS + lost) / per))
    fractions = (5, 2, 1.25)  # partitions P/5, P/2 and 4P/5
    failed = {int(count / f): k for f, k in zip(fractions, FAILED_AT_OPS, strict=True)}
    return count, failed


def job_spec(size: Size) -> Any:
    from dj_observe.synthetic import JobSpec

    partitions, failed = partitions_for(size.events)
    return JobSpec(
        style="data_juicer",
        partitions=partitions,
        parallelism=8,
        failed_partitions=failed,
        summary=False,
    )


def _generator_digest() -> str:
    import dj_observe.synthetic as synthetic

    return hashlib.sha256(Path(synthetic.__file__).read_bytes()).hexdigest()[:16]


def _cache_key(size: Size) -> dict[str, Any]:
    spec = job_spec(size)
    return {
        "target_events": size.events,
        "style": spec.style,
        "partitions": spec.partitions,
        "parallelism": spec.parallelism,
        "failed_partitions": {str(k): v for k, v in spec.failed_partitions.items()},
        "summary": spec.summary,
        "seed": spec.seed,
        "generator_sha256": _generator_digest(),
    }


@dataclass
class Dataset:
    size: Size
    job_dir: Path
    partitions: int
    failed: dict[int, int]
    events: int
    log_bytes: int
    plan_bytes: int
    log_files: list[str]
    generated_s: float | None = None

    @property
    def log_mb(self) -> float:
        return self.log_bytes / 1e6

    @property
    def avg_line(self) -> float:
        return self.log_bytes / self.events if self.events else 0.0


def _event_logs(job_dir: Path) -> list[Path]:
    return sorted(job_dir.glob("events*.jsonl"))


def _count_lines(paths: list[Path]) -> tuple[int, int]:
    lines = size = 0
    for path in paths:
        with path.open("rb") as handle:
            while block := handle.read(16 << 20):
                lines += block.count(b"\n")
                size += len(block)
    return lines, size


def _load_cached(root: Path, key: dict[str, Any], size: Size) -> Dataset | None:
    meta_path = root / "bench-meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("key") != key:
        return None
    job_dir = root / meta["job_dir"]
    for name, expected in meta["file_sizes"].items():
        try:
            if (job_dir / name).stat().st_size != expected:
                return None
        except OSError:
            return None
    return Dataset(
        size=size,
        job_dir=job_dir,
        partitions=key["partitions"],
        failed={int(k): v for k, v in key["failed_partitions"].items()},
        events=meta["events"],
        log_bytes=meta["log_bytes"],
        plan_bytes=meta["plan_bytes"],
        log_files=meta["log_files"],
    )


def ensure_dataset(size: Size, data_dir: Path, notes: list[str]) -> Dataset | None:
    """The cached job directory for ``size``, generated if missing or stale."""
    root = data_dir / size.label
    key = _cache_key(size)
    cached = _load_cached(root, key, size)
    if cached is not None:
        log(f"[{size.label}] using cached job in {cached.job_dir}")
        return cached
    data_dir.mkdir(parents=True, exist_ok=True)
    needed = size.events * BYTES_PER_EVENT_ESTIMATE
    free = shutil.disk_usage(data_dir).free
    if free < needed + DISK_HEADROOM:
        note = (
            f"{size.label}: skipped, {free / 2**30:.1f} GiB free on the data disk "
            f"(needs about {needed / 2**30:.1f} GiB plus {DISK_HEADROOM >> 30} GiB headroom)"
        )
        log(note)
        notes.append(note)
        return None
    log(f"[{size.label}] generating {job_spec(size).partitions} partitions ...")
    # In a child process: the generator's peak memory must not inflate the driver,
    # whose memory every measured process would otherwise start from.
    done = run_child("generate", size.label, str(size.events), str(data_dir))
    dataset = _load_cached(root, key, size)
    if dataset is None:
        raise SystemExit(f"generating {size.label} left no usable job in {root}")
    dataset.generated_s = done.seconds
    log(
        f"[{size.label}] generated {dataset.events} events, {dataset.log_mb:.0f} MB "
        f"in {done.seconds:.1f} s (generator peak RSS {done.rss_mb:.0f} MB)"
    )
    return dataset


def child_generate(label: str, events: str, data_dir: str) -> None:
    from dj_observe.synthetic import write_job

    size = Size(label, int(events), 1)
    root = Path(data_dir) / label
    staging = Path(data_dir) / f".{label}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    job_dir = write_job(staging, job_spec(size))
    generated = time.perf_counter() - started
    logs = _event_logs(job_dir)
    count, log_bytes = _count_lines(logs)
    plan = job_dir / "dag_execution_plan.json"
    meta = {
        "key": _cache_key(size),
        "job_dir": job_dir.name,
        "events": count,
        "log_bytes": log_bytes,
        "plan_bytes": plan.stat().st_size if plan.exists() else 0,
        "log_files": [path.name for path in logs],
        "file_sizes": {path.name: path.stat().st_size for path in logs},
        "generated_s": round(generated, 2),
    }
    (staging / "bench-meta.json").write_text(json.dumps(meta, indent=2))
    staging.rename(root)
    _report({"seconds": generated})


# -- the measured children -------------------------------------------------------------


def _maxrss_mb(who: str) -> float:
    """Peak resident set size, in MB, of this process or of its largest reaped child.

    For this process, Linux's ``VmHWM`` (the high-water mark of its own address
    space) is used: ``ru_maxrss`` of an exec'ed process also counts the memory of
    the process that spawned it, before the exec.
    """
    import resource

    if who == "self":
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
        except (OSError, ValueError):
            pass
    which = resource.RUSAGE_SELF if who == "self" else resource.RUSAGE_CHILDREN
    value = resource.getrusage(which).ru_maxrss  # KiB on Linux, bytes on macOS
    return (value if sys.platform == "darwin" else value * 1024) / 1e6


def _report(result: dict[str, Any]) -> None:
    result["rss_mb"] = round(_maxrss_mb("self"), 1)
    result["child_rss_mb"] = round(_maxrss_mb("children"), 1)
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def child_floor(job_dir: str) -> None:
    import orjson

    loads = orjson.loads
    lines = 0
    started = time.perf_counter()
    for path in sorted(Path(job_dir).glob("events*.jsonl")):
        with path.open("rb") as handle:
            for line in handle:
                loads(line)
                lines += 1
    elapsed = time.perf_counter() - started
    _report({"seconds": elapsed, "lines": lines})


def child_snapshot(job_dir: str, output: str, workers: str) -> None:
    from dj_observe.cli import main

    Path(output).unlink(missing_ok=True)  # freeing the previous run's file is not this run's work
    started = time.perf_counter()
    code = main(["snapshot", job_dir, "-o", output, "--workers", workers, "--no-cache"])
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"dj-observe snapshot exited with {code}")
    _report({"seconds": elapsed, "output_bytes": os.path.getsize(output)})


def _last_event(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - (1 << 16)))
        tail = handle.read().rstrip(b"\n")
    return json.loads(tail[tail.rfind(b"\n") + 1 :])


def appended_events(
    first_pid: int, count: int, last: dict[str, Any], ops: tuple[str, ...]
) -> tuple[bytes, int]:
    """``count`` event lines for new partitions from ``first_pid``, as Data-Juicer writes them.

    Returns the lines and the next unused partition id.  Whole partitions are
    written (start, 5 events per op, complete); the last one may be cut short,
    i.e. still running.
    """
    clock = float(last["timestamp"])
    serial = 0
    common = {
        "job_id": last.get("job_id"),
        "process_id": last.get("process_id"),
    }
    lines: list[str] = []

    def emit(event_type: str, message: str, pid: int, **fields: Any) -> None:
        nonlocal clock, serial
        clock = round(clock + 0.002, 6)
        serial += 1
        event = {
            "event_type": event_type,
            "timestamp": clock,
            "message": message,
            "event_id": f"{event_type}_{int(clock)}_bench{first_pid:07d}{serial:05d}",
            "job_id": common["job_id"],
            **fields,
            "process_id": common["process_id"],
            "thread_id": 140209876543232 + pid % 8,
        }
        lines.append(json.dumps(event) + "\n")

    pid = first_pid
    rows = 5000
    while len(lines) < count:
        emit(
            "partition_start",
            f"Starting processing of partition {pid + 1}",
            pid,
            partition_id=pid,
        )
        for idx, name in enumerate(ops):
            node = f"op_{idx + 1:03d}_{name}_partition_{pid}"
            started = clock
            emit(
                "dag_node_start",
                f"DAG node {node} ({name}) started execution",
                pid,
                metadata={
                    "node_id": node,
                    "op_name": name,
                    "op_type": "mapper",
                    "execution_order": idx + 1,
                    "start_time": started,
                },
            )
            emit(
                "op_start",
                f"Operation {name} (idx 0) started on partition {pid}",
                pid,
                partition_id=pid,
                operation_name=name,
                operation_idx=0,
                op_args={"dag_node_id": node},
                metadata={
                    "operation_idx": 0,
                    "start_time": started,
                    "operation_class": name,
                    "dag_node_id": node,
                },
            )
            duration = 0.05
            emit(
                "dag_node_complete",
                f"DAG node {node} ({name}) completed in {duration:.3f}s",
                pid,
                metadata={
                    "node_id": node,
                    "op_name": name,
                    "op_type": "mapper",
                    "execution_order": idx + 1,
                    "duration_seconds": duration,
                },
            )
            emit(
                "op_complete",
                f"Operation {name} (idx 0) completed on partition {pid} - "
                f"{rows}\u2192{rows - 10} rows in {duration:.3f}s",
                pid,
                partition_id=pid,
                operation_name=name,
                operation_idx=0,
                status="success",
                duration=duration,
                metadata={
                    "duration_seconds": duration,
                    "input_rows": rows,
                    "output_rows": rows - 10,
                    "throughput_rows_per_second": rows / duration,
                    "reduction_ratio": 0.002,
                    "checkpoint_path": None,
                    "completion_time": clock,
                    "operation_class": name,
                    "dag_node_id": node,
                },
            )
            emit(
                "checkpoint_save",
                f"Saved checkpoint after operation {idx}: {name}",
                pid,
                partition_id=pid,
                operation_name=name,
                operation_idx=idx,
                metadata={
                    "checkpoint_path": f"./outputs/{common['job_id']}/checkpoints/"
                    f"checkpoint_op_{idx:04d}_partition_{pid:04d}.parquet"
                },
            )
        emit(
            "partition_complete",
            f"Completed processing of partition {pid + 1}",
            pid,
            partition_id=pid,
        )
        pid += 1
    return "".join(lines[:count]).encode(), pid


def child_resnapshot(job_dir: str, repeat: str) -> None:
    from dj_observe.eventlog import find_event_logs
    from dj_observe.snapshot import ProcessingSnapshotAnalyzer, write_json
    from dj_observe.synthetic import DEFAULT_OPS

    analyzer = ProcessingSnapshotAnalyzer(job_dir)
    started = time.perf_counter()
    snapshot = analyzer.generate_snapshot()
    initial = time.perf_counter() - started
    before = {
        "status": snapshot.overall_status.value,
        "total_partitions": snapshot.total_partitions,
        "completed_partitions": snapshot.completed_partitions,
        "failed_partitions": snapshot.failed_partitions,
        "total_operations": snapshot.total_operations,
        "completed_operations": snapshot.completed_operations,
        "events": snapshot.stats.events,
        "skipped_lines": snapshot.stats.skipped_lines,
    }
    started = time.perf_counter()
    analyzer.generate_snapshot()
    noop = time.perf_counter() - started

    log_file = find_event_logs(job_dir)[-1]
    original_size = log_file.stat().st_size
    last = _last_event(log_file)
    next_pid = max(snapshot.state.partitions) + 1
    events = snapshot.stats.events
    resnapshots: list[float] = []
    renders: list[float] = []
    renders_2: list[float] = []
    parallel_render = "workers" in inspect.signature(write_json).parameters
    try:
        for _ in range(int(repeat)):
            block, next_pid = appended_events(next_pid, APPENDED_EVENTS, last, DEFAULT_OPS)
            last = json.loads(block[block.rstrip(b"\n").rfind(b"\n") + 1 :])
            with log_file.open("ab") as handle:
                handle.write(block)
            started = time.perf_counter()
            snapshot = analyzer.generate_snapshot()
            resnapshots.append(time.perf_counter() - started)
            if snapshot.stats.events != events + APPENDED_EVENTS:
                raise SystemExit(
                    f"re-snapshot saw {snapshot.stats.events - events} new events, "
                    f"expected {APPENDED_EVENTS}"
                )
            events = snapshot.stats.events
            started = time.perf_counter()
            with open(os.devnull, "wb") as sink:
                write_json(snapshot, sink)
            renders.append(time.perf_counter() - started)
            if parallel_render:
                started = time.perf_counter()
                with open(os.devnull, "wb") as sink:
                    write_json(snapshot, sink, workers=2)
                renders_2.append(time.perf_counter() - started)
    finally:
        os.truncate(log_file, original_size)
    after = {
        "total_partitions": snapshot.total_partitions,
        "completed_partitions": snapshot.completed_partitions,
    }
    _report(
        {
            "initial_s": initial,
            "noop_s": noop,
            "resnapshot_s": resnapshots,
            "render_s": renders,
            "render_2_workers_s": renders_2,
            "before": before,
            "after": after,
        }
    )


CHILDREN = {
    "generate": child_generate,
    "floor": child_floor,
    "snapshot": child_snapshot,
    "resnapshot": child_resnapshot,
}


# -- the driver ----------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Run:
    seconds: float
    process_s: float
    rss_mb: float
    child_rss_mb: float
    extra: dict[str, Any]


def run_child(mode: str, *args: str) -> Run:
    command = [sys.executable, str(Path(__file__).resolve()), "_child", mode, *args]
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
    )
    process_s = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise SystemExit(
            f"{mode} child failed (exit {done.returncode}):\n{done.stderr.strip()[-4000:]}"
        )
    result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return Run(
        seconds=result.pop("seconds", 0.0),
        process_s=process_s,
        rss_mb=result.pop("rss_mb"),
        child_rss_mb=result.pop("child_rss_mb"),
        extra=result,
    )


@dataclass
class Measured:
    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(run.seconds for run in self.runs)

    @property
    def best_process(self) -> float:
        return min(run.process_s for run in self.runs)

    @property
    def rss(self) -> float:
        return max(run.rss_mb for run in self.runs)

    @property
    def worker_rss(self) -> float:
        return max(run.child_rss_mb for run in self.runs)


@dataclass
class SizeResult:
    data: Dataset
    floor: Measured
    snap2: Measured
    snap1: Measured
    resnap: Run
    output_bytes: int

    @property
    def resnapshot_ms(self) -> float:
        return min(self.resnap.extra["resnapshot_s"]) * 1000

    @property
    def render_s(self) -> float:
        return min(self.resnap.extra["render_s"])


def byte_compile() -> None:
    """Byte-compile dj_observe's modules, as installing its wheel does: an editable install
    run with ``PYTHONDONTWRITEBYTECODE`` would otherwise compile them in every process."""
    import compileall

    import dj_observe

    compileall.compile_dir(Path(dj_observe.__file__).parent, quiet=1)


def warm_cache(job_dir: Path) -> None:
    """Read the job's files once so every measurement sees a warm page cache."""
    for path in [*_event_logs(job_dir), job_dir / "dag_execution_plan.json"]:
        if path.exists():
            _count_lines([path])


def measure(data: Dataset, scratch: Path) -> SizeResult:
    label = data.size.label
    warm_cache(data.job_dir)
    floor, snap2, snap1 = Measured(), Measured(), Measured()
    output = scratch / f"snapshot-{label}.json"
    for attempt in range(data.size.repeat):
        floor.runs.append(run_child("floor", str(data.job_dir)))
        lines = floor.runs[-1].extra["lines"]
        if lines != data.events:
            raise SystemExit(f"floor read {lines} lines, expected {data.events}")
        snap2.runs.append(run_child("snapshot", str(data.job_dir), str(output), "2"))
        snap1.runs.append(run_child("snapshot", str(data.job_dir), str(output), "1"))
        log(
            f"[{label}] run {attempt + 1}/{data.size.repeat}: floor "
            f"{floor.runs[-1].seconds:.2f} s, snapshot {snap2.runs[-1].seconds:.2f} s "
            f"(2 workers), {snap1.runs[-1].seconds:.2f} s (1 worker)"
        )
    output_bytes = snap2.runs[-1].extra["output_bytes"]
    output.unlink(missing_ok=True)
    resnap = run_child("resnapshot", str(data.job_dir), str(data.size.repeat))
    log(
        f"[{label}] re-snapshot after {APPENDED_EVENTS} events: "
        f"{min(resnap.extra['resnapshot_s']) * 1000:.1f} ms, full render "
        f"{min(resnap.extra['render_s']):.2f} s"
    )
    return SizeResult(data, floor, snap2, snap1, resnap, output_bytes)


# -- the machine and the report ----------------------------------------------------------


def _mb(value: float) -> str:
    return f"{value:.0f}" if value else "-"


def summary_table(results: list[SizeResult]) -> list[str]:
    rows = [
        "| size | events | log MB | avg line B | floor s | snapshot s (2 workers) "
        "| snapshot s (1 worker) | ratio to floor (2w / 1w) | peak RSS MB main (2w) "
        "| peak RSS MB worker (2w) | peak RSS MB (1w) | re-snapshot after 1k events ms "
        "| full render s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        d = r.data
        rows.append(
            f"| {d.size.label} | {d.events:,} | {d.log_mb:.0f} | {d.avg_line:.0f} "
            f"| {r.floor.best:.2f} | {r.snap2.best:.2f} | {r.snap1.best:.2f} "
            f"| {r.snap2.best / r.floor.best:.2f} / {r.snap1.best / r.floor.best:.2f} "
            f"| {_mb(r.snap2.rss)} | {_mb(r.snap2.worker_rss)} | {_mb(r.snap1.rss)} "
            f"| {r.resnapshot_ms:.1f} | {r.render_s:.2f} |"
        )
    return rows


def detail_table(r: SizeResult) -> list[str]:
    d = r.data
    extra = r.resnap.extra
    before = extra["before"]
    rows = [
        f"#### {d.size.label}: {d.events:,} events",
        "",
        f"Job: {d.partitions:,} partitions x {len(_ops())} ops, parallelism 8, "
        f"partitions {sorted(d.failed)} fail (at ops {[d.failed[k] for k in sorted(d.failed)]}); "
        f"log {', '.join(d.log_files)}: {d.log_mb:.1f} MB, {d.avg_line:.0f} bytes a line; "
        f"DAG plan {d.plan_bytes / 1e6:.1f} MB; snapshot JSON written: "
        f"{r.output_bytes / 1e6:.1f} MB. Best of {d.size.repeat}.",
        "",
        "| measurement | best s (in process) | best s (whole process) | ratio to floor "
        "| peak RSS MB (process) | peak RSS MB (forked worker) |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name, m in (
        ("floor: orjson.loads per line", r.floor),
        ("dj-observe snapshot (2 workers)", r.snap2),
        ("dj-observe snapshot --workers 1", r.snap1),
    ):
        rows.append(
            f"| {name} | {m.best:.3f} | {m.best_process:.3f} | {m.best / r.floor.best:.2f} "
            f"| {_mb(m.rss)} | {_mb(m.worker_rss)} |"
        )
    render_2 = ""
    if extra.get("render_2_workers_s"):
        render_2 = f" (with `workers=2`: {min(extra['render_2_workers_s']):.2f} s)"
    resnaps = ", ".join(f"{s * 1000:.1f}" for s in extra["resnapshot_s"])
    rows += [
        "",
        f"API, one process: first `generate_snapshot()` {extra['initial_s']:.2f} s; "
        f"again with nothing appended {extra['noop_s'] * 1000:.1f} ms; after appending "
        f"{APPENDED_EVENTS:,} events {resnaps} ms (best {r.resnapshot_ms:.1f} ms); full JSON "
        f"render to /dev/null {r.render_s:.2f} s{render_2}; peak RSS {r.resnap.rss_mb:.0f} MB "
        f"(worker {_mb(r.resnap.child_rss_mb)} MB).",
        f"Snapshot says: {before['status']}, {before['completed_partitions']:,}/"
        f"{before['total_partitions']:,} partitions completed, "
        f"{before['failed_partitions']} failed, {before['completed_operations']:,}/"
        f"{before['total_operations']:,} ops completed, {before['events']:,} events read, "
        f"{before['skipped_lines']} lines skipped.",
        "",
    ]
    return rows


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def targets_section(results: list[SizeResult]) -> list[str]:
    rows = [
        "### Targets (issue #2)",
        "",
        "A 1M-event snapshot in under 1.3 s (faster than merely parsing every line), peak RSS "
        "under 150 MB, and a re-snapshot after 1k appended events in under 50 ms.",
        "",
    ]
    target = next((r for r in results if r.data.size.events == TARGETS["events"]), None)
    if target is None:
        return [*rows, "Not evaluated: the 1m size was not part of this run.", ""]
    snap, floor = target.snap2.best, target.floor.best
    main_rss, worker_rss = target.snap2.rss, target.snap2.worker_rss
    rss_ok = max(main_rss, worker_rss, target.snap1.rss) < TARGETS["rss_mb"]
    total_rss = main_rss + worker_rss
    rows += [
        "| target | measured (1m) | verdict |",
        "|---|---|---|",
        f"| snapshot < {TARGETS['snapshot_s']} s | {snap:.2f} s (2 workers), "
        f"{target.snap1.best:.2f} s (1 worker) | {_verdict(snap < TARGETS['snapshot_s'])} |",
        f"| snapshot faster than the floor measured in this run | {snap:.2f} s vs "
        f"{floor:.2f} s (ratio {snap / floor:.2f}) | {_verdict(snap < floor)} |",
        f"| peak RSS < {TARGETS['rss_mb']:.0f} MB (each process) | main {main_rss:.0f} MB, "
        f"worker {_mb(worker_rss)} MB (sum {total_rss:.0f} MB); 1 worker "
        f"{target.snap1.rss:.0f} MB | {_verdict(rss_ok)} |",
        f"| re-snapshot after 1k appended events < {TARGETS['resnapshot_ms']:.0f} ms "
        f"| {target.resnapshot_ms:.1f} ms | "
        f"{_verdict(target.resnapshot_ms < TARGETS['resnapshot_ms'])} |",
        "",
    ]
    if rss_ok and total_rss >= TARGETS["rss_mb"]:
        rows += [
            f"Each process stays under {TARGETS['rss_mb']:.0f} MB, but main + worker together "
            f"peak at {total_rss:.0f} MB (the forked worker shares pages with the main "
            "process, so the sum overstates the real footprint).",
            "",
        ]
    return rows


def write_report(
    path: Path,
    results: list[SizeResult],
    machine: dict[str, str],
    command: str,
    notes: list[str],
    started: _dt.datetime,
) -> None:
    lines = [
        "## Snapshot: `dj-observe snapshot` (bench_snapshot.py)",
        "",
        f"Date: {started:%Y-%m-%d %H:%M} UTC. Command: `{command}`",
        "",
        "### Machine",
        "",
        *(f"- {key}: {value}" for key, value in machine.items()),
        "",
        "### Method",
        "",
        "Each job directory is generated by `dj_observe.synthetic.write_job` in Data-Juicer's "
        "real format (`style='data_juicer'`, one `events_<ts>.jsonl`, 8 ops, parallelism 8, "
        "three failed partitions, a DAG plan with one node per partition and op, no "
        "`job_summary.json`). Every measurement is a fresh Python process, run against a warm "
        "page cache; the floor and the two snapshot variants alternate within each repetition. "
        "*In process* is the time around the work (`for line in f: orjson.loads(line)`, or "
        "`dj_observe.cli.main(['snapshot', dir, '-o', tmp, '--no-cache'])`: every run folds "
        "the whole log, none reuses a persisted fold, see the poll section; it includes "
        "writing the "
        "indented JSON file; the previous run's file is deleted before the clock starts, as "
        "freeing its pages is the file system's work, not the snapshot's); *whole process* "
        "adds interpreter start-up and imports (dj_observe's modules byte-compiled first, as "
        "installing the wheel does). "
        "Peak RSS is the process's own high-water mark (`VmHWM`) and `ru_maxrss` of its forked "
        "worker (`RUSAGE_CHILDREN`, which counts pages shared with the main process); logs "
        "under 64 MiB are folded without a worker. The re-snapshot "
        "appends 1,000 new events (new partitions, Data-Juicer's line format) to the log "
        "of a `ProcessingSnapshotAnalyzer` that already folded it and times "
        "`generate_snapshot()`; the full render is `write_json(snapshot, /dev/null)`, which "
        "is proportional to the job, not to what was appended. Ratios are to the floor.",
        "",
        "### Results",
        "",
        *summary_table(results),
        "",
        *targets_section(results),
        "### Details",
        "",
    ]
    for result in results:
        lines += detail_table(result)
    if notes:
        lines += ["### Notes", "", *(f"- {note}" for note in notes), ""]
    write_section(path, "snapshot", lines)


# -- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        CHILDREN[argv[1]](*argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help=f"comma-separated SIZE[:REPEAT] items, e.g. 100k,1m,3m:1 (default: {DEFAULT_SIZES})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where generated jobs are cached (default: benchmarks/.data)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per measurement, best kept (default: 3)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="the Markdown report (default: benchmarks/RESULTS.md)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    sizes = parse_sizes(args.sizes, args.repeat)
    byte_compile()
    started = _dt.datetime.now(_dt.timezone.utc)
    command = shlex.join(["python", "benchmarks/bench_snapshot.py", *argv])
    machine = machine_info()
    notes: list[str] = []
    results: list[SizeResult] = []
    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".scratch-") as scratch:
        for size in sizes:
            data = ensure_dataset(size, data_dir, notes)
            if data is not None:
                results.append(measure(data, Path(scratch)))
    if not results:
        log("nothing measured")
        return 1
    print("\n".join(summary_table(results)))
    print()
    print("\n".join(targets_section(results)))
    write_report(args.output, results, machine, command, notes, started)
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
