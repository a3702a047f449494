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


class Redactor:
    """Replaces the values of keys that contain any of ``keys`` (case-insensitive)."""

    def __init__(self, keys: Iterable[str] = DEFAULT_SECRET_KEYS) -> None:
        keys = [key for key in keys if key]
        self.pattern = (
            re.compile("|".join(re.escape(key) for key in keys), re.IGNORECASE) if keys else None
        )

    def is_secret(self, key: object) -> bool:
        return self.pattern is not None and isinstance(key, str) and bool(self.pattern.search(key))

    def __call__(self, fields: dict[str, Any]) -> dict[str, Any]:
        return self._scrub(fields) if self.pattern is not None else fields

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: REDACTED if self.is_secret(key) and item is not None else self._scrub(item)
                for key, item in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self._scrub(item) for item in value]
        return value
