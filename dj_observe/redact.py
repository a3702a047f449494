"""Redaction of secrets before an event reaches the log, spans or logs.

A processor in the structlog sense: a plain callable that takes the event's
fields and returns them with every value under a secret-looking key replaced,
in nested dicts and lists too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["DEFAULT_SECRET_KEYS", "REDACTED", "Redactor"]

DEFAULT_SECRET_KEYS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "credential",
    "private_key",
)
REDACTED = "***"
_MAX_REMEMBERED_KEYS = 4096
_SCALARS = frozenset({str, int, float, bool, type(None)})


class Redactor:
    """Replaces the values of keys that contain any of ``keys`` (case-insensitive)."""

    def __init__(self, keys: Iterable[str] = DEFAULT_SECRET_KEYS) -> None:
        keys = [key for key in keys if key]
        self.pattern = (
            re.compile("|".join(re.escape(key) for key in keys), re.IGNORECASE) if keys else None
        )
        self._verdicts: dict[str, bool] = {}

    def is_secret(self, key: object) -> bool:
        if self.pattern is None or not isinstance(key, str):
            return False
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = bool(self.pattern.search(key))
            if len(self._verdicts) < _MAX_REMEMBERED_KEYS:
                self._verdicts[key] = verdict
        return verdict

    def __call__(self, fields: dict[str, Any]) -> dict[str, Any]:
        return self._scrub(fields) if self.pattern is not None else fields

    def _scrub(self, value: Any) -> Any:
        """``value`` with secrets replaced; the very same object when it holds none."""
        if type(value) in _SCALARS:
            return value
        if isinstance(value, dict):
            changed = False
            scrubbed = {}
            verdicts = self._verdicts
            for key, item in value.items():
                secret = verdicts.get(key) if type(key) is str else None
                if secret is None:
                    secret = self.is_secret(key)
                if secret and item is not None:
                    new = REDACTED
                elif type(item) in _SCALARS:
                    new = item  # the common case, without a call
                else:
                    new = self._scrub(item)
                changed = changed or new is not item
                scrubbed[key] = new
            return scrubbed if changed else value
        if isinstance(value, (list, tuple)):
            items = [self._scrub(item) for item in value]
            if any(new is not old for new, old in zip(items, value, strict=False)):
                return items
            return value
        return value
