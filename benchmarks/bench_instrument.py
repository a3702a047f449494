"""The cost of ``dj-observe instrument`` on real ``dj-process`` jobs, per executor.

Usage::

    python benchmarks/bench_instrument.py [--rows 100000] [--repeat 3] [--executors ray]

For each executor (``default``, ``ray``, ``ray_partitioned`` with 4 partitions and
checkpoint groups of two ops), one config of five text ops over ``--rows`` generated rows
is run as plain ``dj-process`` (*off*) and under ``dj-observe instrument`` with /metrics
served and spans written (*on*), the two alternating, ``--repeat`` times; the best of each
is kept.  The time compared is the executor's own (Data-Juicer's "Running executor took"
line: dataset load, ops, checkpoints, export), so interpreter and Ray start-up do not
drown the difference; one untimed plain run per executor first fills the caches
(Hugging Face's dataset cache, Ray's).  A second part times the per-op measurement
itself: a measured Ray Data function call against the plain call, per batch and per row.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report import RESULTS, machine_info, write_section  # noqa: E402 - sibling module

TARGET_OVERHEAD = 0.03
EXECUTORS = ("default", "ray", "ray_partitioned")
_TOOK = re.compile(r"Running executor took ([0-9.]+) seconds")


def _dataset(path: Path, rows: int) -> None:
    with path.open("w") as handle:
        for row in range(rows):
            if row % 6 == 0:
                text = f"tiny{row % 10}"
            elif row % 12 == 1:
                text = f"abcdefghijklmnop{row} qr"
            else:
                text = f"alpha  beta gamma delta epsilon row{row} mail me at u{row}@example.com"
            handle.write(json.dumps({"id": row, "text": text}) + "\n")


def _config(root: Path, executor: str, dataset: Path) -> Path:
    config = root / f"{executor}.yaml"
    config.write_text(
        f"project_name: bench-{executor}\n"
        f"dataset_path: {dataset}\n"
        f"export_path: {root}/out/{executor}/{{job_id}}/processed.jsonl\n"
        f"work_dir: {root}/out/{executor}\n"
        "np: 2\n"
        f"executor_type: {executor}\n"
        "skip_op_error: false\n"
        "open_monitor: false\n"
        "partition:\n  mode: manual\n  num_of_partitions: 4\n"
        "checkpoint:\n  enabled: true\n  strategy: every_n_ops\n  n_ops: 2\n"
        "event_logging:\n  enabled: true\n"
        "process:\n"
        "  - clean_email_mapper:\n"
        "  - whitespace_normalization_mapper:\n"
        "  - punctuation_normalization_mapper:\n"
        "  - text_length_filter:\n      min_len: 12\n      max_len: 100000\n"
        "  - words_num_filter:\n      lang: en\n      tokenization: false\n"
        "      min_num: 5\n      max_num: 100000\n"
    )
    return config


def _run(config: Path, job_id: str, instrumented: bool, port: int) -> float:
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "dj-process"), "--config", str(config), "--job_id", job_id]
    env = {
        **os.environ,
        "RAY_ADDRESS": "local",
        "RAY_AUTH_MODE": "disabled",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "PIP_NO_INDEX": "1",
    }
    if instrumented:
        command = [str(bin_dir / "dj-observe"), "instrument", "--", *command]
        env["DJ_OBSERVE_METRICS_PORT"] = str(port)
    out = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    found = _TOOK.findall(out.stdout + out.stderr)
    if out.returncode != 0 or not found:
        raise RuntimeError(f"{job_id} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return float(found[-1])


def _call_costs(calls: int = 20000) -> dict[str, float]:
    """Nanoseconds per call: a measured Ray Data function against the plain one."""
    import pyarrow as pa

    from dj_observe.integrations.data_juicer.measure import MeasuredFn, Step

    batch = pa.table({"text": ["x" * 40] * 1000})
    with tempfile.TemporaryDirectory() as scratch:
        step = Step(scratch, 0, "op", 0, 0)
        results = {}
        for label, fn, arg in (
            ("batch of 1,000 rows", lambda table: table, batch),
            ("one row (filter predicate)", lambda row: True, {"text": "x"}),
        ):
            measured = MeasuredFn(fn, step, predicate=label.startswith("one"))
            timings = {}
            for name, call in (("plain", fn), ("measured", measured)):
                start = time.perf_counter()
                for _ in range(calls):
                    call(arg)
                timings[name] = (time.perf_counter() - start) / calls * 1e9
            results[label] = timings["measured"] - timings["plain"]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--executors", default=",".join(EXECUTORS))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/bench_instrument.py", *(argv or sys.argv[1:])])
    lines = [
        "## Instrument: real dj-process jobs with and without dj-observe (bench_instrument.py)",
        "",
        f"Date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC. Command: "
        f"`{command}`. {args.rows:,} rows, five text ops, `np: 2`; `ray_partitioned` with 4 "
        "partitions and checkpoint groups of two ops. Best of "
        f"{args.repeat} runs per mode after one untimed warm-up run, the modes alternating, "
        "each a fresh `dj-process`; the "
        'time is Data-Juicer\'s own "Running executor took" (load, ops, checkpoints, export).',
        "",
        "### Machine",
        "",
        *(f"- {key}: {value}" for key, value in machine_info().items()),
        "",
        "| executor | off s (best) | on s (best) | overhead | verdict (target: at most 3%) "
        "| every run, off / on |",
        "|---|--:|--:|--:|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="dj-bench-instrument-") as scratch:
        root = Path(scratch)
        dataset = root / "data.jsonl"
        _dataset(dataset, args.rows)
        for executor in args.executors.split(","):
            config = _config(root, executor, dataset)
            _run(config, "warmup", False, 19599)  # caches (Hugging Face, Ray) filled, untimed
            every: dict[str, list[float]] = {"off": [], "on": []}
            for attempt in range(args.repeat):
                for mode in ("off", "on"):
                    took = _run(config, f"{mode}{attempt}", mode == "on", 19600 + attempt)
                    every[mode].append(took)
                    print(f"{executor} {mode} {took:.2f}s", file=sys.stderr)
            best = {mode: min(runs) for mode, runs in every.items()}
            overhead = best["on"] / best["off"] - 1
            verdict = "met" if overhead <= TARGET_OVERHEAD else "**not met**"
            runs = " / ".join(", ".join(f"{took:.2f}" for took in every[mode]) for mode in every)
            lines.append(
                f"| `{executor}` | {best['off']:.2f} | {best['on']:.2f} | {overhead:+.1%} | "
                f"{verdict} | {runs} |"
            )
    costs = _call_costs()
    lines += [
        "",
        "Runs of one mode spread more than the target on a shared machine: compare the best "
        "of each, and the per-call cost below, which bounds what the measurement itself adds.",
        "",
        "The per-op measurement's own cost, added to each call of a function an op hands to "
        "Ray Data (nanoseconds, this machine):",
        "",
        *(f"- {label}: {ns:,.0f} ns" for label, ns in costs.items()),
        "",
    ]
    print("\n".join(lines))
    write_section(args.output, "instrument", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
