"""Build hook: the wheel carries the dashboards, rules, configs and compose file.

Git keeps them once, at the top of the repository (``docker-compose.yml`` mounts
``./prometheus`` and ``./grafana``); building copies them into the package as
``dj_observe/_assets/`` (the list is ``dj_observe.assets.ASSET_PATHS``).  Everything else is
in ``pyproject.toml``.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _assets_module():
    """``dj_observe/assets.py`` alone (standard library only), without importing the package."""
    spec = importlib.util.spec_from_file_location(
        "_dj_observe_assets", HERE / "dj_observe" / "assets.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithAssets(build_py):
    """``build_py``, then the assets copied into the built package (not for editable installs,
    which use the checkout's own files)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        assets = _assets_module()
        target = Path(self.build_lib) / "dj_observe" / assets.BUNDLED_DIR
        shutil.rmtree(target, ignore_errors=True)  # no stale file from an earlier build
        for name in assets.asset_files(HERE):
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HERE / name, destination)


setup(cmdclass={"build_py": BuildPyWithAssets})
