"""Text from a log, made safe to show: control characters visibly escaped, length bounded.

Every field of every line may be hostile.  A terminal view must not let a value
set the window title, clear the screen, hide text, open a hyperlink or overwrite a
line (``\\r``), and must not parse it as rich markup; a report must not grow with a
value's length.  :func:`visible` makes such a string, :func:`safe_text` wraps it
in a :class:`rich.text.Text` (which is never parsed as markup).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["MAX_VIEW_CHARS", "count_of", "safe_text", "shorten", "visible"]

MAX_VIEW_CHARS = 1000
"""Characters of one value a terminal view shows; the rest is summarised."""

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 and C1 controls, DEL, lone surrogates (unprintable), and the bidirectional
# overrides and isolates that reorder what a reader sees.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_KEEPING_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\u2026 (+{len(text) - limit:,} chars)"


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: object, limit: int = MAX_VIEW_CHARS, *, lines: bool = False) -> str:
    """``value`` as text that shows every control character as an escape (``\\x1b``),
    shortened to ``limit`` characters first; ``lines`` keeps newlines and tabs."""
    text = shorten(value if isinstance(value, str) else str(value), limit)
    return (_UNSAFE_KEEPING_LINES if lines else _UNSAFE).sub(_escape, text)


def safe_text(value: object, style: str = "", limit: int = MAX_VIEW_CHARS) -> Text:
    """A rich :class:`~rich.text.Text` of :func:`visible` ``value``: never markup."""
    from rich.text import Text  # only the terminal views need rich

    return Text(visible(value, limit), style=style)


def count_of(number: int, noun: str) -> str:
    """``1 partition``, ``2 partitions``: a count with its noun in the right number."""
    return f"{number} {noun}{'' if number == 1 else 's'}"
