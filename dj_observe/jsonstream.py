"""Writing one large JSON object in pieces, with bounded memory.

:class:`ObjectWriter` writes a top-level object member by member, pretty-printed or
compact; a member's growing part (many elements) is rendered batch by batch into
files (:func:`spools`) and streamed from there as :class:`FilePart` pieces, copied by
the kernel when the output is a file.  The snapshot document is built on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

import msgspec

__all__ = ["STREAM", "FilePart", "ObjectWriter", "opened_and_unlinked", "spools"]


def spools(stack: ExitStack, count: int = 3) -> list[BinaryIO]:
    """``count`` temporary files, closed (and gone) with ``stack``."""
    import tempfile

    return [stack.enter_context(tempfile.TemporaryFile()) for _ in range(count)]


def opened_and_unlinked(path: str) -> BinaryIO:
    """``path`` opened for reading and removed: gone once the handle is closed."""
    handle = open(path, "rb")  # noqa: SIM115 - the caller's context closes it
    os.unlink(path)
    return handle


@dataclass(frozen=True)
class FilePart:
    """The bytes of an open file from ``start`` to its end, to be copied to the output."""

    handle: BinaryIO
    start: int

    _READ = 1 << 20

    def copy_to(self, stream: IO[bytes]) -> None:
        """Copy in the kernel (``sendfile``) when the stream is a file descriptor, else by reads."""
        source = self.handle.fileno()
        offset, size = self.start, os.fstat(source).st_size
        try:
            target = stream.fileno()
            stream.flush()
            while offset < size and (sent := os.sendfile(target, source, offset, size - offset)):
                offset += sent
        except (
            OSError,
            ValueError,
        ):  # no descriptor (io.UnsupportedOperation), or sendfile refused
            pass
        self.handle.seek(offset)
        while offset < size and (chunk := self.handle.read(min(self._READ, size - offset))):
            stream.write(chunk)
            offset += len(chunk)


STREAM = "\u0000streamed\u0000"
"""Placeholder for the member's part whose elements are written from files."""


class ObjectWriter:
    """Writes one top-level JSON object member by member, pretty-printed or compact.

    A member may contain :data:`STREAM` once: that spot is filled with the
    elements already rendered into files by :meth:`write_elements`, so no more than
    one batch of elements is ever held in memory.
    """

    def __init__(self, indent: int) -> None:
        self.indent = indent
        self.first = True

    def _encode(self, value: Any, depth: int) -> bytes:
        data = msgspec.json.encode(value)
        if not self.indent:
            return data
        data = msgspec.json.format(data, indent=self.indent)
        return data.replace(b"\n", b"\n" + b" " * (self.indent * depth))

    def _key(self, key: str) -> bytes:
        lead = b"{" if self.first else b","
        self.first = False
        newline = b"\n" + b" " * self.indent if self.indent else b""
        return lead + newline + msgspec.json.encode(key) + (b": " if self.indent else b":")

    def _pad(self, depth: int) -> bytes:
        return b"\n" + b" " * (self.indent * depth) if self.indent else b""

    def item(self, key: str, value: Any) -> bytes:
        return self._key(key) + self._encode(value, depth=1)

    def write_elements(self, out: BinaryIO, batch: dict[str, Any] | list[Any], depth: int) -> None:
        """Write a batch of elements at ``depth``, each after a comma (:meth:`member` drops
        the first).  The batch is encoded nested in ``depth - 1`` lists, so the formatter
        indents it in place; the wrappers are cut off without copying."""
        if not batch:
            return
        wrappers = depth - 1
        value: Any = batch
        for _ in range(wrappers):
            value = [value]
        data = msgspec.json.encode(value)
        step = self.indent
        if step:
            data = msgspec.json.format(data, indent=step)
        # Each wrapper opens with "[" + newline + its child's indent, then the batch's
        # bracket; the batch and each wrapper close with newline + indent + bracket.
        # (Compact: only the brackets.)
        line = 1 if step else 0
        head = sum(1 + line + step * (level + 1) for level in range(wrappers)) + 1
        tail = sum(line + step * level + 1 for level in range(depth))
        out.write(b",")
        out.write(memoryview(data)[head : len(data) - tail])

    def member(
        self, key: str, value: Any, parts: list[BinaryIO], brackets: bytes = b"{}"
    ) -> Iterator[bytes | FilePart]:
        """The member ``key: value`` with the elements in ``parts`` (files of
        :meth:`write_elements` output, in order) at the :data:`STREAM` spot."""
        head, tail = (self._key(key) + self._encode(value, depth=1)).split(
            msgspec.json.encode(STREAM)
        )
        line_start = head.rfind(b"\n") + 1
        depth = (len(head) - line_start - len(head[line_start:].lstrip())) // max(self.indent, 1)
        yield head + brackets[:1]
        lead = 1  # the first element's comma
        for part in parts:
            if part.seek(0, os.SEEK_END) > lead:
                yield FilePart(part, lead)
                lead = 0
        if not lead:
            yield self._pad(depth)
        yield brackets[1:] + tail

    def close(self) -> bytes:
        return (b"{" if self.first else b"") + (b"\n}\n" if self.indent else b"}")
