"""Joining PDF files into one PDF, written as it goes: memory holds one part, never the whole document.

A big print (``central.services.carnet_print``) is drawn as parts, each a PDF file of a hundred pages that
reportlab writes in bounded memory; :func:`join` then writes their pages, in order, as one document.

Why not qpdf's own merge (``pikepdf``: ``whole.pages.extend(part.pages)`` then ``whole.save(out)``)? It
keeps the whole document's object graph until ``save``, and pikepdf opens every file with qpdf's
``setImmediateCopyFrom(true)`` (so that a source may be closed before the copy is saved): each copied
page's content stream is read into memory at once. Measured on carnets: about 13 MB per 1,000 pages, the
same order as reportlab's 25 MB that the parts avoid. Here qpdf (through pikepdf) only *reads*, one part at a
time, and this module *writes*: each page of a part, with the objects it reaches (content stream, fonts,
form XObjects...), is renumbered and written out at once, stream data as it is stored (no decoding, no
recompression). What stays in memory for the whole document is a table of object offsets (8 bytes an
object, a few objects a page) and the page tree's upper level.

The page tree has two levels: leaves of at most :data:`PAGES_PER_NODE` pages under one root. A page's
``/Parent`` must be known when the page is written, so each leaf gets its number when its first page comes,
and is written when full. The catalogue, the root and the cross-reference table come last (a PDF's objects
may come in any order: the table says where each one is). The document information (title, author...) is the
first part's; the parts' own catalogues and page trees are dropped, as is anything not reached from a page
(outlines, forms: parts made by :class:`central.carnets_pdf.CarnetsPdf` have none).
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import pikepdf

PAGES_PER_NODE = 256
_PARENT = frozenset({"/Parent"})  # a page's parent is the joined tree's leaf, not the part's


class _Writer:
    """Numbers objects, writes them to ``out`` and remembers where each one starts."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.position = 0
        self.offsets = array("Q")  # offsets[n - 1]: where object n starts

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.position += len(data)

    def allocate(self) -> int:
        self.offsets.append(0)
        return len(self.offsets)

    def begin(self, number: int) -> None:
        self.offsets[number - 1] = self.position
        self.write(b"%d 0 obj\n" % number)

    def direct(self, number: int, body: bytes) -> None:
        self.begin(number)
        self.write(body + b"\nendobj\n")

    def finish(self, root: int, info: int | None) -> None:
        """The cross-reference table and the trailer (every allocated object must have been written)."""
        start = self.position
        self.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(self.offsets) + 1))
        for first in range(0, len(self.offsets), 1024):  # 20 bytes a row: written in blocks, not built whole
            self.write(b"".join(b"%010d 00000 n \n" % offset for offset in self.offsets[first : first + 1024]))
        trailer = b"/Size %d /Root %d 0 R" % (len(self.offsets) + 1, root)
        if info is not None:
            trailer += b" /Info %d 0 R" % info
        self.write(b"trailer\n<< " + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % start)


class _Part:
    """One source file being copied: its objects' new numbers, and those still to write."""

    def __init__(self, writer: _Writer) -> None:
        self.writer = writer
        self.numbers: dict[tuple[int, int], int] = {}
        self.pending: deque[pikepdf.Object] = deque()
        self.written: set[int] = set()

    def number(self, obj: pikepdf.Object) -> int:
        """The output number of indirect object ``obj``, queued to be written on first sight."""
        key = obj.objgen
        if key not in self.numbers:
            self.numbers[key] = self.writer.allocate()
            self.pending.append(obj)
        return self.numbers[key]

    def unparse(self, obj: pikepdf.Object, skip: frozenset[str] = frozenset(), extra: bytes = b"") -> bytes:
        """``obj`` in PDF syntax, its references renumbered; a dictionary without the keys ``skip``, with the
        entries ``extra`` (PDF syntax) added."""
        if isinstance(obj, pikepdf.Dictionary | pikepdf.Stream):  # a stream: its dictionary
            entries = obj.stream_dict if isinstance(obj, pikepdf.Stream) else obj
            items = [pikepdf.Name(k).unparse() + b" " + self.value(v) for k, v in entries.items() if k not in skip]
            return b"<< " + b" ".join([*items, extra]) + b" >>"
        if isinstance(obj, pikepdf.Array):
            return b"[ " + b" ".join(self.value(v) for v in obj) + b" ]"
        return obj.unparse()  # a name, string, number, boolean or null: no reference inside

    def value(self, obj: pikepdf.Object) -> bytes:
        return b"%d 0 R" % self.number(obj) if obj.is_indirect else self.unparse(obj)

    def write(self, obj: pikepdf.Object, skip: frozenset[str] = frozenset(), extra: bytes = b"") -> int:
        """Write indirect object ``obj`` (unless it already was), without the keys ``skip`` and with the entries
        ``extra``, then every object it reaches; return its number."""
        number = self.number(obj)
        if number not in self.written:
            self._emit(obj, number, skip, extra)
        while self.pending:
            queued = self.pending.popleft()
            if self.numbers[queued.objgen] not in self.written:
                self._emit(queued, self.numbers[queued.objgen])
        return number

    def _emit(self, obj: pikepdf.Object, number: int, skip: frozenset[str] = frozenset(), extra: bytes = b"") -> None:
        self.written.add(number)
        if isinstance(obj, pikepdf.Stream):
            raw = obj.read_raw_bytes()  # as stored: still compressed, filters unchanged
            head = self.unparse(obj, skip | {"/Length"}, extra + b" /Length %d" % len(raw))
            self.writer.begin(number)
            self.writer.write(head + b"\nstream\n")
            self.writer.write(raw)
            self.writer.write(b"\nendstream\nendobj\n")
        else:
            self.writer.direct(number, self.unparse(obj, skip, extra))


def join(parts: Iterable[Path], out: BinaryIO, pages_per_node: int = PAGES_PER_NODE) -> int:
    """Write the pages of the PDF files ``parts``, in order, as one PDF to ``out``; return its page count.

    ``out`` need not be seekable (offsets are counted, not asked). Each part is opened, copied and closed in
    turn, so a part may be deleted as soon as the next one starts.
    """
    writer = _Writer(out)
    writer.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    root, catalogue = writer.allocate(), writer.allocate()
    leaves: list[int] = []
    kids: list[int] = []
    info: int | None = None
    pages = 0

    def close_leaf() -> None:
        refs = b" ".join(b"%d 0 R" % kid for kid in kids)
        writer.direct(leaves[-1], b"<< /Type /Pages /Parent %d 0 R /Kids [ %s ] /Count %d >>" % (root, refs, len(kids)))
        kids.clear()

    for path in parts:
        with pikepdf.open(path, conversion_mode="explicit") as source:
            part = _Part(writer)
            if info is None and "/Info" in source.trailer:
                info = writer.allocate()
                writer.direct(info, part.unparse(source.trailer.Info))
            for page in source.pages:
                if not kids:
                    leaves.append(writer.allocate())
                kids.append(part.write(page.obj, _PARENT, b"/Parent %d 0 R" % leaves[-1]))
                pages += 1
                if len(kids) == pages_per_node:
                    close_leaf()
    if kids:
        close_leaf()
    refs = b" ".join(b"%d 0 R" % leaf for leaf in leaves)
    writer.direct(root, b"<< /Type /Pages /Kids [ %s ] /Count %d >>" % (refs, pages))
    writer.direct(catalogue, b"<< /Type /Catalog /Pages %d 0 R >>" % root)
    writer.finish(catalogue, info)
    return pages
