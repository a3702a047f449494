"""Redaction of secrets before an event reaches the log, spans or logs.

A processor in the structlog sense: a plain callable that takes the event's
fields and returns them with secrets replaced, in nested dicts and lists too:

* the value of every key that looks secret, whatever its spelling: the key is
  compared case-insensitively with ``-``, ``_``, spaces and camelCase humps ignored
  (``x-api-key``, ``apiKey`` and ``API_KEY`` all contain ``apikey``), and a few
  short words (``auth``, ``pwd``) count when they are a whole word of the key;
* in every string: the credentials of a URL (``s3://KEY:SECRET@bucket`` becomes
  ``s3://***@bucket``), ``Bearer``/``Basic`` credentials, and ``key=value`` or
  ``key: value`` pairs whose key looks secret (``password=x`` in an error message);
* in a list of command-line arguments, the argument after a secret-looking flag
  (``["--password", "x"]``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from dj_observe.events import FIELD_ORDER

__all__ = [
    "DEFAULT_SECRET_KEYS",
    "DEFAULT_SECRET_WORDS",
    "MAX_DEPTH",
    "REDACTED",
    "Redactor",
    "redact_yaml",
]

DEFAULT_SECRET_KEYS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "credential",
    "private_key",
    "session_key",
    "authorization",
    "cookie",
)
"""Parts of a key that make its value secret (in any spelling: see :func:`normal_key`)."""
DEFAULT_SECRET_WORDS = ("auth", "oauth", "pwd")
"""Short names that make a key secret only as a whole word of it (``auth``, ``basic_auth``,
``authUser``; not ``author``)."""
REDACTED = "***"
MAX_DEPTH = 64
"""Nesting walked for secrets; anything deeper is replaced whole (it cannot be checked)."""
_MAX_REMEMBERED_KEYS = 4096
_SCALARS = frozenset({str, int, float, bool, type(None)})
_NUMBERS = frozenset({int, float, bool, type(None)})
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
# The user-info of a URL; a "/" is allowed in it (cloud secrets hold them), at the cost
# of also hiding a path's part before an "@".
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]{0,30}://)[^\s@'\"<>]{1,512}@")
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{4,}", re.I)
_FLAG = re.compile(r"^--?[A-Za-z][\w.-]*$")


def _may_hide_credentials(text: str) -> bool:
    """Whether ``text`` is worth searching: it has one of ``@``, ``:``, ``=`` (a URL's
    user-info, a ``key: value``, a ``key=value``; a bare ``Bearer x`` is not searched)."""
    return "@" in text or ":" in text or "=" in text


def _texts_plain(values: Iterable[Any]) -> bool:
    """Whether none of the strings among ``values`` may hide a credential."""
    return not _may_hide_credentials("".join([item for item in values if type(item) is str]))


def normal_key(key: str) -> str:
    """``key`` lower-cased with everything but letters and digits removed (``x-api-key``,
    ``apiKey``, ``API_KEY`` -> ``xapikey``, ``apikey``, ``apikey``)."""
    return _NOT_ALNUM.sub("", key.lower())


def _key_words(key: str) -> set[str]:
    return {word.lower() for word in _WORDS.findall(key)}


def _spelled_anyhow(part: str) -> str:
    """A regex for ``part`` in text, with ``-``, ``_`` or nothing between its letters'
    words (``api_key`` matches ``api-key``, ``apikey``, ``API_KEY``)."""
    words = [re.escape(word) for word in re.split(r"[^A-Za-z0-9]+", part) if word]
    return r"[-_ ]?".join(words)


class Redactor:
    """Replaces secrets: values of secret-looking keys, credentials inside strings."""

    def __init__(
        self,
        keys: Iterable[str] = DEFAULT_SECRET_KEYS,
        words: Iterable[str] = DEFAULT_SECRET_WORDS,
    ) -> None:
        keys = [key for key in keys if normal_key(key)]
        self.enabled = bool(keys)
        self.words = frozenset(normal_key(word) for word in words) if keys else frozenset()
        parts = sorted({normal_key(key) for key in keys}, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, parts))) if parts else None
        names = [_spelled_anyhow(key) for key in keys] + [
            rf"\b{re.escape(word)}(?![a-z])" for word in sorted(self.words)
        ]
        self._pair = (
            re.compile(
                rf"(?P<key>(?:{'|'.join(names)})[\w.-]{{0,64}}?)"
                r"(?P<sep>[\"']?\s{0,8}[:=]\s{0,8})"
                r"(?P<value>\"[^\"\n]{0,1024}\"?|'[^'\n]{0,1024}'?|[^\s,;&'\"}\]]+)",
                re.IGNORECASE,
            )
            if names
            else None
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
            verdict = bool(self.pattern.search(normal_key(key))) or not self.words.isdisjoint(
                _key_words(key)
            )
            if len(self._verdicts) < _MAX_REMEMBERED_KEYS:
                self._verdicts[key] = verdict
                if not verdict:
                    self._safe.add(key)
        return verdict

    def text(self, value: str) -> str:
        """``value`` with the credentials inside it replaced (the same object if none)."""
        if not self.enabled or not _may_hide_credentials(value):
            return value  # the common case
        scrubbed = _URL_CREDENTIALS.sub(rf"\g<scheme>{REDACTED}@", value)
        scrubbed = _AUTH_SCHEME.sub(rf"\g<scheme> {REDACTED}", scrubbed)
        if self._pair is not None:
            scrubbed = self._pair.sub(rf"\g<key>\g<sep>{REDACTED}", scrubbed)
        return value if scrubbed == value else scrubbed

    def plain(self, *nested: dict[str, Any] | None, texts: Iterable[str | None] = ()) -> bool:
        """Whether an event whose fields are all Data-Juicer's (typed scalars but for the
        dicts ``nested``; its strings ``texts``) surely holds no secret: the dicts are flat,
        with known safe keys, and no string holds anything a credential could hide behind."""
        if not self.enabled:
            return True
        if not self._names_safe:
            return False
        if _may_hide_credentials("".join(filter(None, texts))):
            return False
        return all(value is None or self._flat_and_safe(value) for value in nested)

    def _flat_and_safe(self, value: dict[str, Any]) -> bool:
        """Whether the dict's keys are all known safe and its values all plain scalars."""
        if not self._safe.issuperset(value):
            return False
        values = value.values()
        if _NUMBERS.issuperset(map(type, values)):  # the common case, in C
            return True
        return _SCALARS.issuperset(map(type, values)) and _texts_plain(values)

    def __call__(self, fields: dict[str, Any]) -> dict[str, Any]:
        return self._scrub(fields) if self.enabled else fields

    def _scrub(self, value: Any, depth: int = 0) -> Any:
        """``value`` with secrets replaced; the very same object when it holds none."""
        kind = type(value)
        if kind is str:
            return self.text(value)
        if kind in _SCALARS:
            return value
        if depth >= MAX_DEPTH:
            return REDACTED
        depth += 1
        if kind is dict and self._safe.issuperset(value):  # the common case, in C
            if _SCALARS.issuperset(map(type, value.values())) and _texts_plain(value.values()):
                return value
            nested = {
                key: new
                for key, item in value.items()
                if type(item) not in (int, float, bool, type(None))
                and (new := self._scrub(item, depth)) is not item
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
                new = REDACTED if secret and item is not None else self._scrub(item, depth)
                changed = changed or new is not item
                scrubbed[key] = new
            return scrubbed if changed else value
        if isinstance(value, (list, tuple)):
            items = self._arguments(value, depth)
            if any(new is not old for new, old in zip(items, value, strict=False)):
                return items
            return value
        return value

    def _arguments(self, values: list[Any] | tuple[Any, ...], depth: int) -> list[Any]:
        """The items scrubbed, and the one after a secret-looking flag (``--password x``)."""
        items = []
        secret_next = False
        for item in values:
            if secret_next and item is not None and not (type(item) is str and item[:1] == "-"):
                items.append(REDACTED)
                secret_next = False
                continue
            secret_next = (
                type(item) is str
                and _FLAG.match(item) is not None
                and self.is_secret(item.lstrip("-"))
            )
            items.append(self._scrub(item, depth))
        return items


def redact_yaml(text: str, redact: Redactor) -> str:
    """A YAML document (a job config) with its secrets replaced.

    A document whose data holds no secret keeps its layout, each line redacted as text
    (a comment may hold one too); one that does is dumped again from the redacted data,
    without its comments.  Text that is not YAML is redacted line by line.
    """
    import yaml

    lines = "\n".join(redact.text(line) for line in text.split("\n"))
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError):
        return lines
    scrubbed = redact({"document": data})["document"]
    if scrubbed is data:
        return lines
    return yaml.safe_dump(scrubbed, sort_keys=False, allow_unicode=True)
