"""The ``dj-observe`` command line.

``main(argv) -> int`` maps every expected failure to one line on stderr and a
non-zero exit code (2 for bad input); tests call it in-process with their own
streams.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import IO, TYPE_CHECKING

from dj_observe import __version__

if TYPE_CHECKING:  # each command imports its machinery when it runs
    from dj_observe.diff import Comparison
    from dj_observe.snapshot import ProcessingSnapshotAnalyzer

__all__ = ["main"]

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_EXPORT_FAILED = 3
EXIT_JOB_FAILED = 4
EXIT_NOT_STOPPED = 5
EXIT_INTERRUPTED = 130

DEBUG_VARIABLE = "DJ_OBSERVE_DEBUG"
"""Set (to anything but ``0``) to see the traceback of an unexpected error, as ``--debug``."""


class CliError(Exception):
    """An error the user can fix; printed as one line."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dj-observe",
        description="Observe Data-Juicer-style jobs: snapshots, metrics and traces from their "
        "event logs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the traceback of an unexpected error (or set {DEBUG_VARIABLE}=1)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    snap = commands.add_parser(
        "snapshot",
        help="print a job's processing snapshot (the documented JSON)",
        description="Recompute a job's processing snapshot from its event log alone.",
    )
    snap.add_argument("job_dir", help="the job's work directory (holds events*.jsonl)")
    snap.add_argument(
        "--human-readable",
        action="store_true",
        help="a summary and tables for a person instead of JSON",
    )
    snap.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the JSON to FILE (atomically) instead of stdout",
    )
    snap.add_argument("--compact", action="store_true", help="JSON on one line, no indentation")
    snap.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="processes used to fold a large log (default: 2)",
    )
    snap.add_argument(
        "--summary",
        action="store_true",
        help="leave out partition_progress, operation_progress and the checkpointed-op list",
    )
    snap.add_argument(
        "--no-cache",
        dest="cache",
        action="store_false",
        help="fold the whole log, neither reading nor writing the persisted fold",
    )

    stop = commands.add_parser(
        "stop",
        help="stop a running job by the processes its event log recorded",
        description="Send SIGTERM to the job's live processes (never to a recycled pid), wait "
        "up to --timeout seconds, then SIGKILL the rest with --force.  The log and the "
        "checkpoints stay intact: the job resumes.",
    )
    stop.add_argument("job_dir", help="the job's work directory (with --list: an outputs dir)")
    stop.add_argument("--force", action="store_true", help="SIGKILL what outlives the timeout")
    stop.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to wait after SIGTERM (default: 30)",
    )
    stop.add_argument(
        "--list", action="store_true", help="list the jobs under JOB_DIR and their live processes"
    )

    run = commands.add_parser(
        "run",
        help="run a job config on Ray, observed end to end (or resume one)",
        description="Run a Data-Juicer-style job config on Ray: partitions, ops, checkpoints, "
        "with the event log, metrics and traces on. With --job-id of an existing job, resume "
        "it: completed partitions are skipped, the others continue after their last checkpoint.",
    )
    run.add_argument(
        "config",
        help="the job's YAML config (e.g. configs/demo.yaml), or a bundled one by name: demo",
    )
    run.add_argument("--job-id", help="resume this job (or name a new one)")
    run.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="join an existing Ray cluster instead of starting a local one",
    )

    demo = commands.add_parser(
        "demo",
        help="write a demo job directory from bundled synthetic data and snapshot it",
        description="Generate a realistic job directory (a few partitions, one failing) and "
        "print its snapshot.",
    )
    demo.add_argument(
        "--output",
        default="outputs/demo",
        metavar="DIR",
        help="where to write the job directory (default: outputs/demo)",
    )
    demo.add_argument("--json", action="store_true", help="print the JSON instead of tables")

    replay = commands.add_parser(
        "replay",
        help="feed an existing event log through the metrics and trace sinks",
        description="Replay a job's event log: spans to OTLP and/or a file, metrics to a "
        "Pushgateway or stdout. Ids and timestamps equal those of the live run.",
    )
    replay.add_argument("job_dir", help="the job's work directory")
    replay.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="send spans over OTLP/HTTP (e.g. http://127.0.0.1:4318/v1/traces)",
    )
    replay.add_argument("--traces-file", metavar="FILE", help="append spans as OTLP/JSON lines")
    replay.add_argument("--pushgateway", metavar="URL", help="push the metrics to a Pushgateway")
    replay.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds an export may take before it is abandoned (default: 10)",
    )

    serve = commands.add_parser(
        "serve",
        help="serve Prometheus metrics for every job under an outputs directory",
        description="Follow every job directory under OUTPUTS_DIR (new ones too) and serve "
        "their metrics at /metrics, folding only what the logs append.",
    )
    serve.add_argument("outputs_dir")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=9464, help="port to bind (default: 9464)")
    serve.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds between polls of the logs (default: 2)",
    )
    serve.add_argument(
        "--retention",
        type=float,
        default=86400.0,
        metavar="S",
        help="seconds an ended job stays exposed after its last event (default: 86400)",
    )

    watch = commands.add_parser(
        "watch",
        help="follow a job in the terminal: progress, rows/s, running, failures",
        description="A live view of a running (or finished) job from its event log alone; "
        "exits when the job ends (0 completed, 4 failed). Plain lines when not a terminal.",
    )
    watch.add_argument("job_dir")
    watch.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds between refreshes (default: 1)",
    )
    watch.add_argument(
        "--no-exit-on-end",
        dest="exit_on_end",
        action="store_false",
        help="keep following after the job ended",
    )
    watch.add_argument(
        "--stale-after",
        type=float,
        default=60.0,
        metavar="S",
        help="warn when no event arrived for this long (default: 60)",
    )

    report = commands.add_parser(
        "report",
        help="write one self-contained HTML report of a job (timeline, ops, failures)",
        description="An offline HTML page (inline SVG, no network): the job summary, a timeline "
        "of partitions and their ops, per-op durations and rows with the retention funnel, and "
        "the failed partitions with their errors.",
    )
    report.add_argument("job_dir")
    report.add_argument(
        "-o",
        "--output",
        default="report.html",
        metavar="FILE",
        help="where to write it (default: report.html)",
    )
    report.add_argument(
        "--max-partitions",
        type=int,
        default=500,
        metavar="N",
        help="timeline rows at most: all failed partitions and an even sample "
        "of the others (default: 500)",
    )

    report.add_argument(
        "--baseline",
        metavar="DIR",
        help="compare the ops with the median of the pipeline's last completed jobs under DIR",
    )
    report.add_argument(
        "--last", type=int, default=5, metavar="N", help="jobs in the baseline (default: 5)"
    )
    _add_duration_floor(report)
    _add_diff_parser(commands)

    instrument = commands.add_parser(
        "instrument",
        help="run a command (e.g. dj-process) with Data-Juicer's events observed",
        description="Run COMMAND with every Data-Juicer event of its Python processes also "
        "sent to dj-observe's metrics and spans (configured by DJ_OBSERVE_* and OTEL_* "
        "environment variables).  Data-Juicer's own files are unchanged.",
    )
    instrument.add_argument(
        "child", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS]", help="the command to run"
    )

    _add_assets_parser(commands)

    jobs = commands.add_parser(
        "jobs",
        help="list the jobs under an outputs directory",
        description="List the job directories under OUTPUTS_DIR with their status, progress "
        "and whether a live process still runs them.",
    )
    jobs.add_argument("outputs_dir", help="a directory whose subdirectories are job directories")
    jobs.add_argument("--running", action="store_true", help="only jobs with a live process")
    jobs.add_argument("--json", action="store_true", help="print the jobs as JSON, for scripts")
    return parser


