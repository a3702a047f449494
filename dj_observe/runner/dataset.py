"""Reading a job's dataset, and the generated demo dataset.

The demo dataset is text with what a cleaning pipeline is for: links, e-mail
addresses, odd whitespace and punctuation, special characters, texts too short
to keep, and exact duplicates (also across partitions).  It is generated
deterministically from a seed, so every run of the demo sees the same rows.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from dj_observe.runner.config import DEMO_SCHEME, ConfigError

__all__ = ["generate_demo", "load_dataset", "write_table"]

_WORDS = (
    "data",
    "pipeline",
    "partition",
    "operator",
    "filter",
    "mapper",
    "quality",
    "corpus",
    "token",
    "model",
    "sample",
    "clean",
    "text",
    "language",
    "document",
    "dataset",
    "record",
    "checkpoint",
    "resume",
    "cluster",
    "worker",
    "node",
    "metric",
    "trace",
    "latency",
    "throughput",
    "batch",
    "stream",
    "schema",
    "column",
    "value",
    "noise",
    "signal",
    "the",
    "of",
    "and",
    "to",
    "in",
    "for",
    "with",
    "on",
    "by",
    "from",
    "at",
    "as",
    "is",
    "are",
    "was",
    "be",
    "this",
    "that",
    "which",
)
_NOISE = ("\u00a0", "\u2009", "\u3000", "\t", "  ")
_PUNCTUATION = ("\uff0c", "\u3002", "\u201c", "\u201d", "\u2014", "\uff01", "\u2026")


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[:1].upper() + text[1:] + "."


def generate_demo(rows: int, seed: int = 0) -> pa.Table:
    """``rows`` demo texts (about 300 bytes each) in a ``text`` column."""
    rng = random.Random(seed)
    texts: list[str] = []
    for index in range(rows):
        if texts and rng.random() < 0.05:
            texts.append(texts[rng.randrange(len(texts))])  # an exact duplicate
            continue
        if rng.random() < 0.04:
            texts.append(rng.choice(("ok", "n/a", "see above", "")))  # too short to keep
            continue
        parts = [_sentence(rng, rng.randint(8, 30)) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.3:
            parts.insert(
                rng.randrange(len(parts) + 1),
                f"See https://example.com/docs/{index}?ref={rng.randint(1, 999)}",
            )
        if rng.random() < 0.2:
            parts.append(f"Contact user{index}@example.org for details")
        if rng.random() < 0.3:
            parts.append(rng.choice(_NOISE).join(rng.choice(_WORDS) for _ in range(5)))
        if rng.random() < 0.2:
            parts.append(rng.choice(_PUNCTUATION) + _sentence(rng, 5))
        if rng.random() < 0.05:
            parts.append("#$%^&*" * rng.randint(5, 20))
        texts.append(" ".join(parts))
    return pa.table({"text": texts, "id": list(range(rows))})


def load_dataset(path: str, text_key: str = "text") -> pa.Table:
    """A JSONL or Parquet file (or ``demo://ROWS``) as a table with a ``text_key`` column."""
    if path.startswith(DEMO_SCHEME):
        table = generate_demo(int(path[len(DEMO_SCHEME) :]))
        return table.rename_columns([text_key, "id"]) if text_key != "text" else table
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"dataset_path: {path} does not exist")
    try:
        table = pq.read_table(file) if file.suffix == ".parquet" else pa_json.read_json(file)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConfigError(f"dataset_path: cannot read {path}: {exc}") from None
    if text_key not in table.column_names:
        raise ConfigError(
            f"text_key: the dataset has no column {text_key!r} "
            f"(it has {', '.join(table.column_names)})"
        )
    return table


def write_table(table: pa.Table, path: Path) -> None:
    """Write JSONL or Parquet (by extension) atomically: a temp file, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        pq.write_table(table, temporary)
    else:
        import msgspec

        with temporary.open("wb") as handle:
            for batch in table.to_batches(max_chunksize=10_000):
                for row in batch.to_pylist():
                    handle.write(msgspec.json.encode(row) + b"\n")
    temporary.replace(path)
