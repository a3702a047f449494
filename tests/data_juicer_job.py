"""Real Data-Juicer jobs for the tests: a dataset, a config, a failure switch, a runner.

The pipeline has five text ops; the third is a pass-through op defined here whose
``process_batched`` raises when a row's ``id`` is listed in ``DJX_FAIL_IDS``, so one
partition can be made to fail and the same config can then resume the job
(Data-Juicer refuses to resume if the config or the data changed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from support import OtlpReceiver, SpanView, free_port, samples, scrape, snapshot_doc

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
import time

from data_juicer.ops.base_op import OPERATORS, Mapper


@OPERATORS.register_module("djx_fail_on_ids_mapper")
class DjxFailOnIdsMapper(Mapper):
    """Passes rows through; raises on a row whose id is in DJX_FAIL_IDS."""

    _batched_op = True

    def process_batched(self, samples):
        time.sleep(float(os.environ.get("DJX_SLEEP", "0")))  # a long op, on demand
        bad = {int(x) for x in os.environ.get("DJX_FAIL_IDS", "").split(",") if x.strip()}
        for row_id in samples.get("id", []):
            if row_id in bad:
                raise RuntimeError(f"injected failure on row id={row_id}")
        return samples
'''


KNOWN_OPS = [
    "clean_links_mapper",
    "whitespace_normalization_mapper",
    "djx_fail_on_ids_mapper",
    "text_length_filter",
    "words_num_filter",
]
KNOWN_ROWS = [(600, 600), (600, 600), (600, 600), (600, 500), (500, 450)]
"""Each op's rows in and out on :func:`write_known_dataset`'s 600 rows."""
KNOWN_FAIL_ROW = 350  # in the second of two partitions


def write_known_dataset(path: Path) -> Path:
    """600 rows: 100 shorter than 12 characters, 50 more with fewer than 5 words."""
    with path.open("w") as handle:
        for row in range(600):
            if row % 6 == 0:
                text = f"tiny{row % 10}"
            elif row % 12 == 1:
                text = f"abcdefghijklmnop{row:03d} qr"
            else:
                text = f"alpha  beta gamma delta epsilon row{row} http://example.com/{row}"
            handle.write(json.dumps({"id": row, "text": text}) + "\n")
    return path


def write_executor_config(root: Path, executor: str) -> Path:
    """The known pipeline for ``executor`` (``ray_partitioned``: 2 partitions, checkpoint
    groups of two ops; ``default``: with Data-Juicer's resource monitor); jobs land in
    ``root/outputs/<job_id>``."""
    plugins = root / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "djx_fail_ops.py").write_text(FAIL_OP_SOURCE)
    dataset = root / "known.jsonl"
    if not dataset.exists():
        write_known_dataset(dataset)
    config = root / f"{executor}.yaml"
    config.write_text(
        f"project_name: known-{executor}\n"
        f"dataset_path: {dataset}\n"
        f"export_path: {root}/outputs/{{job_id}}/results/processed.jsonl\n"
        f"work_dir: {root}/outputs\n"
        "np: 1\n"
        f"executor_type: {executor}\n"
        f"custom_operator_paths: [{plugins / 'djx_fail_ops.py'}]\n"
        "skip_op_error: false\n"
        f"open_monitor: {'true' if executor == 'default' else 'false'}\n"
        "partition:\n  mode: manual\n  num_of_partitions: 2\n"
        "checkpoint:\n  enabled: true\n  strategy: every_n_ops\n  n_ops: 2\n"
        "event_logging:\n  enabled: true\n"
        "process:\n"
        "  - clean_links_mapper:\n"
        "  - whitespace_normalization_mapper:\n"
        "  - djx_fail_on_ids_mapper:\n"
        "  - text_length_filter:\n      min_len: 12\n      max_len: 100000\n"
        "  - words_num_filter:\n      lang: en\n      tokenization: false\n"
        "      min_num: 5\n      max_num: 100000\n"
    )
    return config


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


@dataclasses.dataclass
class Observed:
    """One Data-Juicer run as the tests saw it."""

    job_dir: Path
    returncode: int
    metrics: str
    spans: list[SpanView]
    snapshot: dict
    log: str


def observe(
    root: Path, config: Path, job_id: str, done, *, resume=False, during=None, **env: str
) -> Observed:
    """Run ``dj-process`` instrumented; scrape until ``done(samples)``; collect the spans.

    ``during(samples)`` is called with every scrape while the job still runs."""
    port = free_port()
    log = root / f"{job_id}{'-resume' if resume else ''}.log"
    with OtlpReceiver() as receiver:
        environment = dj_environment(
            root,
            DJ_OBSERVE_METRICS_PORT=str(port),
            DJ_OBSERVE_METRICS_LINGER="60",  # the endpoint outlives the job until we scraped
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            **env,
        )
        process = run(dj_command(config, job_id, resume=resume), environment, log)
        deadline = time.monotonic() + RUN_TIMEOUT
        text = ""
        try:
            while time.monotonic() < deadline:
                ended = process.poll() is not None
                try:
                    text = scrape(f"http://127.0.0.1:{port}/metrics", timeout=2)
                except OSError:
                    if ended:
                        break  # gone: the last scrape is what we have
                    time.sleep(0.3)
                    continue
                found = samples(text)
                if during is not None and not ended:
                    during(found)
                if done(found) and (ended or _spans_flushed(receiver)):
                    break
                time.sleep(0.3)
            spans = receiver.spans
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # it is lingering for scrapers
            returncode = process.wait(30)
    output = log.read_text(errors="replace")
    assert text, f"no /metrics scraped; dj-process said:\n{output[-3000:]}"
    job_dir = root / "outputs" / job_id
    return Observed(job_dir, returncode, text, spans, snapshot_doc(job_dir), output)


def _spans_flushed(receiver: OtlpReceiver) -> bool:
    """The job span arrives last: the hook is closing and lingering."""
    return any(span.name.startswith("job ") for span in receiver.spans)


def any_sample(found, name: str, **labels: str) -> float | None:
    """The first sample of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    for (sample_name, sample_labels), value in found.items():
        if sample_name == name and wanted <= set(sample_labels):
            return value
    return None


def job_status(found, job_id: str) -> str | None:
    for state in ("completed", "failed", "running", "pending"):
        if any_sample(found, "dj_job_status", job_id=job_id, state=state) == 1:
            return state
    return None