def _write_output(
    path: str, analyzer: ProcessingSnapshotAnalyzer, compact: bool, workers: int, summary: bool
) -> None:
    import tempfile

    from dj_observe.snapshot import write_json

    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)  # as the report's -o does
    except OSError as exc:
        raise CliError(f"cannot create the output directory {directory}: {exc.strerror}") from exc
    snapshot = analyzer.generate_snapshot()
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            write_json(
                snapshot, handle, indent=0 if compact else 2, workers=workers, summary=summary
            )
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _snapshot(args: argparse.Namespace, stdout: IO[str]) -> int:
    if args.workers < 1:
        raise CliError("--workers must be at least 1")
    from dj_observe.snapshot import ProcessingSnapshotAnalyzer, write_json

    analyzer = ProcessingSnapshotAnalyzer(args.job_dir, workers=args.workers, cache=args.cache)
    if args.output:
        _write_output(args.output, analyzer, args.compact, args.workers, args.summary)
        return EXIT_OK
    snapshot = analyzer.generate_snapshot()
    if args.human_readable:
        from dj_observe.snapshot_view import print_snapshot

        print_snapshot(snapshot, stdout)
        return EXIT_OK
    stdout.flush()
    binary = getattr(stdout, "buffer", None)
    indent = 0 if args.compact else 2
    if binary is not None:
        write_json(snapshot, binary, indent=indent, workers=args.workers, summary=args.summary)
        binary.flush()
    else:
        from io import BytesIO

        buffer = BytesIO()
        write_json(snapshot, buffer, indent=indent, summary=args.summary)
        stdout.write(buffer.getvalue().decode())
    return EXIT_OK


