"""The files dj-observe ships beside its code, and ``dj-observe assets export``.

The Grafana dashboards with their provisioning, the Prometheus rules with their promtool
tests, ``prometheus.yml`` and ``alertmanager.yml``, the compose file and the demo job
configs.  Git holds one copy, at the top of the repository, where ``docker-compose.yml``
mounts them; a built wheel carries the same files under ``dj_observe/_assets/`` (``setup.py``
copies them at build time).  This module uses the standard library only: ``setup.py`` loads
it to know what to copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = [
    "ASSET_PATHS",
    "BUNDLED_DIR",
    "AssetsError",
    "asset_files",
    "assets_root",
    "config_path",
    "export",
]

ASSET_PATHS = ("docker-compose.yml", "prometheus", "grafana", "configs")
"""What is shipped, relative to the repository (files, or directories taken whole)."""

BUNDLED_DIR = "_assets"
"""Where a wheel keeps them, inside the ``dj_observe`` package."""


class AssetsError(Exception):
    """The assets cannot be found or exported; the message is one line for the user."""


def asset_files(root: Path) -> list[str]:
    """Every asset file under ``root`` (a checkout or the bundled copy), as sorted relative
    POSIX paths.  Whatever exists is taken: a missing entry of :data:`ASSET_PATHS` is skipped."""
    found: list[str] = []
    for entry in ASSET_PATHS:
        path = root / entry
        if path.is_file():
            found.append(entry)
        elif path.is_dir():
            found.extend(
                file.relative_to(root).as_posix()
                for file in path.rglob("*")
                if file.is_file()
                and not any(part.startswith((".", "__")) for part in file.relative_to(root).parts)
            )
    return sorted(found)


def assets_root() -> Path:
    """The bundled copy when installed from a wheel, else the source checkout's top."""
    package = Path(__file__).resolve().parent
    for root in (package / BUNDLED_DIR, package.parent):
        if (root / "prometheus").is_dir():
            return root
    raise AssetsError(f"no bundled assets in {package} (a build without them?)")


def config_path(name_or_path: str) -> str:
    """A job config: the path itself when it names a file, else the bundled config of that name
    (``demo`` is ``configs/demo.yaml``)."""
    if Path(name_or_path).exists() or "/" in name_or_path or name_or_path.endswith(".yaml"):
        return name_or_path
    try:
        bundled = assets_root() / "configs" / f"{name_or_path}.yaml"
    except AssetsError:
        return name_or_path
    return str(bundled) if bundled.is_file() else name_or_path


def export(target: Path, *, force: bool = False) -> list[Path]:
    """Copy every asset under ``target`` in the repository's layout; the files written.

    Nothing is written when a file exists already, unless ``force``.
    """
    root = assets_root()
    names = asset_files(root)
    if target.exists() and not target.is_dir():
        raise AssetsError(f"{target} exists and is not a directory")
    existing = [name for name in names if (target / name).exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise AssetsError(f"{target / existing[0]} exists{more}; --force overwrites")
    written = []
    for name in names:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / name, destination)
        written.append(destination)
    return written
