"""The demo job's wall time with all observability on vs off, rows/s, and event delivery.

Usage::

    python benchmarks/bench_run.py [--rows 40000] [--repeat 3] [--output benchmarks/RESULTS.md]

Each run is a fresh process running ``configs/demo.yaml`` (with ``--rows`` generated
rows) through :func:`dj_observe.runner.executor.run_job` on a local Ray runtime of
``np`` workers.  *On*: the event log, metrics (served) and spans (OTLP-JSON file).
*Off*: no event log, no metrics, no spans.  Ray start-up is not counted: the
runtime is started before the clock.  Delivery latency is the time from an
event's timestamp in the worker to the driver handing it to the hook.
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
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report import RESULTS, machine_info, write_section  # noqa: E402 - sibling module

TARGET_OVERHEAD = 0.03


def _config(mode: str, rows: int, scratch: str) -> Any:
    import yaml

    from dj_observe.runner.config import parse_config

    data = yaml.safe_load((HERE.parent / "configs" / "demo.yaml").read_text())
    data.update(
        dataset_path=f"demo://{rows}",
        work_dir=f"{scratch}/jobs",
        export_path=f"{scratch}/result.jsonl",
    )
    if mode == "off":
        data["event_logging"] = {"enabled": False}
        data["observability"] = {"metrics": {"enabled": False}, "tracing": {"enabled": False}}
    return parse_config(data)


def _one_run(mode: str, rows: int) -> dict[str, float]:
    from dj_observe.runner import executor

    latencies: list[float] = []
    emit = executor._Driver._emit

    def timed(self: executor._Driver, fields: dict) -> None:
        latencies.append(time.time() - fields["timestamp"])
        emit(self, fields)

    executor._Driver._emit = timed  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory(prefix="dj-bench-run-") as scratch:
            config = _config(mode, rows, scratch)
            start = time.perf_counter()
            result = executor.run_job(config, job_id="bench")
            wall = time.perf_counter() - start
            assert result.status == "completed", result
    finally:
        executor._Driver._emit = emit  # type: ignore[method-assign]
    latencies.sort()
    return {
        "wall_s": wall,
        "rows_per_s": rows / wall,
        "events": len(latencies),
        "latency_p50_ms": statistics.median(latencies) * 1e3 if latencies else 0.0,
        "latency_p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1e3 if latencies else 0.0,
    }


def _child(mode: str, rows: int, repeat: int) -> dict[str, dict[str, float]]:
    """``off``/``on``: one run in this fresh process; ``warm``: one warm-up run of each
    mode, then the modes alternating ``repeat`` times (best of each)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        if mode != "warm":
            return {mode: _one_run(mode, rows)}
        _one_run("off", rows)
        _one_run("on", rows)
        runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
        for _ in range(repeat):
            for each in ("off", "on"):
                runs[each].append(_one_run(each, rows))
        return {each: min(results, key=lambda r: r["wall_s"]) for each, results in runs.items()}
    finally:
        ray.shutdown()


def _spawn(mode: str, rows: int, repeat: int = 1) -> dict[str, dict[str, float]]:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    out = subprocess.run(
        [sys.executable, __file__, "_child", mode, str(rows), str(repeat)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH_RESULT "))
    return json.loads(line.removeprefix("BENCH_RESULT "))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        print("BENCH_RESULT " + json.dumps(_child(argv[1], int(argv[2]), int(argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        default="40000,400000",
        help="comma-separated dataset sizes (default: 40000,400000)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.rows.split(",")]
    command = shlex.join(["python", "benchmarks/bench_run.py", *argv])
    lines = [
        "## Run: the demo job with observability on and off (bench_run.py)",
        "",
        f"Date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC. Command: "
        f"`{command}`. `configs/demo.yaml` with the given number of generated rows (5,000 "
        f"per partition), best of {args.repeat} runs per mode, each a fresh process, the "
        "two modes alternating; Ray start-up not counted. *Delivery* is the time from an "
        "event's timestamp in the worker to the driver handing it to the hook.",
        "",
        "### Machine",
        "",
        *(f"- {key}: {value}" for key, value in machine_info().items()),
        "",
        "| rows | mode | wall s | rows/s | events | delivery p50 ms | delivery p95 ms | overhead |",
        "|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    verdicts = []
    for rows in sizes:
        runs: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
        for _ in range(args.repeat):
            for mode in ("off", "on"):
                runs[mode].append(_spawn(mode, rows)[mode])
        cold = {mode: min(results, key=lambda r: r["wall_s"]) for mode, results in runs.items()}
        warm = _spawn("warm", rows, args.repeat)
        for label, best in (("cold", cold), ("warm", warm)):
            overhead = best["on"]["wall_s"] / best["off"]["wall_s"] - 1
            verdicts.append((rows, label, overhead))
            for mode in ("off", "on"):
                row = best[mode]
                lines.append(
                    f"| {rows:,} | {label}, {mode} | {row['wall_s']:.2f} | "
                    f"{row['rows_per_s']:,.0f} | {row['events']:,} | "
                    f"{row['latency_p50_ms']:.2f} | {row['latency_p95_ms']:.2f} | "
                    f"{'' if mode == 'off' else f'{overhead:+.1%}'} |"
                )
            print(f"{rows} {label} {best}", file=sys.stderr)
    lines += [
        "",
        "*cold*: every run a fresh process (the first use of each library, e.g. importing "
        "the OpenTelemetry SDK, is inside the clock); *warm*: one process, after one "
        "warm-up run of each mode, the modes alternating.",
        "",
    ]
    for rows, label, overhead in verdicts:
        verdict = "met" if overhead <= TARGET_OVERHEAD else "**not met**"
        lines.append(
            f"- {rows:,} rows, {label}: overhead {overhead:+.1%} (target: at most "
            f"{TARGET_OVERHEAD:.0%}): {verdict}."
        )
    print("\n".join(lines))
    write_section(args.output, "run", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