def _add_assets_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    assets = commands.add_parser(
        "assets",
        help="export the bundled dashboards, alert rules, Prometheus and Alertmanager configs",
        description="The files installed with dj-observe: the Grafana dashboards with their "
        "provisioning, the Prometheus rules with their promtool tests, prometheus.yml, "
        "alertmanager.yml, the compose file and the demo job configs.",
    )
    actions = assets.add_subparsers(dest="assets_command", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write them under DIR, in the repository's layout",
        description="Write every asset under DIR (docker-compose.yml, prometheus/, grafana/, "
        "configs/). Nothing is written when a file exists already, unless --force.",
    )
    export.add_argument("dir", metavar="DIR")
    export.add_argument("--force", action="store_true", help="overwrite files that exist")


def _assets_export(args: argparse.Namespace, stdout: IO[str]) -> int:
    from dj_observe.assets import export

    written = export(Path(args.dir), force=args.force)
    print(f"{len(written)} files written under {args.dir}:", file=stdout)
    for path in written:
        print(f"  {path}", file=stdout)
    return EXIT_OK


def _add_diff_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    diff = commands.add_parser(
        "diff",
        help="compare two runs of a pipeline (or a run and its baseline) op by op",
        description="Per op: rows in/out, retention, duration p50/p95 and failed runs in both "
        "runs and the change; partitions, wall time and rows exported. Changes past the "
        "threshold are marked. Exit 0, or 1 with --fail-on-drift when one is.",
    )
    diff.add_argument("job_dir_a", help="the earlier run (with --baseline: the run to check)")
    diff.add_argument("job_dir_b", nargs="?", help="the later run")
    diff.add_argument(
        "--baseline",
        metavar="DIR",
        help="compare JOB_DIR_A with the median of its pipeline's last completed jobs under DIR",
    )
    diff.add_argument(
        "--last", type=int, default=5, metavar="N", help="jobs in the baseline (default: 5)"
    )
    diff.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="T",
        help="retention difference (0.1: ten points) and relative change of rows and "
        "durations (0.1: 10%%) that count as drift (default: 0.1)",
    )
    _add_duration_floor(diff)
    diff.add_argument("--json", action="store_true", help="print the comparison as JSON")
    diff.add_argument(
        "--fail-on-drift", action="store_true", help="exit 1 when a change passes the threshold"
    )


def _add_duration_floor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration-floor",
        type=float,
        default=None,
        metavar="S",
        help="a duration change of at most this many seconds is never drift (default: 5)",
    )


