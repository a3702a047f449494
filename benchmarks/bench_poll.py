"""Benchmark of polling a growing job with ``dj-observe snapshot --summary``.

Usage::

    python benchmarks/bench_poll.py [--size 1m] [--polls 5] [--repeat 3]
                                    [--data-dir DIR] [--output benchmarks/RESULTS.md]

The job directory is the one ``bench_snapshot.py`` generates (and caches) for the size.
Each repetition, every measurement a fresh process timed from outside (start-up,
imports and output included), alternating so that the machine's load hits all alike:

* the floor: ``for line in f: orjson.loads(line)`` over the log (``bench_snapshot``'s);
* the full snapshot as before the cache: ``dj-observe snapshot <dir> --no-cache -o FILE``;
* the first call: ``dj-observe snapshot <dir> --summary`` with an empty fold cache
  (folds the whole log and stores the fold);
* ``--polls`` polls, each after 1,000 events were appended to the log: the
  persisted fold is loaded and only the appended events are folded.

Every poll's document is checked against ``--summary --no-cache`` on the same log
(untimed).  The log is truncated back at the end.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_snapshot import (  # noqa: E402 - a sibling module of this script
    APPENDED_EVENTS,
    DEFAULT_DATA_DIR,
    DEFAULT_OUTPUT,
    _last_event,
    appended_events,
    byte_compile,
    ensure_dataset,
    log,
    parse_sizes,
    run_child,
    warm_cache,
)
from report import machine_info, write_section  # noqa: E402

DJ_OBSERVE = str(Path(sys.executable).with_name("dj-observe"))
TARGET_RATIO = 0.15
"""A poll after 1,000 appended events costs at most this share of the floor."""
VOLATILE = ("snapshot_generated_at", "seconds_since_last_event")


@dataclass
class Repetition:
    floor_s: float
    full_s: float
    first_s: float
    polls_s: list[float] = field(default_factory=list)


def _timed(command: list[str], env: dict[str, str], output: Path) -> float:
    with output.open("wb") as sink:
        started = time.perf_counter()
        done = subprocess.run(command, stdout=sink, stderr=subprocess.PIPE, env=env, check=False)
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed


def _document(path: Path) -> dict:
    document = json.loads(path.read_bytes())
    for key in VOLATILE:
        document["metadata"].pop(key, None)
    return document


def measure(
    job_dir: Path, first_new_pid: int, polls: int, repeat: int, scratch: Path
) -> tuple[list[Repetition], int]:
    log_file = sorted(job_dir.glob("events*.jsonl"))[-1]
    original = log_file.stat().st_size
    from dj_observe.synthetic import DEFAULT_OPS

    summary = [DJ_OBSERVE, "snapshot", str(job_dir), "--summary", "--compact"]
    out, check = scratch / "poll.json", scratch / "check.json"
    repetitions: list[Repetition] = []
    summary_bytes = 0
    try:
        for attempt in range(repeat):
            os.truncate(log_file, original)
            env = {**os.environ, "DJ_OBSERVE_CACHE_DIR": str(scratch / f"cache-{attempt}")}
            floor = run_child("floor", str(job_dir)).process_s
            full_command = [DJ_OBSERVE, "snapshot", str(job_dir), "--no-cache", "-o", str(check)]
            full = _timed(full_command, env, scratch / "full.out")
            first = _timed(summary, env, out)
            summary_bytes = out.stat().st_size
            repetition = Repetition(floor, full, first)
            last = _last_event(log_file)
            next_pid = first_new_pid
            for _ in range(polls):
                block, next_pid = appended_events(next_pid, APPENDED_EVENTS, last, DEFAULT_OPS)
                last = json.loads(block[block.rstrip(b"\n").rfind(b"\n") + 1 :])
                with log_file.open("ab") as handle:
                    handle.write(block)
                repetition.polls_s.append(_timed(summary, env, out))
                _timed([*summary, "--no-cache"], env, check)
                if _document(out) != _document(check):
                    raise SystemExit("a poll differs from a fresh fold of the same log")
            repetitions.append(repetition)
            log(
                f"run {attempt + 1}/{repeat}: floor {floor:.2f} s, full snapshot {full:.2f} s, "
                f"first call {first:.2f} s, "
                f"polls {', '.join(f'{s:.3f}' for s in repetition.polls_s)} s"
            )
    finally:
        os.truncate(log_file, original)
    return repetitions, summary_bytes


def report(
    repetitions: list[Repetition],
    summary_bytes: int,
    data,
    polls: int,
    command: str,
    load: tuple[float, float],
) -> list[str]:
    floor = min(r.floor_s for r in repetitions)
    full = min(r.full_s for r in repetitions)
    first = min(r.first_s for r in repetitions)
    poll = min(min(r.polls_s) for r in repetitions)
    full_ratio = min(r.full_s / r.floor_s for r in repetitions)
    first_ratio = min(r.first_s / r.floor_s for r in repetitions)
    poll_ratios = sorted(s / r.floor_s for r in repetitions for s in r.polls_s)
    poll_ratio, median_ratio = poll_ratios[0], statistics.median(poll_ratios)
    ok = poll_ratio <= TARGET_RATIO
    return [
        "## Poll: `dj-observe snapshot --summary` on a growing log (bench_poll.py)",
        "",
        f"Date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC. Command: `{command}`",
        "",
        "### Machine",
        "",
        *(f"- {key}: {value}" for key, value in machine_info().items()),
        f"- Load average (1 min) before / after the run: {load[0]:.1f} / {load[1]:.1f}",
        "",
        "### Method",
        "",
        f"The {data.size.label} job of `bench_snapshot.py` ({data.events:,} events, "
        f"{data.log_mb:.0f} MB log). Every time is a whole process measured from outside "
        "(interpreter start-up, imports with dj_observe's modules byte-compiled as installing "
        "the wheel does, output to a file). Per repetition: the floor "
        "(`orjson.loads` per line over the log), the full snapshot without the cache, the "
        "first `--summary` call with an empty "
        f"fold cache, then {polls} polls, each after {APPENDED_EVENTS:,} events were "
        "appended (new partitions, Data-Juicer's format). Each poll's document equals "
        "`--summary --no-cache` on the same log (checked, untimed). Ratios are to the floor "
        "of the same repetition: the best, and for the polls also the median and the worst "
        "of all polls (the machine is shared; the median is the typical poll).",
        "",
        "### Results",
        "",
        "| measurement | best s | ratio to floor: best (median; worst) |",
        "|---|---|---|",
        f"| floor: orjson.loads per line | {floor:.3f} | 1.00 |",
        f"| full snapshot, `--no-cache -o FILE` (the first call before the cache) | {full:.3f} "
        f"| {full_ratio:.2f} |",
        f"| first call (`--summary`, folds all, stores the fold) | {first:.3f} "
        f"| {first_ratio:.2f} |",
        f"| poll after {APPENDED_EVENTS:,} appended events | {poll:.3f} | {poll_ratio:.3f} "
        f"({median_ratio:.3f}; {poll_ratios[-1]:.3f}) |",
        "",
        f"`--summary` document: {summary_bytes / 1e3:.1f} kB.",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        f"| a poll after {APPENDED_EVENTS:,} events costs at most {TARGET_RATIO} of the floor "
        f"| {poll_ratio:.3f} | {'yes' if ok else 'no'} |",
        f"| the first call stays at or under the floor | {first_ratio:.2f} "
        f"| {'yes' if first_ratio <= 1.0 else 'no'} |",
        f"| (the full snapshot in the same run) | {full_ratio:.2f} "
        f"| {'yes' if full_ratio <= 1.0 else 'no'} |",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1m", help="the job size (default: 1m)")
    parser.add_argument("--polls", type=int, default=5, help="polls per repetition (default: 5)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (default: 3)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.polls < 1 or args.repeat < 1:
        parser.error("--polls and --repeat must be at least 1")
    (size,) = parse_sizes(args.size, args.repeat)
    data = ensure_dataset(size, args.data_dir.resolve(), [])
    if data is None:
        log("not enough disk for the job")
        return 1
    warm_cache(data.job_dir)
    byte_compile()
    command = shlex.join(["python", "benchmarks/bench_poll.py", *argv])
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as scratch:
        repetitions, summary_bytes = measure(
            data.job_dir, data.partitions, args.polls, args.repeat, Path(scratch)
        )
    load = (load_before, os.getloadavg()[0])
    lines = report(repetitions, summary_bytes, data, args.polls, command, load)
    print("\n".join(lines))
    write_section(args.output, "poll", lines)
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
