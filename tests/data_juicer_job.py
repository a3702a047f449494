"""Real Data-Juicer jobs for the tests: a dataset, a config, a failure switch, a runner.

The pipeline has five text ops; the third is a pass-through op defined here whose
``process_batched`` raises when a row's ``id`` is listed in ``DJX_FAIL_IDS``, so one
partition can be made to fail and the same config can then resume the job
(Data-Juicer refuses to resume if the config or the data changed).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

ROWS = 400
PARTITIONS = 4
OPS = [
    "whitespace_normalization_mapper",
    "clean_email_mapper",
    "djx_fail_on_ids_mapper",
    "text_length_filter",
    "words_num_filter",
]
FAIL_OP_INDEX = 2
FAIL_ROW = 350  # in partition 3 (rows 300-399): it runs last, so every other partition ends
FAIL_PARTITION = 3
RUN_TIMEOUT = 300

FAIL_OP_SOURCE = '''
import os

from data_juicer.ops.base_op import OPERATORS, Mapper


@OPERATORS.register_module("djx_fail_on_ids_mapper")
class DjxFailOnIdsMapper(Mapper):
    """Passes rows through; raises on a row whose id is in DJX_FAIL_IDS."""

    _batched_op = True

    def process_batched(self, samples):
        bad = {int(x) for x in os.environ.get("DJX_FAIL_IDS", "").split(",") if x.strip()}
        for row_id in samples.get("id", []):
            if row_id in bad:
                raise RuntimeError(f"injected failure on row id={row_id}")
        return samples
'''


def write_dataset(path: Path, rows: int = ROWS) -> Path:
    rng = random.Random(42)
    words = [
        "data",
        "juicer",
        "ray",
        "partition",
        "checkpoint",
        "event",
        "filter",
        "mapper",
        "text",
        "sample",
    ]
    with path.open("w") as handle:
        for row in range(rows):
            text = " ".join(rng.choice(words) for _ in range(rng.choice([2, 5, 12, 25, 40])))
            if row % 7 == 0:
                text = "  " + text + "\t "
            if row % 11 == 0:
                text += f" contact me at user{row}@example.com"
            handle.write(json.dumps({"id": row, "text": text}) + "\n")
    return path


def write_config(root: Path, name: str, strategy: str, n_ops: int = 2) -> Path:
    """A ``ray_partitioned`` config in ``root``; jobs land in ``root/outputs/<job_id>``."""
    plugins = root / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "djx_fail_ops.py").write_text(FAIL_OP_SOURCE)
    dataset = root / "data.jsonl"
    if not dataset.exists():
        write_dataset(dataset)
    checkpoint = f"  enabled: true\n  strategy: {strategy}\n"
    if strategy == "every_n_ops":
        checkpoint += f"  n_ops: {n_ops}\n"
    config = root / f"{name}.yaml"
    config.write_text(
        f"project_name: {name}\n"
        f"dataset_path: {dataset}\n"
        f"export_path: {root}/outputs/{{job_id}}/results/processed.jsonl\n"
        f"work_dir: {root}/outputs\n"
        "np: 2\n"
        f"custom_operator_paths: [{plugins / 'djx_fail_ops.py'}]\n"
        "skip_op_error: false\n"
        "executor_type: ray_partitioned\n"
        f"partition:\n  mode: manual\n  num_of_partitions: {PARTITIONS}\n"
        f"checkpoint:\n{checkpoint}"
        "event_logging:\n  enabled: true\n"
        "process:\n"
        "  - whitespace_normalization_mapper:\n"
        "  - clean_email_mapper:\n"
        "  - djx_fail_on_ids_mapper:\n"
        "  - text_length_filter:\n      min_len: 20\n      max_len: 100000\n"
        "  - words_num_filter:\n      lang: en\n      tokenization: false\n"
        "      min_num: 4\n      max_num: 100000\n"
    )
    return config


def dj_environment(root: Path, **extra: str) -> dict[str, str]:
    """The environment for ``dj-process``: a private Ray cluster, the test op importable."""
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("DJ_OBSERVE_", "OTEL_", "DJX_")):
            del env[name]
    env.update(
        RAY_ADDRESS="local",
        RAY_AUTH_MODE="disabled",
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        PYTHONPATH=str(root / "plugins"),  # Ray workers import the test op by module name
        PIP_NO_INDEX="1",  # Data-Juicer may try to pip-install what it misses: never here
    )
    env.update(extra)
    return env


def dj_command(config: Path, job_id: str, *, resume: bool = False) -> list[str]:
    """``dj-observe instrument -- dj-process ...``, both from this interpreter's environment."""
    bin_dir = Path(sys.executable).parent
    job = ["--resume", job_id] if resume else ["--job_id", job_id]
    return [
        str(bin_dir / "dj-observe"),
        "instrument",
        "--",
        str(bin_dir / "dj-process"),
        "--config",
        str(config),
        *job,
    ]


def run(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
