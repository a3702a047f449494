"""Data-Juicer-style text operators on pyarrow tables, and their registry.

Names, arguments, defaults and meaning follow Data-Juicer's ops of the same names; the work is
done with ``pyarrow.compute`` (RE2 regular expressions) instead of per-sample Python. Adding an
op is one small class: give it a ``name``, declare its arguments as annotated class attributes
with defaults, implement ``map_texts`` (a ``Mapper``) or ``keep_mask`` (a ``Filter``), and
decorate it with ``@register``::

    @register
    class LowercaseMapper(Mapper):
        name = "lowercase_mapper"

        def map_texts(self, texts: pa.ChunkedArray) -> pa.ChunkedArray:
            return pc.utf8_lower(texts)

Null texts never raise: mappers leave them null, filters drop their rows, and the
deduplicator treats all null texts as copies of one another.
"""

from __future__ import annotations

import hashlib
import string
import sys
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Iterable
from functools import cache
from typing import Any, ClassVar, TypeVar

import pyarrow as pa
import pyarrow.compute as pc


class OpConfigError(ValueError):
    """An op name or op argument that cannot be used; the message is one line."""


def _char_class(chars: Iterable[str], ranges: Iterable[tuple[int, int]] = ()) -> str:
    """The body of an RE2 character class matching ``chars`` and inclusive code point ranges."""
    spans = sorted({(ord(c), ord(c)) for c in chars} | set(ranges))
    merged: list[list[int]] = []
    for low, high in spans:
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return "".join(
        f"\\x{{{low:X}}}" if low == high else f"\\x{{{low:X}}}-\\x{{{high:X}}}"
        for low, high in merged
    )


# What Python's ``str.strip()`` removes (Data-Juicer strips with it); all of it is below U+3001.
_PY_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
_WS = _char_class(_PY_WHITESPACE)

# Data-Juicer's VARIOUS_WHITESPACES: each becomes a plain space (newlines are not in it).
_VARIOUS_WHITESPACES = _char_class(
    " \t\u00a0\u0084\u200b\u200c\u200d\u202f\u205f\u2060\u3000\ufffc", [(0x2000, 0x200A)]
)

# Data-Juicer's OTHER_SPECIAL_CHARACTERS (visible ones), sorted by code point.
_DJ_OTHER_SPECIAL = (
    "\u00a1\u00a2\u00a3\u00a4\u00a5\u00a6\u00a7\u00a8\u00a9\u00aa\u00ab\u00ae\u00af\u00b0"
    "\u00b1\u00b2\u00b3\u00b4\u00b7\u00b8\u00b9\u00ba\u00bb\u00bc\u00bd\u00be\u00bf\u00d7"
    "\u00f7\u00f8\u0131\u026a\u02ba\u02bb\u02bc\u02c8\u02cc\u02d0\u02d8\u02da\u02dc\u03c0"
    "\u0413\u060c\u0647\u066a\u066c\u06e9\u093e\u0940\u0947\u094d\u097d\u09be\u0e51\u2010"
    "\u2011\u2013\u2014\u2015\u2016\u2018\u2019\u201a\u201c\u201d\u201e\u201f\u2020\u2022"
    "\u2024\u2026\u2030\u2032\u2033\u2039\u203a\u203f\u2043\u2044\u20a8\u20aa\u20ac\u2103"
    "\u2122\u2190\u2191\u2192\u2193\u21d3\u2206\u2208\u2212\u221a\u221e\u221f\u223c\u2248"
    "\u2256\u2264\u2265\u2295\u22c5\u2550\u25a0\u25ac\u25b2\u25b4\u25b7\u25ba\u25bb\u25bc"
    "\u25c6\u25cf\u25e6\u2605\u2606\u261b\u263b\u2661\u2665\u266b\u2713\u2726\u2731\u2756"
    "\u27a4\u27a9\u2800\u3001\u3002\u300a\u300b\u300c\u300d\u3010\u3011\u309c\u30b7\u30c3"
    "\u30c4\u30f3\u30fb\u30fc\u4e00\u4e0a\u58eb\ufd3e\ufd3f\uff01\uff08\uff09\uff0c\uff0e"
    "\uff11\uff1a\uff1b\uff1f\uff3e\uff5e\ufffd"
)
# Its invisible ones: unicode spaces, soft hyphen, zero-width space, object replacement.
_DJ_INVISIBLE_SPECIAL = "\u00a0\u00ad\u200b\u202f\u205f\u3000\ufffc"
# Data-Juicer adds every emoji of the ``emoji`` package. Only single code points matter (it
# counts characters), and those lie in these two blocks plus the code points listed after them.
_EMOJI_RANGES = [
    (0x2600, 0x27BF),
    (0x1F000, 0x1FAFF),
    *((cp, cp) for cp in (0x203C, 0x2049, 0x2139, 0x2328, 0x2388, 0x23CF, 0x24C2, 0x25B6)),
    *((cp, cp) for cp in (0x25C0, 0x2B50, 0x2B55, 0x3030, 0x303D, 0x3297, 0x3299)),
    (0x2194, 0x2199),
    (0x21A9, 0x21AA),
    (0x231A, 0x231B),
    (0x23E9, 0x23F3),
    (0x23F8, 0x23FA),
    (0x25AA, 0x25AB),
    (0x25FB, 0x25FE),
    (0x2934, 0x2935),
    (0x2B05, 0x2B07),
    (0x2B1B, 0x2B1C),
]
_SPECIAL = _char_class(
    string.punctuation
    + string.digits
    + string.whitespace
    + _DJ_OTHER_SPECIAL
    + _DJ_INVISIBLE_SPECIAL,
    [(0x2000, 0x200A), *_EMOJI_RANGES],
)

