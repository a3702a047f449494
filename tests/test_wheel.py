"""dj-observe the way a user installs it: a built wheel in a fresh venv, no repository file.

The wheel is built from a copy of the sources (``pip wheel --no-deps``), installed (not
editable) into a new venv that borrows the test venv's dependencies (a ``.pth`` line), and
used from outside the checkout: ``assets export`` checked with promtool, amtool and
docker-compose, and the bundled demo run by name under Ray.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from support import binary, progress_lines

from dj_observe.assets import ASSET_PATHS, asset_files

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "dj_observe", *ASSET_PATHS)


def _check(*argv: str | Path, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, timeout=timeout, **kwargs
    )
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A venv with dj-observe installed from its wheel; its directory."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "_assets")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        elif (ROOT / name).exists():
            source.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, source / name)
    _check(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", work / "dist", source)
    (wheel,) = (work / "dist").glob("dj_observe-*.whl")
    venv = work / "venv"
    _check(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = _check(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    # The dependencies (Ray, pyarrow, ...) from this venv, after the venv's own packages.
    Path(site.stdout.strip(), "dependencies.pth").write_text(sysconfig.get_paths()["purelib"])
    _check(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    return venv


def test_the_installed_package_comes_from_the_wheel(wheel_venv, tmp_path):
    where = _check(
        wheel_venv / "bin" / "python",
        "-c",
        "import dj_observe; print(dj_observe.__file__)",
        cwd=tmp_path,  # not the checkout, which python -c would put first on the path
    )
    assert Path(where.stdout.strip()).is_relative_to(wheel_venv), where.stdout


def test_assets_export_writes_every_asset_that_promtool_and_amtool_accept(wheel_venv, tmp_path):
    target = tmp_path / "stack"
    done = _check(wheel_venv / "bin" / "dj-observe", "assets", "export", target, cwd=tmp_path)
    assert done.stdout.startswith(f"{len(asset_files(ROOT))} files written under {target}:")
    assert asset_files(target) == asset_files(ROOT)
    for name in asset_files(ROOT):
        assert (target / name).read_bytes() == (ROOT / name).read_bytes(), name
    assert {"grafana/provisioning/dashboards/dashboards.yml", "prometheus/rules/alerts.yml"} <= set(
        asset_files(target)
    )
    promtool = binary("promtool")
    tests = sorted(str(path) for path in (target / "prometheus" / "tests").glob("*.yml"))
    assert tests
    _check(promtool, "test", "rules", *tests, cwd=target)
    _check(promtool, "check", "config", target / "prometheus" / "prometheus.yml")
    if (target / "prometheus" / "alertmanager.yml").exists():
        _check(binary("amtool"), "check-config", target / "prometheus" / "alertmanager.yml")
    _check(binary("docker-compose"), "config", "-q", cwd=target)


def test_assets_export_refuses_to_overwrite_without_force(wheel_venv, tmp_path):
    script = wheel_venv / "bin" / "dj-observe"
    _check(script, "assets", "export", tmp_path, cwd=tmp_path)
    (tmp_path / "prometheus" / "prometheus.yml").write_text("mine\n")
    again = subprocess.run(
        [script, "assets", "export", tmp_path],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and again.stderr.startswith("dj-observe: error: ")
    assert "--force" in again.stderr and "Traceback" not in again.stderr
    assert (tmp_path / "prometheus" / "prometheus.yml").read_text() == "mine\n"
    _check(script, "assets", "export", tmp_path, "--force", cwd=tmp_path)
    assert (tmp_path / "prometheus" / "prometheus.yml").read_bytes() == (
        ROOT / "prometheus" / "prometheus.yml"
    ).read_bytes()


def test_the_bundled_demo_runs_by_name_quietly(wheel_venv, tmp_path):
    """``dj-observe run demo`` from an empty directory, no RAY_* variable: a newcomer's run."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env["HOME"] = str(tmp_path / "home")
    done = _check(wheel_venv / "bin" / "dj-observe", "run", "demo", cwd=tmp_path, env=env)
    assert "completed; output: outputs/demo/result.jsonl" in done.stdout
    assert (tmp_path / "outputs" / "demo" / "result.jsonl").stat().st_size > 0
    assert progress_lines(done.stderr)[-1] == "partitions 8/8 (none failed), op runs 64/64"
    assert "authentication" not in done.stderr.lower() and "RAY_AUTH_MODE" not in done.stderr
    assert "Traceback" not in done.stderr
