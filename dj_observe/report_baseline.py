"""The report's comparison with a baseline (``dj-observe report --baseline DIR``).

Under the report's ops: each op's figures in the job and in the baseline (the median of the
pipeline's last completed jobs, :func:`dj_observe.diff.baseline`), drift marked, and the
retention funnel of both, bar over bar.
"""

from __future__ import annotations

from html import escape

from dj_observe.diff import Change, Comparison

__all__ = ["baseline_section"]

_COLUMNS = {
    "retention": "Retention",
    "rows_in": "Rows in",
    "rows_out": "Rows out",
    "p50_seconds": "p50",
    "p95_seconds": "p95",
    "failed_runs": "Failed runs",
}


def baseline_section(comparison: Comparison) -> str:
    """The table and funnel of ``comparison`` (a: the baseline, b: this job)."""
    base = comparison.a
    jobs = ", ".join(base.jobs)
    head = "<tr><th>Op</th>" + "".join(
        f"<th>{title}<br>job / baseline</th>" for title in _COLUMNS.values()
    )
    rows = []
    for op in comparison.ops:
        changes = {change.name: change for change in op.changes}
        cells = "".join(_cell(changes[key]) for key in _COLUMNS)
        where = f" (only in the {'baseline' if op.only_in == 'a' else 'job'})" if op.only_in else ""
        drift = ' class="drift"' if op.drift else ""
        rows.append(
            f'<tr{drift} data-op="{escape(op.op)}"><td>{escape(op.op)}{where}</td>{cells}</tr>'
        )
    drifted = [op.op for op in comparison.ops if op.drift]
    verdict = (
        f"Drift past the threshold ({comparison.threshold:g}) in: {escape(', '.join(drifted))}."
        if drifted
        else f"No op drifted past the threshold ({comparison.threshold:g})."
    )
    return (
        "<style>table.baseline tr.drift td{background:#fdecea}</style>"
        f"<h2>Against the baseline</h2><p>{escape(base.label)}: {escape(jobs)}. {verdict}</p>"
        f'<table class="ops baseline">{head}</tr>{"".join(rows)}</table>'
        '<p class="muted">Retention drifts by absolute difference, rows and durations by '
        "relative change; a drifted figure is marked <b>!</b>.</p>"
        f"{_funnel(comparison)}"
    )


def _cell(change: Change) -> str:
    mark = " <b>!</b>" if change.drift else ""
    job, base = _value(change.name, change.b), _value(change.name, change.a)
    return f'<td class="num">{job} / {base}{mark}</td>'


def _value(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    if name == "retention":
        return f"{value * 100:.1f}%"
    if name.endswith("seconds"):
        return f"{value:.3f}s"
    return f"{value:,.0f}"


def _funnel(comparison: Comparison) -> str:
    """Cumulative retention after each op, the job's bar over the baseline's."""
    row, label, plot = 30, 260, 600
    kept = {"a": 1.0, "b": 1.0}
    bars = []
    for op in comparison.ops:
        retention = next(c for c in op.changes if c.name == "retention")
        for side, value in (("b", retention.b), ("a", retention.a)):
            if value is not None:
                kept[side] *= value
        bars.append((op.op, op.drift, kept["b"], kept["a"]))
    height = row * len(bars) + 8
    out = [
        "<h3>Retention funnel: job (dark) over baseline (light)</h3>",
        f'<svg class="funnel baseline" viewBox="0 0 {label + plot + 200} {height}" '
        f'width="{label + plot + 200}" height="{height}" role="img" '
        'aria-label="retention funnel against the baseline">',
    ]
    for n, (name, drift, job, base) in enumerate(bars):
        y = n * row + 4
        color = "#c62828" if drift else "#1565c0"
        tip = f"{name}: job {job * 100:.1f}% of its input, baseline {base * 100:.1f}%"
        out.append(
            f'<g class="funnel-step" data-op="{escape(name)}"><title>{escape(tip)}</title>'
            f'<text x="{label - 8}" y="{y + 16}" text-anchor="end">{escape(name[:36])}</text>'
            f'<rect x="{label}" y="{y}" width="{plot * job:.1f}" height="12" fill="{color}"/>'
            f'<rect x="{label}" y="{y + 13}" width="{plot * base:.1f}" height="10" '
            'fill="#9e9e9e"/>'
            f'<text x="{label + plot + 6}" y="{y + 16}">{job * 100:.1f}% / {base * 100:.1f}%'
            f"{' !' if drift else ''}</text></g>"
        )
    out.append("</svg>")
    return "".join(out)
