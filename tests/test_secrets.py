"""Secrets in any spelling, inside URLs, argv pairs and messages never reach what dj-observe writes.

Every secret below is emitted through the hook's public API; the test then reads every
file the job directory holds (event log, spans), the snapshot JSON and the HTML report.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from support import read_events

from dj_observe.cli import main
from dj_observe.hook import ObservabilityHook
from dj_observe.redact import REDACTED, Redactor, redact_yaml

SECRET = "hunter2-s3cr3t"
LOGGED = {"tracing": {"exporter": "file"}, "background": False}

SPELLINGS = [
    "password",
    "API_KEY",
    "apiKey",
    "api-key",
    "x-api-key",
    "X-Api-Key",
    "private-key",
    "accessKey",
    "AWS_SECRET_ACCESS_KEY",
    "hf_token",
    "pwd",
    "passphrase",
    "Authorization",
    "auth",
    "basic_auth",
    "cookie",
    "Set-Cookie",
    "session_key",
    "sessionKey",
]
URL_FIELDS = {
    "dataset_path": f"s3://AKIAEXAMPLE:{SECRET}/x@bucket/data/*.parquet",
    "dsn": f"postgresql://etl:{SECRET}@db.internal:5432/jobs",
    "db_url": f"mysql://root:{SECRET}@127.0.0.1/x",
    "endpoint": f"https://user:{SECRET}@llm.internal/v1",
}


def everything_written(job_dir: Path, tmp_path: Path) -> str:
    """The job directory's files, its snapshot JSON and its report, as one text."""
    out, err = io.StringIO(), io.StringIO()
    assert main(["snapshot", str(job_dir)], stdout=out, stderr=err) == 0, err.getvalue()
    report = tmp_path / "report.html"
    assert main(["report", str(job_dir), "-o", str(report)], stdout=out, stderr=err) == 0
    files = [
        path.read_text(errors="replace")
        for path in job_dir.rglob("*")
        if path.is_file() and path.suffix != ".parquet"  # the job's data is the job's
    ]
    return "\n".join([*files, out.getvalue(), report.read_text()])


def emit_job(job_dir: Path, **fields) -> None:
    """A short job whose failing op carries ``fields`` (through ``emit``, any field)."""
    with ObservabilityHook(LOGGED, work_dir=job_dir, job_id="job1") as hook:
        hook.job_start(total_partitions=1)
        hook.partition_start(0)
        hook.op_start(0, "llm_mapper", 0)
        hook.emit(
            "op_failed",
            partition_id=0,
            operation_name="llm_mapper",
            operation_idx=0,
            status="failed",
            **fields,
        )
        hook.partition_failed(0, fields.get("error_message", "failed"))
        hook.job_failed(fields.get("error_message", "failed"))


@pytest.mark.parametrize("key", SPELLINGS)
def test_every_spelling_of_a_secret_key_is_redacted(job_dir, tmp_path, key):
    emit_job(job_dir, metadata={key: SECRET, "lang": "en"}, op_args={key: SECRET})
    [failed] = [event for event in read_events(job_dir) if event["event_type"] == "op_failed"]
    assert failed["metadata"] == {key: REDACTED, "lang": "en"}
    assert failed["op_args"] == {key: REDACTED}
    assert SECRET not in everything_written(job_dir, tmp_path)


@pytest.mark.parametrize("key", ["author", "text_key", "keyword", "partition_key"])
def test_keys_that_merely_resemble_a_secret_word_are_kept(job_dir, key):
    emit_job(job_dir, metadata={key: "value"})
    [failed] = [event for event in read_events(job_dir) if event["event_type"] == "op_failed"]
    assert failed["metadata"] == {key: "value"}


@pytest.mark.parametrize("key", sorted(URL_FIELDS))
def test_credentials_inside_a_url_are_redacted_in_any_string(job_dir, tmp_path, key):
    url = URL_FIELDS[key]
    emit_job(
        job_dir,
        config={key: url, "nested": [{"op": {key: url}}]},
        op_args={key: url},
        checkpoint_path=url,
        **{key: url},
    )
    [failed] = [event for event in read_events(job_dir) if event["event_type"] == "op_failed"]
    assert failed["op_args"][key].startswith(url.split("://")[0] + f"://{REDACTED}@")
    assert SECRET not in everything_written(job_dir, tmp_path)


def test_a_secret_after_a_flag_in_an_argument_list_is_redacted(job_dir, tmp_path):
    argv = ["dj-process", "--config", "c.yaml", "--password", SECRET, f"--token={SECRET}", "-v"]
    emit_job(job_dir, config={"argv": argv}, metadata={"command": argv})
    [failed] = [event for event in read_events(job_dir) if event["event_type"] == "op_failed"]
    assert failed["config"]["argv"] == [
        "dj-process",
        "--config",
        "c.yaml",
        "--password",
        REDACTED,
        f"--token={REDACTED}",
        "-v",
    ]
    assert SECRET not in everything_written(job_dir, tmp_path)


