"""Tables that fit the terminal without ever cutting an identifier a user copies.

Each column says what its cells are (:class:`Kind`).  An identifier (op name, job id,
partition id, path) or a figure is never broken inside a word; prose (an error message)
wraps anywhere.  At render time, for the width it is given, a :class:`FitTable` takes
the first layout that holds every identifier whole:

1. a table of every column, each cell on one line;
2. the same without the optional columns (:attr:`Column.drop`), least important first:
   a figure left out is named in the caption, an identifier is listed below the table,
   whole, beside its row's first identifier;
3. steps 1 and 2 again with cells on up to two lines, broken between words;
4. every row stacked as a record: its first identifier on a line of its own, then every
   other cell as ``header: value``.

Only an identifier longer than the whole width is folded at the edge, never shortened.
Cells are :class:`~rich.text.Text` (``safe_text``) or plain strings, never markup.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, JustifyMethod, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "FitTable", "Kind"]

PROSE_MIN = 20
"""Columns a prose cell keeps in a table; narrower, the row is stacked."""
INDENT = 2
"""Indent of a stacked record's lines after its first."""
_CELL_PAD = 2
"""A table cell's padding, one column each side (rich's default)."""


class Kind(enum.Enum):
    """How a column's cells may be broken across lines."""

    ID = "id"
    """Copied by users: wraps only between words; never left out (listed below instead)."""
    FIGURE = "figure"
    """A number or short phrase: wraps only between words."""
    PROSE = "prose"
    """Text to read (an error message): wraps anywhere."""


@dataclass(frozen=True)
class Column:
    """One column: its header, its kind, and whether (and how early) it may be left out."""

    header: str
    kind: Kind = Kind.FIGURE
    justify: JustifyMethod = "left"
    drop: int = 0
    """0: always shown; otherwise left out of a table too wide for the width, 1 first."""


def _lines(text: Text) -> list[str]:
    return text.plain.splitlines() or [""]


def _natural(text: Text) -> int:
    """Columns that ``text`` takes on one line."""
    return max(cell_len(line) for line in _lines(text))


def _longest_word(text: Text) -> int:
    return max((cell_len(word) for line in _lines(text) for word in line.split()), default=0)


def _two_lines(text: Text) -> int:
    """The fewest columns that hold ``text`` on two lines, broken between words."""
    words = text.plain.split()
    if len(words) < 2:
        return _natural(text)
    return min(
        max(cell_len(" ".join(words[:cut])), cell_len(" ".join(words[cut:])))
        for cut in range(1, len(words))
    )


