"""The package imports its modules on first use: the public API is unchanged, and a poll
of a stored fold loads only the machinery it runs."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest
from support import append_log, ev, write_log

import dj_observe

PUBLIC = {
    "Event": "events",
    "EventLogReader": "eventlog",
    "EventType": "events",
    "JobDirectoryError": "tracker",
    "JobSnapshot": "snapshot",
    "JobState": "state",
    "JobTracker": "tracker",
    "OperationStatus": "snapshot",
    "PartitionStatus": "snapshot",
    "ProcessingSnapshotAnalyzer": "snapshot",
    "ProcessingStatus": "snapshot",
    "ReadStats": "eventlog",
    "Status": "state",
    "create_snapshot": "snapshot",
    "find_event_logs": "eventlog",
    "parse_line": "events",
}


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_name_is_its_module_s_object(name):
    module = importlib.import_module(f"dj_observe.{PUBLIC[name]}")
    assert getattr(dj_observe, name) is getattr(module, name)
    assert name in dir(dj_observe)


def test_all_lists_the_public_names_and_star_import_binds_them():
    assert sorted(dj_observe.__all__) == sorted([*PUBLIC, "__version__"])
    namespace: dict[str, object] = {}
    exec("from dj_observe import *", namespace)
    assert {name for name in namespace if name != "__builtins__"} == set(dj_observe.__all__)


JOB_PUBLIC = {
    "JobSnapshot": "snapshot",
    "JobUtils": "common",
    "OperationStatus": "snapshot",
    "PartitionStatus": "snapshot",
    "ProcessingSnapshotAnalyzer": "snapshot",
    "ProcessingStatus": "snapshot",
    "create_snapshot": "snapshot",
    "list_running_jobs": "common",
}


@pytest.mark.parametrize("name", sorted(JOB_PUBLIC))
def test_the_job_drop_in_s_names_are_its_modules_objects(name):
    import dj_observe.job

    module = importlib.import_module(f"dj_observe.job.{JOB_PUBLIC[name]}")
    assert getattr(dj_observe.job, name) is getattr(module, name)
    assert sorted(dj_observe.job.__all__) == sorted(JOB_PUBLIC)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        dj_observe.NoSuchThing  # noqa: B018
    with pytest.raises(ImportError):
        exec("from dj_observe import NoSuchThing", {})


def test_importing_the_package_loads_none_of_its_modules():
    loaded = _loaded_after("import dj_observe; dj_observe.__version__")
    assert {name for name in loaded if name.startswith("dj_observe.")} == {"dj_observe.lazy"}
    loaded = _loaded_after("import dj_observe.job")
    assert not {name for name in loaded if name.startswith("dj_observe.job.")}


def test_a_public_name_loads_only_its_own_modules():
    loaded = _loaded_after("from dj_observe import parse_line")
    assert "dj_observe.events" in loaded
    assert "dj_observe.snapshot" not in loaded and "dj_observe.state" not in loaded


def test_a_summary_poll_of_a_stored_fold_loads_only_what_it_runs(job_dir):
    """No process pool (nothing to fold in parallel), no YAML (no ``cli.yaml``), no
    temporary files (the document goes to stdout), no other command's modules."""
    write_log(
        job_dir,
        [
            ev("job_start", 1.0, job_id="j"),
            ev("partition_start", 2.0, partition_id=0),
            ev("op_start", 3.0, partition_id=0, operation_idx=0, operation_name="op0"),
        ],
    )
    poll = (
        "from dj_observe.cli import main\n"
        f"assert main(['snapshot', {str(job_dir)!r}, '--summary']) == 0"
    )
    _loaded_after(poll)  # stores the fold
    append_log(
        job_dir,
        [ev("op_complete", 4.0, partition_id=0, operation_idx=0, operation_name="op0")],
    )
    loaded = _loaded_after(poll)
    assert "dj_observe.foldcache" in loaded  # the persisted fold's path
    unused = {
        "multiprocessing",
        "concurrent.futures",
        "yaml",
        "tempfile",
        "hashlib",
        "dj_observe.assets",
        "dj_observe.config",
        "dj_observe.diff",
        "dj_observe.report",
        "dj_observe.snapshot_view",
    }
    assert loaded & unused == set()