def _comparison(
    job_dir: str,
    other: str | None,
    baseline_dir: str | None,
    last: int,
    threshold: float | None = None,
    duration_floor: float | None = None,
) -> Comparison:
    """``job_dir`` against ``other``, or against the baseline under ``baseline_dir``."""
    if (other is None) == (baseline_dir is None):
        raise CliError("give a second job directory or --baseline DIR (one of the two)")
    if last < 1:
        raise CliError("--last must be at least 1")
    from dj_observe.diff import (
        DEFAULT_THRESHOLD,
        DURATION_FLOOR,
        baseline,
        compare,
        summarise,
    )

    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    if not threshold >= 0:  # NaN too
        raise CliError("--threshold must be a number, 0 or more")
    floor = DURATION_FLOOR if duration_floor is None else duration_floor
    if not floor >= 0:
        raise CliError("--duration-floor must be a number of seconds, 0 or more")
    run = summarise(job_dir)
    if other is not None:
        return compare(run, summarise(other), threshold, floor)
    assert baseline_dir is not None  # one of the two, checked above
    return compare(baseline(baseline_dir, run, last=last), run, threshold, floor)


def _diff(args: argparse.Namespace, stdout: IO[str]) -> int:
    from dj_observe.diff_view import print_comparison, write_comparison_json

    comparison = _comparison(
        args.job_dir_a,
        args.job_dir_b,
        args.baseline,
        args.last,
        args.threshold,
        args.duration_floor,
    )
    (write_comparison_json if args.json else print_comparison)(comparison, stdout)
    return EXIT_DRIFT if args.fail_on_drift and comparison.drift else EXIT_OK


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """``SIGTERM`` (``dj-observe stop``) ends the job as Ctrl-C does: the hook closes its
    sinks and Ray shuts down, the log and the checkpoints stay resumable."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> int:
    from dj_observe.assets import config_path
    from dj_observe.runner.config import load_config
    from dj_observe.runner.executor import run_job
    from dj_observe.runner.progress import RunProgress
    from dj_observe.snapshot import ProcessingSnapshotAnalyzer
    from dj_observe.snapshot_view import print_snapshot

    config = load_config(config_path(args.config))
    with _sigterm_interrupts(), RunProgress(stderr) as progress:
        result = run_job(
            config, job_id=args.job_id, ray_address=args.ray_address, on_progress=progress.update
        )
    print_snapshot(
        ProcessingSnapshotAnalyzer(result.job_dir, workers=1).generate_snapshot(), stdout
    )
    job_dir = result.job_dir
    print(
        f"\nJob {result.job_id} {result.status}"
        + (" (resumed)" if result.resumed else "")
        + (f"; output: {result.export_path}" if result.export_path else ""),
        file=stdout,
    )
    where = {  # one path or command a line, to copy whole
        "events": job_dir / "events.jsonl",
        "traces": job_dir / "traces.otlp.jsonl",
        "logs": job_dir / "logs",
        "snapshot": f"dj-observe snapshot {job_dir}",
        "metrics": f"dj-observe replay {job_dir}",
        "all jobs": f"dj-observe serve {job_dir.parent}",
    }
    if result.status != "completed":
        where["resume"] = f"dj-observe run {args.config} --job-id {result.job_id}"
    for label, value in where.items():
        print(f"  {label + ':':<10}{value}", file=stdout)
    return EXIT_OK if result.status == "completed" else EXIT_JOB_FAILED


def _demo(args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> int:
    from dj_observe.snapshot import ProcessingSnapshotAnalyzer, write_json
    from dj_observe.synthetic import JobSpec, write_job

    spec = JobSpec(partitions=6, failed_partitions={4: 5}, samples_per_partition=2000)
    job_dir = write_job(args.output, spec)
    print(f"Demo job written to {job_dir}", file=stderr)
    analyzer = ProcessingSnapshotAnalyzer(job_dir)
    snapshot = analyzer.generate_snapshot()
    if args.json:
        stdout.flush()
        write_json(snapshot, getattr(stdout, "buffer", sys.stdout.buffer))
    else:
        from dj_observe.snapshot_view import print_snapshot

        print_snapshot(snapshot, stdout)
        print(f"\nJSON: dj-observe snapshot {job_dir}", file=stdout)
    return EXIT_OK


def _replay(args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> int:
    from opentelemetry.sdk.trace.export import SpanExporter
    from prometheus_client import generate_latest

    from dj_observe.dispatch import HookStats, Sink
    from dj_observe.exposition import PushgatewaySink
    from dj_observe.replay import replay
    from dj_observe.sinks.metrics import MetricsSink
    from dj_observe.sinks.traces import OtlpJsonFileExporter, TraceSink
    from dj_observe.textsafe import visible

    stats = HookStats()
    metrics = MetricsSink(stats=stats)
    sinks: list[Sink] = [metrics]
    exporters: list[SpanExporter] = []
    if args.traces_file:
        exporters.append(OtlpJsonFileExporter(args.traces_file))
    if args.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter(endpoint=args.otlp_endpoint, timeout=args.timeout))
    if exporters:
        sinks.append(TraceSink(exporters, stats=stats, export_timeout_seconds=args.timeout))
    pusher = None
    if args.pushgateway:
        pusher = PushgatewaySink(metrics.registry, args.pushgateway, interval=3600.0, stats=stats)
        sinks.append(pusher)
    try:
        result = replay(args.job_dir, sinks, stats)
    finally:
        for sink in sinks:
            sink.close()
    if not args.pushgateway and not exporters:
        stdout.write(generate_latest(metrics.registry).decode())
    failures = sum(stats.sink_errors.values())
    print(
        f"replayed {result.events} events of job {visible(result.job_id)}"
        f" ({result.stats.skipped_lines} lines skipped); export failures: {failures}",
        file=stderr,
    )
    return EXIT_OK if failures == 0 else EXIT_EXPORT_FAILED


def _serve(args: argparse.Namespace, stderr: IO[str]) -> int:
    from prometheus_client import disable_created_metrics

    from dj_observe.serve import JobsExporter

    # prometheus_client leaves this function unannotated.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    exporter = JobsExporter(args.outputs_dir, retention=args.retention)
    print(
        f"dj-observe serve: following {args.outputs_dir}, metrics at "
        f"http://{args.host}:{args.port}/metrics",
        file=stderr,
    )
    exporter.serve_forever(args.host, args.port, args.interval)
    return EXIT_OK


def _jobs(args: argparse.Namespace, stdout: IO[str]) -> int:
    from dj_observe.jobs import JobListing
    from dj_observe.jobs_view import jobs_json, print_jobs

    utils = JobListing(args.outputs_dir)
    listing = utils.list_running_jobs() if args.running else utils.list_jobs()
    (jobs_json if args.json else print_jobs)(listing, stdout)
    return EXIT_OK


def _stop(args: argparse.Namespace, stdout: IO[str]) -> int:
    from dj_observe.job.common import list_running_jobs
    from dj_observe.job.stopper import JobStopper

    if args.list:
        jobs = list_running_jobs(args.job_dir)
        for job in jobs:
            print(
                f"{job['job_id']}\t{job['status']}\t{job['processes']} live\t{job['work_dir']}",
                file=stdout,
            )
        if not jobs:
            print(f"no jobs under {args.job_dir}", file=stdout)
        return EXIT_OK
    if args.timeout < 0:
        raise CliError("--timeout must not be negative")
    job_dir = Path(args.job_dir)
    if not job_dir.is_dir():
        raise CliError(f"job directory not found: {job_dir}")
    result = JobStopper(job_dir.name, work_dir=str(job_dir)).stop_job(
        force=args.force, timeout=args.timeout
    )
    for proc in result["stopped"]:
        print(f"stopped pid {proc['pid']} ({proc['name']})", file=stdout)
    for proc in result["still_running"]:
        print(f"still running: pid {proc['pid']} ({proc['name']})", file=stdout)
    if result["still_running"]:
        hint = "" if args.force else "; --force kills it"
        print(f"job {result['job_id']} not stopped{hint}", file=stdout)
        return EXIT_NOT_STOPPED
    if not result["stopped"]:
        print(f"job {result['job_id']}: no running process to stop", file=stdout)
    else:
        print(
            f"job {result['job_id']} stopped; resume it from its log and checkpoints", file=stdout
        )
    return EXIT_OK


def _silence_stdout() -> None:
    """The reader went away (``| head``): send what is left to /dev/null, quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _instrument(child: list[str]) -> int:
    """Replace this process with ``child``, Data-Juicer instrumented in its Python processes."""
    from dj_observe.integrations.data_juicer import AUTOLOAD_DIR, ENABLE_VARIABLE

    if child[:1] == ["--"]:
        child = child[1:]
    if not child:
        raise CliError("instrument needs a command, e.g. dj-observe instrument -- dj-process ...")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(AUTOLOAD_DIR), env.get("PYTHONPATH")]))
    env[ENABLE_VARIABLE] = "1"
    try:
        os.execvpe(child[0], child, env)
    except FileNotFoundError as exc:
        raise CliError(f"command not found: {child[0]}") from exc
    return EXIT_OK  # not reached: exec replaced this process


