"""Shared by the benchmarks: the machine they ran on, and their sections of RESULTS.md.

Each benchmark owns one section of ``benchmarks/RESULTS.md``, between
``<!-- NAME -->`` and ``<!-- /NAME -->``; :func:`write_section` replaces it and
leaves the other benchmarks' sections as they are.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
TITLE = "# Benchmark results"


def machine_info() -> dict[str, str]:
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    cpu = platform.processor() or platform.machine()
    ram = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    system = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                system = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.platform()})"
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "CPU": cpu,
        "Cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "RAM": ram or "unknown",
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "OS": system,
        "Packages": f"dj-observe {version('dj-observe')}, msgspec {version('msgspec')}, "
        f"orjson {version('orjson')}",
        "Code": _git_revision(),
    }


def _git_revision() -> str:
    root = HERE.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "dj_observe"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    sources = sorted((root / "dj_observe").rglob("*.py"))
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    state = " + uncommitted changes in dj_observe/" if dirty else ""
    return f"git {head}{state}; sha256 of dj_observe/**/*.py: {digest.hexdigest()[:12]}"


def write_section(path: Path, name: str, lines: list[str]) -> None:
    """Replace the ``name`` section of the results file (appending it if new)."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = "\n".join([start, *lines, end])
    text = path.read_text() if path.exists() else TITLE + "\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text.rstrip() + "\n")