# Data-Juicer's clean_links_mapper pattern, with Unicode \w and \s spelled out for RE2.
_URL_CHAR = rf"[^{_WS}()<>]"
_LINK_PATTERN = (
    r"(?i)\b(?:"
    r"(?:[a-z][\p{L}\p{M}\p{Nd}\p{Pc}-]+:(?:/{1,3}|[a-z0-9%])|www\d{0,3}[.]|[a-z0-9.\-]+[.][a-z]{2,4}/)"
    rf"(?:{_URL_CHAR}+|\((?:{_URL_CHAR}+|\({_URL_CHAR}+\))*\))+"
    rf"(?:\((?:{_URL_CHAR}+|\({_URL_CHAR}+\))*\)"
    rf"|[^{_WS}`!()\[\]{{}};:'\".,<>?\x{{AB}}\x{{BB}}\x{{201C}}\x{{201D}}\x{{2018}}\x{{2019}}])"
    r")"
)
# Data-Juicer's clean_email_mapper pattern (note: the domain part is lowercase only).
_EMAIL_PATTERN = r"[A-Za-z0-9.\-+_]+@[a-z0-9.\-+_]+\.[a-z]+"
# A word is a run split on " ", "\n" and "\t" that is not made only of special characters.
_WORD_PATTERN = rf"[^ \t\n]*[^{_SPECIAL}][^ \t\n]*"
# document_deduplicator's ignore_non_character: whitespace, digits and ASCII punctuation.
_NON_CHARACTER = rf"[{_WS}\p{{Nd}}{_char_class(string.punctuation)}]"