def main(
    argv: Sequence[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the CLI; returns the exit code."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr):
            args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (argparse exits 2)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        if args.command == "snapshot":
            return _snapshot(args, stdout)
        if args.command == "run":
            return _run(args, stdout, stderr)
        if args.command == "demo":
            return _demo(args, stdout, stderr)
        if args.command == "replay":
            return _replay(args, stdout, stderr)
        if args.command == "serve":
            return _serve(args, stderr)
        if args.command == "report":
            from dj_observe.report import write_report

            if args.max_partitions < 1:
                raise CliError("--max-partitions must be at least 1")
            comparison = (
                _comparison(args.job_dir, None, args.baseline, args.last, None, args.duration_floor)
                if args.baseline
                else None
            )
            path = write_report(
                args.job_dir,
                args.output,
                max_partitions=args.max_partitions,
                comparison=comparison,
            )
            print(f"report written to {path}", file=stderr)
            return EXIT_OK
        if args.command == "diff":
            return _diff(args, stdout)
        if args.command == "watch":
            from dj_observe.watch import watch

            if args.interval <= 0:
                raise CliError("--interval must be positive")
            return watch(
                args.job_dir,
                stdout,
                interval=args.interval,
                exit_on_end=args.exit_on_end,
                stale_after=args.stale_after,
            )
        if args.command == "assets":
            return _assets_export(args, stdout)
        if args.command == "instrument":
            return _instrument(args.child)
        if args.command == "stop":
            return _stop(args, stdout)
        return _jobs(args, stdout)
    except KeyboardInterrupt:
        print("dj-observe: interrupted", file=stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        return _failed(exc, args.debug, stderr)


_USER_ERRORS = (
    ("dj_observe.tracker", "JobDirectoryError"),
    ("dj_observe.config", "ConfigError"),
    ("dj_observe.assets", "AssetsError"),
)
"""Errors the user can fix besides :class:`CliError`, by module (imported by the commands
that use them: only a module that was loaded can have raised its error)."""


def _is_user_error(exc: Exception) -> bool:
    return isinstance(exc, CliError) or any(
        isinstance(exc, getattr(sys.modules[module], name))
        for module, name in _USER_ERRORS
        if module in sys.modules
    )


def _failed(exc: Exception, debug: bool, stderr: IO[str]) -> int:
    """Report a command's failure as one line; returns the exit code."""
    if _is_user_error(exc):
        print(f"dj-observe: error: {exc}", file=stderr)
        return EXIT_BAD_INPUT
    if isinstance(exc, BrokenPipeError):
        _silence_stdout()
        return EXIT_OK
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        print(f"dj-observe: error: {exc.strerror or exc}{where}", file=stderr)
        return EXIT_BAD_INPUT
    # a defect: one line, the traceback only on request
    if debug or os.environ.get(DEBUG_VARIABLE, "0") not in ("", "0"):
        import traceback

        traceback.print_exception(exc, file=stderr)
    print(
        f"dj-observe: unexpected error ({type(exc).__name__}: {exc}); "
        f"--debug or {DEBUG_VARIABLE}=1 shows the traceback",
        file=stderr,
    )
    return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