class FitTable:
    """Rows of cells laid out for the width they are rendered at (see the module)."""

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        title: str | None = None,
        title_style: str = "table.title",
        caption: str | None = None,
    ) -> None:
        self.columns = list(columns)
        self.title = title
        self.title_style = title_style
        self.caption = caption
        self.rows: list[list[Text]] = []

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def add_row(self, *cells: str | Text) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([cell if isinstance(cell, Text) else Text(cell) for cell in cells])

    # -- widths ----------------------------------------------------------------------

    def _natural(self, index: int) -> int:
        """Columns that column ``index`` takes with every cell, and its header, on one line."""
        cells = [Text(self.columns[index].header), *(row[index] for row in self.rows)]
        return max(map(_natural, cells))

    def _floor(self, index: int, tight: bool) -> int:
        """The fewest columns a column takes: its cells on one line, or (``tight``) on two,
        broken between words; prose at least :data:`PROSE_MIN`.  Headers break between words."""
        column = self.columns[index]
        header = _longest_word(Text(column.header))
        if column.kind is Kind.PROSE:
            return max(header, min(PROSE_MIN, self._natural(index)))
        measure = _two_lines if tight else _natural
        return max([header, *(measure(row[index]) for row in self.rows)])

    def _layout(self, width: int) -> tuple[list[int], list[int]] | None:
        """The columns shown and their widths, or ``None``: stack.  Cells on one line with
        every column, then without the optional ones in their order; then the same with
        cells on at most two lines."""
        natural = [self._natural(index) for index in range(len(self.columns))]
        optional = [i for _, i in sorted((c.drop, i) for i, c in enumerate(self.columns) if c.drop)]
        for tight in (False, True):
            floors = [self._floor(index, tight) for index in range(len(self.columns))]
            shown = list(range(len(self.columns)))
            for dropped in [None, *optional]:
                if dropped is not None:
                    shown.remove(dropped)
                widths = self._widths(shown, width, floors, natural)
                if widths is not None:
                    return shown, widths
        return None

    def _widths(
        self, shown: list[int], width: int, floors: list[int], natural: list[int]
    ) -> list[int] | None:
        """Each shown column's width in a table ``width`` wide, or ``None`` if it cannot
        fit: the floors, then what is left to identifiers, figures and prose in turn."""
        room = width - 1 - (_CELL_PAD + 1) * len(shown)  # the rules and the cell padding
        widths = [floors[index] for index in shown]
        spare = room - sum(widths)
        if spare < 0:
            return None
        for kind in Kind:
            for slot, index in enumerate(shown):
                if self.columns[index].kind is kind:
                    grow = max(0, min(spare, natural[index] - widths[slot]))
                    widths[slot] += grow
                    spare -= grow
        return widths

    # -- rendering -------------------------------------------------------------------

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        natural = 1 + sum(self._natural(i) + _CELL_PAD + 1 for i in range(len(self.columns)))
        width = min(natural, options.max_width)
        return Measurement(width, width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        layout = self._layout(options.max_width)
        if layout is None:
            yield from self._stacked(console, options.max_width)
        else:
            yield from self._table(console, *layout, options.max_width)

    def _key(self, row: list[Text], shown: list[int]) -> Text | None:
        """A row's first identifier among ``shown``: what names it."""
        for index in shown:
            if self.columns[index].kind is Kind.ID:
                return row[index]
        return None

    def _table(
        self, console: Console, shown: list[int], widths: list[int], width: int
    ) -> RenderResult:
        hidden = [i for i in range(len(self.columns)) if i not in shown]
        left_out = [self.columns[i].header for i in hidden if self.columns[i].kind is not Kind.ID]
        notes = [self.caption] if self.caption else []
        if left_out:
            notes.append(f"not shown at this width: {', '.join(left_out)}")
        table = Table(
            title=self.title,
            title_justify="left",
            title_style=self.title_style,
            caption="\n".join(notes) or None,
            caption_justify="left",
        )
        for index, cells in zip(shown, widths, strict=True):
            column = self.columns[index]
            table.add_column(column.header, justify=column.justify, width=cells, overflow="fold")
        for row in self.rows:
            table.add_row(*(row[index] for index in shown))
        yield table
        keys = [self._key(row, shown) for row in self.rows]
        for index in hidden:
            if self.columns[index].kind is Kind.ID:
                yield Text(f"{self.columns[index].header}:")
                key_width = _aligned(keys, [row[index] for row in self.rows], width - INDENT)
                for key, row in zip(keys, self.rows, strict=True):
                    yield from _listed(console, key, key_width, row[index], width)

    def _stacked(self, console: Console, width: int) -> RenderResult:
        if self.title:
            yield Text(self.title, style=self.title_style)
        lead = next((i for i, c in enumerate(self.columns) if c.kind is Kind.ID), 0)
        for row in self.rows:
            yield from _indented(console, self._pair(lead, row), width, 0)
            figures = [
                self._pair(i, row)
                for i, c in enumerate(self.columns)
                if i != lead and c.kind is Kind.FIGURE
            ]
            for line in _packed(figures, width - INDENT):
                yield from _indented(console, line, width)
            for index, column in enumerate(self.columns):
                if index != lead and column.kind is not Kind.FIGURE:
                    yield from _indented(console, self._pair(index, row), width)
        if self.caption:
            yield Text(self.caption, style="table.caption")

    def _pair(self, index: int, row: list[Text]) -> Text:
        header = self.columns[index].header
        return Text.assemble(f"{header}: " if header else "", row[index])


def _indented(console: Console, text: Text, width: int, indent: int = INDENT) -> Iterator[Text]:
    """``text`` wrapped to ``width`` less ``indent``, each line indented."""
    for line in text.wrap(console, max(width - indent, 1), overflow="fold"):
        line.rstrip()
        yield Text.assemble(" " * indent, line)


def _packed(pieces: list[Text], width: int) -> Iterator[Text]:
    """``pieces`` joined by two spaces into lines of at most ``width`` columns (a piece
    longer than that alone on its line)."""
    line = Text()
    for piece in pieces:
        if line and cell_len(line.plain) + 2 + _natural(piece) > width:
            yield line
            line = Text()
        if line:
            line.append("  ")
        line.append_text(piece)
    if line:
        yield line


def _aligned(keys: list[Text | None], values: list[Text], width: int) -> int:
    """The width keys are padded to so that values line up, if every line then fits; or 0."""
    if not all(keys):
        return 0
    key_width = max(cell_len(key.plain) for key in keys if key)
    fits = all(key_width + 2 + _natural(value) <= width for value in values)
    return key_width if fits else 0


def _listed(
    console: Console, key: Text | None, key_width: int, value: Text, width: int
) -> Iterator[Text]:
    """``key  value``, keys padded to ``key_width``, indented; the value on a line of its own
    below its key when the two do not fit on one."""
    if key is None:
        yield from _indented(console, value, width)
        return
    line = Text.assemble(key, " " * (max(key_width - cell_len(key.plain), 0) + 2), value)
    if cell_len(line.plain) <= width - INDENT:
        yield from _indented(console, line, width)
    else:
        yield from _indented(console, key, width)
        yield from _indented(console, value, width, 2 * INDENT)