# Data-Juicer's punctuation_normalization_mapper table.
_PUNCTUATION = {
    "\N{FULLWIDTH COMMA}": ",",
    "\N{IDEOGRAPHIC FULL STOP}": ".",
    "\N{IDEOGRAPHIC COMMA}": ",",
    "\N{DOUBLE LOW-9 QUOTATION MARK}": '"',
    "\N{RIGHT DOUBLE QUOTATION MARK}": '"',
    "\N{LEFT DOUBLE QUOTATION MARK}": '"',
    "\N{LEFT-POINTING DOUBLE ANGLE QUOTATION MARK}": '"',
    "\N{RIGHT-POINTING DOUBLE ANGLE QUOTATION MARK}": '"',
    "\N{FULLWIDTH DIGIT ONE}": '"',
    "\N{RIGHT CORNER BRACKET}": '"',
    "\N{LEFT CORNER BRACKET}": '"',
    "\N{LEFT DOUBLE ANGLE BRACKET}": '"',
    "\N{RIGHT DOUBLE ANGLE BRACKET}": '"',
    "\N{ACUTE ACCENT}": "'",
    "\N{RATIO}": ":",
    "\N{FULLWIDTH COLON}": ":",
    "\N{FULLWIDTH QUESTION MARK}": "?",
    "\N{FULLWIDTH EXCLAMATION MARK}": "!",
    "\N{FULLWIDTH LEFT PARENTHESIS}": "(",
    "\N{FULLWIDTH RIGHT PARENTHESIS}": ")",
    "\N{FULLWIDTH SEMICOLON}": ";",
    "\N{EN DASH}": "-",
    "\N{EM DASH}": " - ",
    "\N{FULLWIDTH FULL STOP}": ". ",
    "\N{FULLWIDTH TILDE}": "~",
    "\N{RIGHT SINGLE QUOTATION MARK}": "'",
    "\N{HORIZONTAL ELLIPSIS}": "...",
    "\N{BOX DRAWINGS HEAVY HORIZONTAL}": "-",
    "\N{LEFT ANGLE BRACKET}": "<",
    "\N{RIGHT ANGLE BRACKET}": ">",
    "\N{LEFT BLACK LENTICULAR BRACKET}": "[",
    "\N{RIGHT BLACK LENTICULAR BRACKET}": "]",
    "\N{FULLWIDTH PERCENT SIGN}": "%",
    "\N{BLACK RIGHT-POINTING POINTER}": "-",
}
_PUNCTUATION_CLASS = f"[{_char_class(_PUNCTUATION)}]"


@cache
def _params(cls: type[Op]) -> dict[str, Any]:
    """An op class's arguments and their types: its annotated, non-ClassVar attributes."""
    hints = typing.get_type_hints(cls)
    return {key: hint for key, hint in hints.items() if typing.get_origin(hint) is not ClassVar}


