"""``dj-observe diff`` for the terminal and as JSON."""

from __future__ import annotations

import json
from typing import IO

from rich.console import Console
from rich.text import Text

from dj_observe.diff import Change, Comparison, RunSummary
from dj_observe.snapshot import format_duration
from dj_observe.termtable import Column, FitTable, Kind
from dj_observe.textsafe import visible

__all__ = ["print_comparison", "write_comparison_json"]

_DRIFT = "bold red"

_RUN_COLUMNS = (Column(""), *(Column(header, justify="right") for header in ("a", "b", "change")))
_OP_COLUMNS = (
    Column("op", Kind.ID),
    Column("rows in", justify="right", drop=1),
    Column("rows out", justify="right"),
    Column("retention", justify="right"),
    Column("p50", justify="right"),
    Column("p95", justify="right", drop=2),
    Column("failed runs", justify="right"),
)


def write_comparison_json(comparison: Comparison, stream: IO[str]) -> None:
    json.dump(comparison.to_json_dict(), stream, indent=2)
    stream.write("\n")


def print_comparison(comparison: Comparison, stream: IO[str]) -> None:
    """The run's figures, then one row per op; changes past the threshold in red with ``!``."""
    console = Console(file=stream, soft_wrap=False)
    a, b = comparison.a, comparison.b
    console.print(Text(f"a: {_describe(a)}"))
    console.print(Text(f"b: {_describe(b)}"))
    console.print(
        Text(
            f"threshold {comparison.threshold:g}: retention by absolute difference, rows and "
            f"durations by relative change (durations beyond {comparison.duration_floor:g}s); "
            "any new failure"
        )
    )
    run = FitTable(_RUN_COLUMNS, title="Run")
    for change in comparison.run:
        run.add_row(Text(change.name.replace("_", " ")), *_cells(change))
    console.print(run)

    ops = FitTable(_OP_COLUMNS, title="Ops (a -> b)")
    for op in comparison.ops:
        name = Text(visible(op.op) + (f" (only in {op.only_in})" if op.only_in else ""))
        if op.drift:
            name.stylize(_DRIFT)
        ops.add_row(name, *(_arrow(change) for change in op.changes))
    console.print(ops)
    drifted = [op.op for op in comparison.ops if op.drift]
    drifted += [change.name for change in comparison.run if change.drift]
    console.print(
        Text(
            f"drift: {', '.join(map(visible, drifted))}" if drifted else "no drift",
            style=_DRIFT if drifted else "green",
        )
    )


def _describe(summary: RunSummary) -> str:
    jobs = f" ({', '.join(summary.jobs)})" if summary.jobs != [summary.label] else ""
    return visible(f"{summary.label}{jobs}, pipeline {summary.pipeline or '-'}, {summary.status}")


def _cells(change: Change) -> list[Text]:
    delta = change.delta
    cells = [
        Text(_value(change.name, change.a)),
        Text(_value(change.name, change.b)),
        Text("-" if delta is None else _signed(change.name, delta)),
    ]
    if change.drift:
        cells[2].append(" !")
        cells[2].stylize(_DRIFT)
    return cells


def _arrow(change: Change) -> Text:
    text = Text(f"{_value(change.name, change.a)} -> {_value(change.name, change.b)}")
    if change.drift:
        text.append(" !")
        text.stylize(_DRIFT)
    return text


def _value(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    if name == "retention":
        return f"{value * 100:.1f}%"
    if name.endswith("seconds"):
        return f"{value:.3f}s" if value < 60 else format_duration(value) or "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _signed(name: str, delta: float) -> str:
    if name == "retention":
        return f"{delta * 100:+.1f} pts"
    if name.endswith("seconds"):
        return f"{delta:+.3f}s"
    return f"{delta:+,.0f}" if float(delta).is_integer() else f"{delta:+,.1f}"