@pytest.mark.parametrize("field", ["error_message", "message", "stack_trace"])
@pytest.mark.parametrize(
    "text",
    [
        f"connect failed: postgresql://etl:{SECRET}@db/x refused",
        f"bad login password={SECRET} for etl",
        f"request with api_key: '{SECRET}' was rejected",
        f'payload {{"secret": "{SECRET}"}} invalid',
        f"401 with Authorization: Bearer {SECRET}",
        f"AWS_SECRET_ACCESS_KEY={SECRET} is expired",
    ],
)
def test_secrets_in_messages_and_stack_traces_are_redacted(job_dir, tmp_path, field, text):
    emit_job(job_dir, **{field: text})
    assert SECRET not in everything_written(job_dir, tmp_path)
    assert any(REDACTED in json.dumps(event) for event in read_events(job_dir))


def test_an_authorization_header_in_a_headers_dict_is_redacted(job_dir, tmp_path):
    emit_job(job_dir, op_args={"headers": {"Authorization": f"Bearer {SECRET}", "Accept": "*/*"}})
    [failed] = [event for event in read_events(job_dir) if event["event_type"] == "op_failed"]
    assert failed["op_args"]["headers"] == {"Authorization": REDACTED, "Accept": "*/*"}
    assert SECRET not in everything_written(job_dir, tmp_path)


def test_the_usual_event_stays_as_it_was(job_dir):
    """Messages with nothing a credential could hide behind are written untouched."""
    with ObservabilityHook(LOGGED, work_dir=job_dir, job_id="job1") as hook:
        hook.op_complete(0, "a", 0, duration=0.1, metadata={"path": "/data/x.parquet"})
        hook.job_failed("worker lost: node 3 at 12:30, see user@example.com")
    events = read_events(job_dir)
    assert events[0]["message"] == "Operation a (idx 0) completed on partition 0"
    assert events[0]["metadata"] == {"path": "/data/x.parquet"}
    assert events[1]["error_message"] == "worker lost: node 3 at 12:30, see user@example.com"


def test_a_yaml_config_is_copied_as_written_without_secrets_and_redacted_with_them():
    redact = Redactor()
    plain = "# the demo\nproject_name: demo   # a comment\nnp: 2\n"
    assert redact_yaml(plain, redact) == plain
    secret = f"project_name: demo\nstorage:\n  access_key: {SECRET}\n  tokens:\n    - {SECRET}\n"
    redacted = redact_yaml(secret, redact)
    assert SECRET not in redacted
    assert "project_name: demo" in redacted
    broken = f"project_name: [demo\npassword: {SECRET}\nurl: s3://k:{SECRET}@b/\n"
    assert SECRET not in redact_yaml(broken, redact)


def test_a_redactor_without_keys_redacts_nothing():
    text = f"password={SECRET} s3://k:{SECRET}@b"
    assert Redactor([])({"message": text, "argv": ["--password", SECRET]}) == {
        "message": text,
        "argv": ["--password", SECRET],
    }


def test_a_comment_holding_a_secret_is_redacted_in_the_copied_config():
    text = f"project_name: demo\n# the old one: password={SECRET}\nnp: 2\n"
    redacted = redact_yaml(text, Redactor())
    assert SECRET not in redacted and "project_name: demo\n" in redacted


@pytest.mark.timeout(240)
def test_the_reference_executor_writes_no_secret_to_the_job_directory(tmp_path, ray_runtime):
    """The config copied into the job directory, the DAG plan's op arguments, the events."""
    config = tmp_path / "job.yaml"
    config.write_text(
        "project_name: secrets\n"
        "dataset_path: demo://400\n"
        f"export_path: {tmp_path / 'result.parquet'}\n"
        f"work_dir: {tmp_path / 'jobs'}\n"
        "partition: {size: 200}\n"
        f"# pushed with token={SECRET}\n"
        "observability:\n"
        "  metrics:\n"
        f"    pushgateway: http://pusher:{SECRET}@127.0.0.1:9\n"
        "process:\n"
        f"  - clean_links_mapper: {{repl: 'https://user:{SECRET}@links.example'}}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert main(["run", str(config), "--job-id", "s1"], stdout=out, stderr=err) == 0, err.getvalue()
    job_dir = tmp_path / "jobs" / "s1"
    assert (job_dir / "job.yaml").is_file() and (job_dir / "dag_execution_plan.json").is_file()
    plan = json.loads((job_dir / "dag_execution_plan.json").read_text())
    [node] = plan["nodes"].values()
    assert node["config"]["repl"] == f"https://{REDACTED}@links.example"
    assert SECRET not in everything_written(job_dir, tmp_path)
    assert SECRET not in out.getvalue() + err.getvalue()
