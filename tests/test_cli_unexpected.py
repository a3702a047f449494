"""An unexpected error inside a command is one line and exit 1; the traceback on request."""

from __future__ import annotations

from io import StringIO

import pytest

from dj_observe import cli
from dj_observe.snapshot import ProcessingSnapshotAnalyzer


@pytest.fixture
def broken_snapshot(monkeypatch, make_job):
    def explode(self):
        raise RuntimeError("the fold broke")

    monkeypatch.setattr(ProcessingSnapshotAnalyzer, "generate_snapshot", explode)
    return make_job(partitions=1)


def _run(*argv: str) -> tuple[int, str]:
    err = StringIO()
    code = cli.main(list(argv), stdout=StringIO(), stderr=err)
    return code, err.getvalue()


def test_an_unexpected_error_is_one_line_and_exit_1(broken_snapshot, monkeypatch):
    monkeypatch.delenv(cli.DEBUG_VARIABLE, raising=False)
    code, err = _run("snapshot", str(broken_snapshot))
    assert code == cli.EXIT_UNEXPECTED
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "RuntimeError: the fold broke" in err


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_shows_the_traceback(broken_snapshot, monkeypatch, how):
    argv = ["snapshot", str(broken_snapshot)]
    if how == "flag":
        argv.insert(0, "--debug")
    else:
        monkeypatch.setenv(cli.DEBUG_VARIABLE, "1")
    code, err = _run(*argv)
    assert code == cli.EXIT_UNEXPECTED
    assert "Traceback" in err and "the fold broke" in err
