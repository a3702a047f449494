"""Redaction of secrets before an event reaches the log, spans or logs.

A processor in the structlog sense: a plain callable that takes the event's
fields and returns them with every value under a secret-looking key replaced,
in nested dicts and lists too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from dj_observe.events import FIELD_ORDER

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
        self._safe: set[str] = set()  # keys known not to be secret
        # Whether no field name of Data-Juicer's looks secret (true unless so configured).
        self._names_safe = not any(map(self.is_secret, FIELD_ORDER))

    def is_secret(self, key: object) -> bool:
        if self.pattern is None or not isinstance(key, str):
            return False
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = bool(self.pattern.search(key))
            if len(self._verdicts) < _MAX_REMEMBERED_KEYS:
                self._verdicts[key] = verdict
                if not verdict:
                    self._safe.add(key)
        return verdict

    def plain(self, *nested: dict[str, Any] | None) -> bool:
        """Whether an event whose fields are all Data-Juicer's (typed scalars but for the
        dicts ``nested``) surely holds no secret: the dicts are flat, with known safe keys."""
        if self.pattern is None:
            return True
        if not self._names_safe:
            return False
        return all(value is None or self._flat_and_safe(value) for value in nested)

    def _flat_and_safe(self, value: dict[str, Any]) -> bool:
        """Whether the dict's keys are all known safe and its values all scalars (in C)."""
        return self._safe.issuperset(value) and _SCALARS.issuperset(map(type, value.values()))

    def __call__(self, fields: dict[str, Any]) -> dict[str, Any]:
        return self._scrub(fields) if self.pattern is not None else fields

    def _scrub(self, value: Any) -> Any:
        """``value`` with secrets replaced; the very same object when it holds none."""
        if type(value) in _SCALARS:
            return value
        if type(value) is dict and self._safe.issuperset(value):  # the common case, in C
            if _SCALARS.issuperset(map(type, value.values())):
                return value
            nested = {
                key: new
                for key, item in value.items()
                if type(item) not in _SCALARS and (new := self._scrub(item)) is not item
            }
            return {**value, **nested} if nested else value
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