def _alternatives(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _matches(value: Any, hint: Any) -> bool:
    for option in _alternatives(hint):
        if option is type(None):
            if value is None:
                return True
        elif isinstance(value, bool):
            if option is bool:
                return True
        elif option is float:
            if isinstance(value, (int, float)):
                return True
        elif isinstance(value, option):
            return True
    return False


def _type_name(hint: Any) -> str:
    return " or ".join(
        "None" if option is type(None) else option.__name__ for option in _alternatives(hint)
    )


class Op(ABC):
    """An operator on a table whose text column is ``text_key``.

    Arguments are the annotated class attributes of the subclass (their values are the
    defaults); the constructor checks names and types and raises ``OpConfigError``.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    is_global: ClassVar[bool] = False
    text_key: str = "text"

    def __init__(self, text_key: str = "text", **args: Any) -> None:
        params = _params(type(self))
        for key, value in {"text_key": text_key, **args}.items():
            if key not in params:
                accepted = ", ".join(sorted(params))
                raise OpConfigError(f"{self.name}: unknown argument {key!r} (accepted: {accepted})")
            if not _matches(value, params[key]):
                raise OpConfigError(
                    f"{self.name}: argument {key!r} must be {_type_name(params[key])}, "
                    f"got {type(value).__name__} {value!r:.60}"
                )
            setattr(self, key, value)

    @abstractmethod
    def process(self, table: pa.Table) -> pa.Table:
        """The table after this op."""

    def _texts(self, table: pa.Table) -> pa.ChunkedArray:
        if self.text_key not in table.column_names:
            raise OpConfigError(f"{self.name}: the data has no text column {self.text_key!r}")
        texts = table.column(self.text_key)
        return texts.cast(pa.string()) if pa.types.is_null(texts.type) else texts


class Mapper(Op):
    """An op that rewrites each text."""

    kind = "mapper"

    @abstractmethod
    def map_texts(self, texts: pa.ChunkedArray) -> pa.ChunkedArray:
        """The new texts; nulls stay null."""

    def process(self, table: pa.Table) -> pa.Table:
        texts = self.map_texts(self._texts(table))
        return table.set_column(table.column_names.index(self.text_key), self.text_key, texts)


class Filter(Op):
    """An op that keeps the rows whose text passes a test; rows with a null text are dropped."""

    kind = "filter"

    @abstractmethod
    def keep_mask(self, texts: pa.ChunkedArray) -> pa.ChunkedArray:
        """True for the rows to keep (null counts as False)."""

    def process(self, table: pa.Table) -> pa.Table:
        return table.filter(pc.fill_null(self.keep_mask(self._texts(table)), False))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _between(values: pa.ChunkedArray, low: float, high: float) -> pa.ChunkedArray:
    return pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high))


OP_REGISTRY: dict[str, type[Op]] = {}
_O = TypeVar("_O", bound=Op)


def register(cls: type[_O]) -> type[_O]:
    """Class decorator: make the op buildable by its ``name``."""
    if cls.name in OP_REGISTRY:
        raise ValueError(f"op {cls.name!r} is already registered")
    OP_REGISTRY[cls.name] = cls
    return cls


def build_op(name: str, args: dict[str, Any] | None = None) -> Op:
    """The op called ``name`` with ``args``; ``OpConfigError`` names what is wrong."""
    if not isinstance(name, str) or name not in OP_REGISTRY:
        known = ", ".join(sorted(OP_REGISTRY))
        raise OpConfigError(f"unknown op {name!r}; known ops: {known}")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise OpConfigError(f"{name}: arguments must be a mapping, got {type(args).__name__}")
    for key in args:
        if not isinstance(key, str):
            raise OpConfigError(f"{name}: argument names must be strings, got {key!r}")
    return OP_REGISTRY[name](**args)


def build_global_op(name: str, args: dict[str, Any] | None = None) -> GlobalOp:
    """The global op called ``name`` with ``args``; ``OpConfigError`` if it is not global."""
    op = build_op(name, args)
    if not isinstance(op, GlobalOp):
        raise OpConfigError(f"{name} is not a global op")
    return op


@register
class CleanLinksMapper(Mapper):
    """Replace links (``scheme:...``, ``www...``, ``host.tld/...``) with ``repl``.

    Data-Juicer's pattern: any ``word:`` followed by a letter, digit, ``%`` or ``/`` starts a
    link (``http://``, ``ftp://``, ``mailto:``, but also ``note:see``); a bare ``host.tld``
    without a ``/`` is not a link. ``\\b`` is ASCII here (RE2), Unicode in Data-Juicer.
    """

    name = "clean_links_mapper"
    repl: str = ""

    def map_texts(self, texts: pa.ChunkedArray) -> pa.ChunkedArray:
        return pc.replace_substring_regex(texts, _LINK_PATTERN, self.repl)


@register
class CleanEmailMapper(Mapper):
    """Replace email addresses with ``repl`` (Data-Juicer's pattern: lowercase domains only)."""

    name = "clean_email_mapper"
    repl: str = ""

    def map_texts(self, texts: pa.ChunkedArray) -> pa.ChunkedArray:
        return pc.replace_substring_regex(texts, _EMAIL_PATTERN, self.repl)


@register
class WhitespaceNormalizationMapper(Mapper):
    """Strip the text's leading and trailing whitespace, then turn each unicode space variant
    (tab, no-break and typographic spaces, zero-width characters) into a plain space.

    As in Data-Juicer, stripping applies to the whole text, not to each line, and newlines
    are kept.
    """

    name = "whitespace_normalization_mapper"

    def map_texts(self, texts: pa.ChunkedArray) -> pa.ChunkedArray:
        stripped = pc.utf8_trim(texts, characters=_PY_WHITESPACE)
        return pc.replace_substring_regex(stripped, f"[{_VARIOUS_WHITESPACES}]", " ")


@register
class PunctuationNormalizationMapper(Mapper):
    """Map unicode punctuation (fullwidth, CJK, typographic quotes and dashes) to ASCII."""

    name = "punctuation_normalization_mapper"

    def map_texts(self, texts: pa.ChunkedArray) -> pa.ChunkedArray:
        if not pc.any(pc.match_substring_regex(texts, _PUNCTUATION_CLASS)).as_py():
            return texts
        for source, target in _PUNCTUATION.items():
            texts = pc.replace_substring(texts, source, target)
        return texts


@register
class TextLengthFilter(Filter):
    """Keep rows whose text length in characters (code points) is in [min_len, max_len]."""

    name = "text_length_filter"
    min_len: int = 10
    max_len: int = sys.maxsize

    def keep_mask(self, texts: pa.ChunkedArray) -> pa.ChunkedArray:
        return _between(pc.utf8_length(texts), self.min_len, self.max_len)


@register
class WordsNumFilter(Filter):
    """Keep rows whose number of words is in [min_num, max_num].

    Words come from whitespace tokenisation (splitting on space, newline and tab, whatever
    ``lang`` is, as Data-Juicer does without a tokenizer); as in Data-Juicer, a token made
    only of special characters (punctuation, digits, symbols, emoji) is not a word.
    """

    name = "words_num_filter"
    min_num: int = 10
    max_num: int = sys.maxsize
    lang: str = "en"

    def keep_mask(self, texts: pa.ChunkedArray) -> pa.ChunkedArray:
        return _between(pc.count_substring_regex(texts, _WORD_PATTERN), self.min_num, self.max_num)


@register
class SpecialCharactersFilter(Filter):
    """Keep rows whose ratio of special characters to length is in [min_ratio, max_ratio].

    Special characters are Data-Juicer's: ASCII punctuation, digits and whitespace, its list
    of other symbols, and emoji. An empty text has ratio 0.
    """

    name = "special_characters_filter"
    min_ratio: float = 0.0
    max_ratio: float = 0.25

    def keep_mask(self, texts: pa.ChunkedArray) -> pa.ChunkedArray:
        lengths = pc.cast(pc.utf8_length(texts), pa.float64())
        specials = pc.cast(pc.count_substring_regex(texts, f"[{_SPECIAL}]"), pa.float64())
        ratios = pc.if_else(pc.equal(lengths, 0.0), 0.0, pc.divide(specials, lengths))
        return _between(ratios, self.min_ratio, self.max_ratio)


class GlobalOp(Op):
    """An op over all partitions at once: the executor gathers every partition's
    ``fingerprints``, decides which rows to keep across all of them and applies ``keep`` to each.
    """

    is_global = True

    @abstractmethod
    def fingerprints(self, table: pa.Table) -> pa.Array:
        """One value per row; rows with equal values are copies of one another."""

    def keep(self, table: pa.Table, mask: pa.Array) -> pa.Table:
        """The rows of ``table`` whose ``mask`` value is true."""
        if len(mask) != table.num_rows:
            raise ValueError(f"{self.name}: mask has {len(mask)} values for {table.num_rows} rows")
        return table.filter(mask)


@register
class DocumentDeduplicator(GlobalOp):
    """Exact deduplication of texts: the first occurrence is kept.

    A global op. The fingerprint is Data-Juicer's: the md5 hex digest of the text, lowercased
    if ``lowercase``, without whitespace, digits and ASCII punctuation if
    ``ignore_non_character``, then stripped. Null texts get a null fingerprint and count as
    copies of one another.
    """

    name = "document_deduplicator"
    kind = "deduplicator"
    lowercase: bool = False
    ignore_non_character: bool = False

    def fingerprints(self, table: pa.Table) -> pa.Array:
        """One md5 hex digest (a string, null for a null text) per row."""
        texts = self._texts(table)
        if self.lowercase:
            texts = pc.utf8_lower(texts)
        if self.ignore_non_character:
            texts = pc.replace_substring_regex(texts, _NON_CHARACTER, "")
        texts = pc.utf8_trim(texts, characters=_PY_WHITESPACE)
        digests = [None if text is None else _md5(text) for text in texts.to_pylist()]
        return pa.array(digests, pa.string())

    def process(self, table: pa.Table) -> pa.Table:
        """Deduplicate within one table."""
        rows = pa.array(range(table.num_rows), pa.int64())
        firsts = (
            pa.table({"fingerprint": self.fingerprints(table), "row": rows})
            .group_by("fingerprint")
            .aggregate([("row", "min")])
            .column("row_min")
        )
        return self.keep(table, pc.is_in(rows, value_set=firsts))
