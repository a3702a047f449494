"""Wrapping a method of someone else's class, once, so that it can be undone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ORIGINAL", "unwrap", "unwrap_all", "wrap"]

ORIGINAL = "__dj_observe_original__"
"""The attribute of a wrapper that holds the function it wraps."""

_wrapped: list[tuple[Any, str]] = []


def wrap(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Replace ``owner.name`` by ``make(original)``; a second call does nothing."""
    original = owner.__dict__.get(name)
    if original is None or hasattr(original, ORIGINAL):
        return
    wrapper = make(original)
    setattr(wrapper, ORIGINAL, original)
    setattr(owner, name, wrapper)
    _wrapped.append((owner, name))


def unwrap_all() -> None:
    """Put back every method :func:`wrap` replaced."""
    while _wrapped:
        unwrap(*_wrapped.pop())


def unwrap(owner: Any, name: str) -> None:
    original = getattr(owner.__dict__.get(name), ORIGINAL, None)
    if original is not None:
        setattr(owner, name, original)
