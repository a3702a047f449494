"""Grafana dashboards as data, rendered to the JSON committed under ``grafana/dashboards/``.

A small panel model (``Target``, ``Panel``, ``Variable``, ``Dashboard``) in the manner of Ray's
dashboard factory: panels are laid out on Grafana's 24-column grid from their widths, and panel
ids are checked for uniqueness when a dashboard is built (at import time for the two below).

Queries select with ``{job_id=~"$job_id", pipeline=~"$pipeline"}``. One job's series can reach
Prometheus from several places at once (the live hook, the Pushgateway, ``dj-observe serve``), so
raw metrics are first reduced with ``max by`` their natural keys; identical copies then count
once. Regenerate the JSON with ``python -m dj_observe.dashboards [--out grafana/dashboards]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DASHBOARDS",
    "DATASOURCE_UID",
    "FLEET",
    "GRID_COLUMNS",
    "JOB_OVERVIEW",
    "SCHEMA_VERSION",
    "Dashboard",
    "Panel",
    "Target",
    "Variable",
    "all_queries",
    "dump",
    "layout",
    "main",
    "render",
    "write_dashboards",
]

SCHEMA_VERSION = 39
GRID_COLUMNS = 24
DATASOURCE_UID = "dj-prometheus"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
DEFAULT_OUT = Path("grafana/dashboards")
SEL = 'job_id=~"$job_id", pipeline=~"$pipeline"'
"""The label matchers every per-job query carries (template variables left in)."""
PIPE = 'pipeline=~"$pipeline"'

PanelKind = Literal["stat", "timeseries", "table", "bargauge"]
STATE_COLORS = {"pending": "yellow", "running": "blue", "completed": "green", "failed": "red"}


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False
    exemplar: bool = False


@dataclass(frozen=True)
class Panel:
    """A panel: ``width`` columns of 24 and ``height`` grid rows; ``id`` is stable across edits."""

    title: str
    kind: PanelKind
    targets: tuple[Target, ...]
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""
    id: int = 0
    stacked: bool = False
    thresholds: tuple[tuple[str, float | None], ...] = (("green", None),)
    min: float | None = None
    max: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    overrides: tuple[Mapping[str, Any], ...] = ()
    transformations: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Variable:
    """A template variable: the Prometheus datasource picker or a ``label_values`` query."""

    name: str
    label: str
    query: str = ""
    kind: Literal["datasource", "query"] = "query"
    multi: bool = False
    include_all: bool = False
    sort: int = 1  # Grafana: 1 alphabetical ascending, 2 descending


@dataclass(frozen=True)
class Dashboard:
    """A dashboard; building one checks its panels (unique positive ids, widths within 24)."""

    uid: str
    title: str
    panels: tuple[Panel, ...]
    variables: tuple[Variable, ...]
    description: str = ""
    links: tuple[str, ...] = ()  # uids of dashboards to link to

    def __post_init__(self) -> None:
        ids = [panel.id for panel in self.panels]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"dashboard {self.uid}: duplicate panel ids {duplicates}")
        for panel in self.panels:
            if panel.id <= 0:
                raise ValueError(f"dashboard {self.uid}: panel {panel.title!r} needs an id > 0")
            if not 0 < panel.width <= GRID_COLUMNS or panel.height <= 0:
                raise ValueError(f"dashboard {self.uid}: panel {panel.title!r} does not fit")
            if not panel.targets or not all(t.expr.strip() for t in panel.targets):
                raise ValueError(f"dashboard {self.uid}: panel {panel.title!r} has no query")
        names = [variable.name for variable in self.variables]
        if len(set(names)) != len(names):
            raise ValueError(f"dashboard {self.uid}: duplicate variable names {names}")


def layout(panels: Sequence[Panel]) -> list[dict[str, int]]:
    """Grid positions, left to right; a panel that does not fit starts a row below the tallest."""
    positions: list[dict[str, int]] = []
    x = y = row_height = 0
    for panel in panels:
        if x + panel.width > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        positions.append({"x": x, "y": y, "w": panel.width, "h": panel.height})
        x += panel.width
        row_height = max(row_height, panel.height)
    return positions


def all_queries(dashboard: Dashboard) -> list[tuple[str, str]]:
    """``(panel title, expr)`` for every target, template variables left in."""
    return [(panel.title, target.expr) for panel in dashboard.panels for target in panel.targets]


# --- rendering -------------------------------------------------------------------------------


def _render_target(target: Target, ref_id: str, kind: PanelKind) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "exemplar": target.exemplar,
        "expr": target.expr,
        "format": "table" if kind == "table" else "time_series",
        "instant": target.instant,
        "legendFormat": target.legend or "__auto",
        "range": not target.instant,
        "refId": ref_id,
    }


def _kind_options(panel: Panel) -> dict[str, Any]:
    reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if panel.kind == "stat":
        return {
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": reduce,
            "textMode": "auto",
        }
    if panel.kind == "bargauge":
        return {
            "displayMode": "gradient",
            "minVizHeight": 10,
            "orientation": "horizontal",
            "reduceOptions": reduce,
            "showUnfilled": True,
        }
    if panel.kind == "table":
        return {"cellHeight": "sm", "showHeader": True}
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def _field_defaults(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "color": {"mode": "palette-classic" if panel.kind == "timeseries" else "thresholds"},
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": color, "value": value} for color, value in panel.thresholds],
        },
        "unit": panel.unit,
    }
    if panel.min is not None:
        defaults["min"] = panel.min
    if panel.max is not None:
        defaults["max"] = panel.max
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "fillOpacity": 30 if panel.stacked else 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if panel.stacked else "none"},
        }
    return defaults


def _render_panel(panel: Panel, position: dict[str, int]) -> dict[str, Any]:
    targets = [
        _render_target(target, chr(ord("A") + i), panel.kind)
        for i, target in enumerate(panel.targets)
    ]
    return {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": {"defaults": _field_defaults(panel), "overrides": list(panel.overrides)},
        "gridPos": position,
        "id": panel.id,
        "options": {**_kind_options(panel), **panel.options},
        "targets": targets,
        "title": panel.title,
        "transformations": list(panel.transformations),
        "type": panel.kind,
    }


def _render_variable(variable: Variable) -> dict[str, Any]:
    common = {"hide": 0, "label": variable.label, "name": variable.name, "skipUrlSync": False}
    if variable.kind == "datasource":
        return {
            **common,
            "current": {"selected": False, "text": "Prometheus", "value": DATASOURCE_UID},
            "includeAll": False,
            "multi": False,
            "options": [],
            "query": "prometheus",
            "refresh": 1,
            "regex": "",
            "type": "datasource",
        }
    rendered: dict[str, Any] = {
        **common,
        "datasource": DATASOURCE,
        "definition": variable.query,
        "includeAll": variable.include_all,
        "multi": variable.multi,
        "options": [],
        "query": {
            "qryType": 1,
            "query": variable.query,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 2,  # on time range change: new jobs appear without a reload
        "regex": "",
        "sort": variable.sort,
        "type": "query",
    }
    if variable.include_all:
        rendered["allValue"] = ".*"
        rendered["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return rendered


def render(dashboard: Dashboard) -> dict[str, Any]:
    """Grafana dashboard JSON (schema 39) for ``dashboard``."""
    positions = layout(dashboard.panels)
    return {
        "annotations": {"list": []},
        "description": dashboard.description,
        "editable": True,
        "graphTooltip": 1,
        "links": [
            {
                "icon": "dashboard",
                "tags": [],
                "targetBlank": False,
                "title": _TITLES.get(uid, uid),
                "type": "link",
                "url": f"/d/{uid}",
                "includeVars": False,
                "keepTime": True,
            }
            for uid in dashboard.links
        ],
        "panels": [
            _render_panel(p, pos) for p, pos in zip(dashboard.panels, positions, strict=True)
        ],
        "refresh": "10s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["dj-observe"],
        "templating": {"list": [_render_variable(v) for v in dashboard.variables]},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": dashboard.title,
        "uid": dashboard.uid,
        "version": 1,
    }


# --- the dashboards --------------------------------------------------------------------------


def _state_colors() -> tuple[Mapping[str, Any], ...]:
    return tuple(
        {
            "matcher": {"id": "byName", "options": state},
            "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}],
        }
        for state, color in STATE_COLORS.items()
    )


def _table(columns: Mapping[str, str], *, merge: bool = False) -> tuple[Mapping[str, Any], ...]:
    """Keep, order and rename the label/value columns of an instant table query."""
    steps: list[Mapping[str, Any]] = [{"id": "merge", "options": {}}] if merge else []
    steps.append({"id": "filterFieldsByName", "options": {"include": {"names": list(columns)}}})
    steps.append(
        {
            "id": "organize",
            "options": {
                "excludeByName": {},
                "indexByName": {name: i for i, name in enumerate(columns)},
                "renameByName": {k: v for k, v in columns.items() if k != v},
            },
        }
    )
    return tuple(steps)


DATASOURCE_VARIABLE = Variable(name="datasource", label="Data source", kind="datasource")
PIPELINE_VARIABLE = Variable(
    name="pipeline",
    label="Pipeline",
    query="label_values(dj_job_status, pipeline)",
    multi=True,
    include_all=True,
)
JOB_VARIABLE = Variable(
    name="job_id",
    label="Job",
    query='label_values(dj_job_status{pipeline=~"$pipeline"}, job_id)',
    sort=2,  # job ids start with their UTC start time: newest first, and selected by default
)

_P95_RAW = (
    "histogram_quantile(0.95, sum by (job_id, pipeline, op, le) "
    f"(rate(dj_op_duration_seconds_bucket{{{SEL}}}[5m])))"
)

JOB_OVERVIEW = Dashboard(
    uid="dj-job-overview",
    title="Job overview",
    description="One dj-observe job: state, progress, throughput, op latency, failures.",
    variables=(DATASOURCE_VARIABLE, PIPELINE_VARIABLE, JOB_VARIABLE),
    links=("dj-fleet",),
    panels=(
        Panel(
            id=1,
            title="Status",
            kind="stat",
            width=4,
            height=4,
            description="The job's current state (dj_job_status == 1).",
            targets=(Target(f"max by (job_id, state) (dj_job_status{{{SEL}}}) == 1", "{{state}}"),),
            options={"colorMode": "background", "textMode": "name"},
            overrides=_state_colors(),
        ),
        Panel(
            id=2,
            title="Progress",
            kind="stat",
            unit="percentunit",
            width=4,
            height=4,
            min=0,
            max=1,
            description="Ended (completed or failed) partitions / all partitions.",
            targets=(Target(f"dj_job:partition_progress:ratio{{{SEL}}}", "{{job_id}}"),),
        ),
        Panel(
            id=3,
            title="Rows/s",
            kind="stat",
            unit="short",
            width=4,
            height=4,
            description="Rows out of completed op runs per second (1m rate, summed over ops).",
            targets=(Target(f"dj_job:rows_out:rate1m{{{SEL}}}", "{{job_id}}"),),
            options={"graphMode": "area"},
        ),
        Panel(
            id=4,
            title="Failed partitions",
            kind="stat",
            width=4,
            height=4,
            description="Partitions in the failed state.",
            targets=(
                Target(f'max by (job_id) (dj_partitions{{{SEL}, state="failed"}})', "{{job_id}}"),
            ),
            options={"colorMode": "background"},
            thresholds=(("green", None), ("red", 1)),
        ),
        Panel(
            id=5,
            title="Since last event",
            kind="stat",
            unit="s",
            width=4,
            height=4,
            description="Seconds since the job's latest event: its heartbeat (stall alert).",
            targets=(Target(f"dj_job:seconds_since_last_event{{{SEL}}}", "{{job_id}}"),),
        ),
        Panel(
            id=6,
            title="Since last checkpoint",
            kind="stat",
            unit="s",
            width=4,
            height=4,
            description="Seconds since the job saved its last checkpoint.",
            targets=(
                Target(
                    f"time() - max by (job_id) (dj_last_checkpoint_timestamp_seconds{{{SEL}}})",
                    "{{job_id}}",
                ),
            ),
        ),
        Panel(
            id=7,
            title="Partitions by state",
            kind="timeseries",
            stacked=True,
            description="Partitions pending, running, completed and failed over time.",
            targets=(Target(f"max by (job_id, state) (dj_partitions{{{SEL}}})", "{{state}}"),),
            overrides=_state_colors(),
        ),
        Panel(
            id=8,
            title="Rows out per second",
            kind="timeseries",
            description="Rows out of completed op runs per second: the job and each op.",
            targets=(
                Target(f"dj_job:rows_out:rate1m{{{SEL}}}", "job"),
                Target(f"max by (job_id, op) (rate(dj_op_rows_out_total{{{SEL}}}[1m]))", "{{op}}"),
            ),
        ),
        Panel(
            id=9,
            title="Op duration p50 / p95 / p99",
            kind="timeseries",
            unit="s",
            width=24,
            height=9,
            description="Op run duration quantiles over 5m. The p95 query reads the raw "
            "histogram so its exemplars show: click a dot to open the op's trace in Jaeger.",
            targets=(
                Target(f"dj_op:duration_seconds:p50{{{SEL}}}", "{{op}} p50"),
                Target(_P95_RAW, "{{op}} p95", exemplar=True),
                Target(f"dj_op:duration_seconds:p99{{{SEL}}}", "{{op}} p99"),
            ),
        ),
        Panel(
            id=10,
            title="Rows in / out per op",
            kind="table",
            width=14,
            description="Rows into and out of each op's completed runs, and out / in.",
            targets=(
                Target(f"max by (job_id, op) (dj_op_rows_in_total{{{SEL}}})", instant=True),
                Target(f"max by (job_id, op) (dj_op_rows_out_total{{{SEL}}})", instant=True),
                Target(f"max by (job_id, op) (dj_op:rows_retention:ratio{{{SEL}}})", instant=True),
            ),
            transformations=_table(
                {
                    "job_id": "job",
                    "op": "op",
                    "Value #A": "rows in",
                    "Value #B": "rows out",
                    "Value #C": "retention",
                },
                merge=True,
            ),
            overrides=(
                {
                    "matcher": {"id": "byName", "options": "retention"},
                    "properties": [{"id": "unit", "value": "percentunit"}],
                },
            ),
        ),
        Panel(
            id=11,
            title="Retention per op",
            kind="bargauge",
            unit="percentunit",
            width=10,
            min=0,
            max=1,
            description="Rows out / rows in per op (1 = the op dropped nothing).",
            targets=(
                Target(
                    f"max by (job_id, op) (dj_op:rows_retention:ratio{{{SEL}}})",
                    "{{op}}",
                    instant=True,
                ),
            ),
        ),
        Panel(
            id=12,
            title="Failed partitions (partition, op, error type)",
            kind="table",
            description="One row per failed partition: the op it failed in and the error type.",
            targets=(
                Target(
                    f"max by (job_id, partition, op, error_type) "
                    f"(dj_partition_failed_info{{{SEL}}}) == 1",
                    instant=True,
                ),
            ),
            transformations=_table(
                {"job_id": "job", "partition": "partition", "op": "op", "error_type": "error type"}
            ),
        ),
        Panel(
            id=13,
            title="Event rate by type",
            kind="timeseries",
            unit="short",
            description="Events per second by event type (1m rate).",
            targets=(
                Target(
                    f"max by (job_id, event_type) (rate(dj_events_total{{{SEL}}}[1m]))",
                    "{{event_type}}",
                ),
            ),
        ),
        Panel(
            id=14,
            title="Checkpoints saved",
            kind="timeseries",
            description="Checkpoints saved per 5 minutes.",
            targets=(
                Target(
                    f"max by (job_id) (increase(dj_checkpoints_saved_total{{{SEL}}}[5m]))",
                    "{{job_id}}",
                ),
            ),
        ),
        Panel(
            id=15,
            title="Seconds since last event",
            kind="timeseries",
            unit="s",
            description="The heartbeat over time: a rising line on a running job is a stall.",
            targets=(Target(f"dj_job:seconds_since_last_event{{{SEL}}}", "{{job_id}}"),),
        ),
    ),
)

FLEET = Dashboard(
    uid="dj-fleet",
    title="Fleet",
    description="Every dj-observe job: running, failed, durations, last success per pipeline, "
    "and the drift of each pipeline's newest job.",
    variables=(DATASOURCE_VARIABLE, PIPELINE_VARIABLE),
    links=("dj-job-overview",),
    panels=(
        Panel(
            id=1,
            title="Jobs running",
            kind="stat",
            width=6,
            height=4,
            targets=(
                Target(
                    f'count(max by (job_id) (dj_job_status{{{PIPE}, state="running"}}) == 1) '
                    "or vector(0)",
                    "running",
                ),
            ),
        ),
        Panel(
            id=2,
            title="Jobs failed (1d)",
            kind="stat",
            width=6,
            height=4,
            description="Jobs that were in the failed state at some point in the last day.",
            targets=(
                Target(
                    "count(max by (job_id) (max_over_time("
                    f'dj_job_status{{{PIPE}, state="failed"}}[1d])) == 1) or vector(0)',
                    "failed",
                ),
            ),
            options={"colorMode": "background"},
            thresholds=(("green", None), ("red", 1)),
        ),
        Panel(
            id=3,
            title="Failed partitions by pipeline",
            kind="bargauge",
            width=12,
            height=4,
            description="Partitions currently failed, summed over each pipeline's jobs.",
            targets=(
                Target(
                    "sum by (pipeline) (max by (job_id, pipeline) "
                    f'(dj_partitions{{{PIPE}, state="failed"}}))',
                    "{{pipeline}}",
                    instant=True,
                ),
            ),
        ),
        Panel(
            id=4,
            title="Job duration per pipeline",
            kind="timeseries",
            unit="s",
            description="Wall time of ended jobs: mean and longest per pipeline.",
            targets=(
                Target(
                    "avg by (pipeline) (max by (job_id, pipeline) "
                    f"(dj_job_duration_seconds{{{PIPE}}}))",
                    "{{pipeline}} mean",
                ),
                Target(
                    f"max by (pipeline) (dj_job_duration_seconds{{{PIPE}}})",
                    "{{pipeline}} max",
                ),
            ),
        ),
        Panel(
            id=5,
            title="Since last success per pipeline",
            kind="bargauge",
            unit="s",
            description="Seconds since each pipeline's latest successful job ended.",
            targets=(
                Target(
                    f"time() - max by (pipeline) (dj_job_last_success_timestamp_seconds{{{PIPE}}})",
                    "{{pipeline}}",
                    instant=True,
                ),
            ),
        ),
        Panel(
            id=6,
            title="Jobs",
            kind="table",
            width=24,
            description="Every job Prometheus sees and its current state.",
            targets=(
                Target(
                    f"max by (pipeline, job_id, state) (dj_job_status{{{PIPE}}}) == 1",
                    instant=True,
                ),
            ),
            transformations=_table({"pipeline": "pipeline", "job_id": "job", "state": "state"}),
        ),
        Panel(
            id=7,
            title="Retention shift per op: newest job against recent",
            kind="timeseries",
            unit="percentunit",
            description="Per pipeline and op: the newest job's retention minus the median of the "
            "pipeline's other jobs of the last 7 days (alert DjOpRetentionShift beyond ten points, "
            "once the op has seen 1000 rows).",
            targets=(
                Target(
                    f"dj_pipeline_op:rows_retention:latest{{{PIPE}}} - on (pipeline, op) "
                    f"group_left () dj_pipeline_op:rows_retention:recent{{{PIPE}}}",
                    "{{pipeline}} {{op}}",
                ),
            ),
        ),
        Panel(
            id=8,
            title="Op time per run: newest job against recent",
            kind="timeseries",
            unit="short",
            description="Per pipeline and op: the newest job's mean seconds per completed run "
            "divided by the pipeline's recent mean (1: as fast as before; alert DjOpSlowdown "
            "beyond 2 and 5 s more per run, over 10 runs).",
            targets=(
                Target(
                    f"dj_pipeline_op:duration_seconds_mean:latest{{{PIPE}}} / on (pipeline, op) "
                    f"group_left () dj_pipeline_op:duration_seconds_mean:recent{{{PIPE}}}",
                    "{{pipeline}} {{op}}",
                ),
            ),
        ),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (JOB_OVERVIEW, FLEET)
_TITLES = {d.uid: d.title for d in DASHBOARDS}


def dump(dashboard: Dashboard) -> str:
    """The committed file's text: sorted keys, indent 2, trailing newline."""
    return json.dumps(render(dashboard), indent=2, sort_keys=True) + "\n"


def write_dashboards(out: Path = DEFAULT_OUT) -> list[Path]:
    """Write ``<uid>.json`` for every dashboard into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for dashboard in DASHBOARDS:
        path = out / f"{dashboard.uid}.json"
        path.write_text(dump(dashboard))
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dj_observe.dashboards [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m dj_observe.dashboards", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"(default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    for path in write_dashboards(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
