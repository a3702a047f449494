"""Instrument Data-Juicer in every Python process started with this directory on ``PYTHONPATH``.

``dj-observe instrument -- COMMAND`` puts it there and sets ``DJ_OBSERVE_DATA_JUICER=1``.
Only the standard library is imported here: Data-Juicer's event-logging module
is patched when it is first imported, so processes that never use Data-Juicer
(Ray workers among them) pay next to nothing.  A ``sitecustomize`` further down
the path still runs.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

# Also in dj_observe.integrations.data_juicer (kept in step by the tests).
MODULE = "data_juicer.core.executor.event_logging_mixin"
ENABLE_VARIABLE = "DJ_OBSERVE_DATA_JUICER"


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of the event-logging module so that
    the module is patched right after it runs."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname != MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader)
        return spec


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        from dj_observe.integrations.data_juicer import patch

        patch(module)


def _run_next_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ours = sys.modules.pop("sitecustomize", None)
    saved = sys.path[:]
    try:
        sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
        importlib.import_module("sitecustomize")
    except ImportError:
        pass
    finally:
        sys.path[:] = saved
        if ours is not None:  # the import system expects to find the module it is running
            sys.modules["sitecustomize"] = ours


if os.environ.get(ENABLE_VARIABLE) == "1":
    sys.meta_path.insert(0, _PatchOnImport())
_run_next_sitecustomize()
