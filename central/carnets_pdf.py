"""Printed carnets: the PDF a funder's order becomes (``aptic-central print-carnets``).

The document has two parts:

* the **lettre d’orientation**, first: who funds the passes, how many carnets and passes, their value, when
  and where they can be used, and a list of qualified places (name, address, opening hours) where a
  beneficiary can present them. It takes one page, or more when the list is long.
* the **carnets**, then: **one A4 page per carnet**. The page is a grid of 2 columns × 5 rows of passes
  (105 × 56 mm each, cut along the dashed lines); a carnet of 5 fills the left column, a carnet of 10 the
  whole page, in reading order (position 1 top left, 2 top right...). Each pass shows the value, the funder,
  the validity, the conditions of use, a **Code 128** barcode of its 18 digits and the number as printed
  under the barcode (``1 26 0001234 07 5821 12``), so it can be scanned with a douchette or typed.

What is the same on every pass of an order (title, value, funder, validity, conditions) is drawn once, as a
PDF form (an XObject) that each pass reuses: a page then holds only its barcodes and numbers, which keeps
big orders' files small. Barcodes use 0.33 mm bars, 12 mm high, with reportlab's quiet zones (10 modules):
what most douchettes are tuned for, and four pixels a bar for a 300 dpi printer.
``tests/central/test_carnet_print.py`` reads every barcode back with zbar from the page rendered by poppler.

This module only draws: it knows no database. :class:`CarnetsPdf` is fed a letter and/or carnets (``showPage``
per carnet). reportlab keeps each finished page (about 25 kB) until :meth:`CarnetsPdf.close` writes the file,
so a big order is not drawn as one ``CarnetsPdf``: ``central.services.carnet_print`` draws it in parts (the
letter, then 100 carnets at a time, each a file with its own copy of the shared pass face) that
``central.pdf_join`` joins into one document as they come, in bounded memory (``bench/carnet_print.py``).

Standard PDF fonts (Helvetica, Courier) are used, in their WinAnsi encoding: the narrow no-break space
(U+202F) that French typography puts in amounts is printed as a no-break space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import BinaryIO

from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.colors import Color
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from aptic.money import format_euros
from aptic.passnumber import format_pass
from aptic.rules import format_date

PAGE_WIDTH, PAGE_HEIGHT = A4
COLUMNS, ROWS = 2, 5
HEADER = 11 * mm  # above the grid: which carnet this page is
FOOTER = 6 * mm
CELL_WIDTH = PAGE_WIDTH / COLUMNS
CELL_HEIGHT = (PAGE_HEIGHT - HEADER - FOOTER) / ROWS
PAD = 7 * mm  # inside a cell: clear of the cut and of a printer's unprintable margin
BAR_WIDTH = 0.33 * mm
BAR_HEIGHT = 12 * mm
MARGIN = 20 * mm  # the letter's
GREY = Color(0.55, 0.55, 0.55)
FORM = "aptic_pass"
ANYWHERE = "Dans tout lieu qualifié #APTIC (voir la lettre d’orientation)."


def printable(text: str) -> str:
    """``text`` in what the standard fonts' WinAnsi encoding holds: U+202F (in amounts) becomes U+00A0."""
    return text.replace("\u202f", "\xa0")


def fit(text: str, font: str, size: float, width: float, smallest: float = 5.5) -> tuple[str, float]:
    """``text`` and a font size at which it fits in ``width``: smaller first, then cut with an ellipsis."""
    text = printable(text)
    while size > smallest and stringWidth(text, font, size) > width:
        size -= 0.5
    while len(text) > 1 and stringWidth(text, font, size) > width:
        text = text[:-2].rstrip() + "…"
    return text, size


@dataclass(frozen=True, slots=True)
class PlaceLine:
    """A place of the letter's list: name, address and opening hours as sentences."""

    name: str
    address: str
    hours: str


@dataclass(frozen=True, slots=True)
class Letter:
    """What the lettre d’orientation and the passes' common face say about an order."""

    order_id: int
    funder: str
    millesime: int
    value_cents: int
    carnet_size: int
    carnets: int  # carnets printed
    valid_from: date
    valid_until: date
    conditions: Sequence[str]  # where and for what, in French sentences (empty: no restriction)
    places: Sequence[PlaceLine] = field(default_factory=tuple)
    places_total: int = 0  # qualified places where the passes work, listed or not
    printed_on: date | None = None

    @property
    def passes(self) -> int:
        return self.carnets * self.carnet_size

    @property
    def value(self) -> str:
        return printable(format_euros(self.value_cents))

    @property
    def validity(self) -> str:
        return f"Valable du {format_date(self.valid_from)} au {format_date(self.valid_until)}"


@dataclass(frozen=True, slots=True)
class CarnetSheet:
    """One carnet to print: its 10-digit id and its passes' 18 digits, by position."""

    carnet: str
    passes: Sequence[str]


class CarnetsPdf:
    """A PDF being written to ``out``: call :meth:`letter` once, :meth:`carnet` for each carnet, :meth:`close`.

    >>> import io
    >>> from aptic.passnumber import build
    >>> out = io.BytesIO()
    >>> pdf = CarnetsPdf(out, Letter(1, "Ville de Cenon", 2026, 1000, 5, 1, date(2026, 1, 1), date(2026, 12, 31), []))
    >>> pdf.letter()
    >>> pdf.carnet(CarnetSheet("1260000001", [build(2026, 1, p, lambda _: 42) for p in range(1, 6)]))
    >>> pdf.close()
    >>> out.getvalue()[:5], pdf.pages
    (b'%PDF-', 2)
    """

    def __init__(self, out: BinaryIO, letter: Letter) -> None:
        self.info = letter
        self.pages = 0
        self.canvas = Canvas(out, pagesize=A4, pageCompression=1)
        self.canvas.setTitle(f"Carnets Pass #APTIC — commande {letter.order_id} — {letter.funder}")
        self.canvas.setAuthor("aptic-central")
        self.canvas.setCreator("aptic-central")
        self.canvas.setSubject("Lettre d’orientation et carnets de pass #APTIC")
        self._form_drawn = False

    # The letter ---------------------------------------------------------------------------------------------

    def letter(self) -> None:
        """The lettre d’orientation: one page, more if its list of places needs them."""
        info, c = self.info, self.canvas
        width = PAGE_WIDTH - 2 * MARGIN
        y = PAGE_HEIGHT - MARGIN

        def line(text: str, font: str = "Helvetica", size: float = 10, gap: float = 1.35, indent: float = 0) -> None:
            nonlocal y
            for part in simpleSplit(printable(text), font, size, width - indent):
                if y < MARGIN + size:
                    self._end_page()
                    y = PAGE_HEIGHT - MARGIN
                c.setFont(font, size)
                c.drawString(MARGIN + indent, y - size, part)
                y -= size * gap

        def space(points: float) -> None:
            nonlocal y
            y -= points

        line("Pass #APTIC — lettre d’orientation", "Helvetica-Bold", 16)
        if info.printed_on is not None:
            line(f"Édition du {format_date(info.printed_on)} · commande n°\xa0{info.order_id}", size=9)
        space(6)
        line(f"Ces pass vous sont offerts par {info.funder}.", "Helvetica-Bold", 11)
        line(
            f"{info.carnets} carnet{'s' if info.carnets > 1 else ''} de {info.carnet_size} pass, soit {info.passes} "
            f"pass d’une valeur de {info.value} chacun, millésime {info.millesime}."
        )
        line(f"{info.validity}.")
        for condition in info.conditions:
            line(condition)
        space(6)
        line("Comment les utiliser", "Helvetica-Bold", 11)
        line(
            "Chaque pass paie un service de médiation numérique (accompagnement pour une démarche en ligne, "
            "initiation à l’ordinateur ou au smartphone, atelier…) dans un lieu qualifié #APTIC. Présentez "
            "vos pass à l’accueil : le médiateur les scanne ou saisit leur numéro. Un pass ne sert qu’une fois ; "
            "gardez les autres pour vos prochaines visites."
        )
        space(6)
        line("Où utiliser vos pass", "Helvetica-Bold", 11)
        if not info.places:
            line("Aucun lieu qualifié n’est encore inscrit sur ce territoire : renseignez-vous auprès de "
                 f"{info.funder}.")  # fmt: skip
        for place in info.places:
            space(3)
            line(place.name, "Helvetica-Bold", 9.5, gap=1.25)
            if place.address:
                line(place.address, size=9, gap=1.25, indent=4 * mm)
            if place.hours:
                line(place.hours, "Helvetica-Oblique", 8.5, gap=1.25, indent=4 * mm)
        others = info.places_total - len(info.places)
        if others > 0:
            space(4)
            line(f"… et {others} autre{'s' if others > 1 else ''} lieu{'x' if others > 1 else ''} qualifié"
                 f"{'s' if others > 1 else ''} : la liste complète est sur aptic.fr.", size=9)  # fmt: skip
        self._end_page()

    # The carnets --------------------------------------------------------------------------------------------

    def _pass_form(self) -> None:
        """The face shared by every pass of the order, drawn once (cell coordinates, origin bottom left)."""
        info, c = self.info, self.canvas
        c.beginForm(FORM, lowerx=0, lowery=0, upperx=CELL_WIDTH, uppery=CELL_HEIGHT)
        inner = CELL_WIDTH - 2 * PAD
        top = CELL_HEIGHT - PAD
        c.setFont("Helvetica-Bold", 11)
        c.drawString(PAD, top - 10, "Pass #APTIC")
        c.setFont("Helvetica-Bold", 15)
        c.drawRightString(CELL_WIDTH - PAD, top - 12, info.value)
        text, size = fit(f"Offert par {info.funder}", "Helvetica", 8, inner)
        c.setFont("Helvetica", size)
        c.drawString(PAD, top - 22, text)
        c.setFont("Helvetica", 7.5)
        c.drawString(PAD, top - 31, f"{info.validity} (millésime {info.millesime})")
        conditions = [s for s in info.conditions if s] or [ANYWHERE]
        c.setFillColor(GREY)
        for i, condition in enumerate(conditions[:2]):
            text, size = fit(condition, "Helvetica", 6.5, inner)
            c.setFont("Helvetica", size)
            c.drawString(PAD, PAD - 1 + (1 - i) * 8, text)
        c.endForm()
        self._form_drawn = True

    def carnet(self, sheet: CarnetSheet) -> None:
        """One page: the carnet's passes in the grid, then ``showPage`` (nothing of it is kept afterwards)."""
        if not self._form_drawn:
            self._pass_form()
        c, info = self.canvas, self.info
        carnet = f"{sheet.carnet[0]} {sheet.carnet[1:3]} {sheet.carnet[3:]}"
        c.setFont("Helvetica-Bold", 9)
        c.drawString(PAD, PAGE_HEIGHT - 7 * mm, f"Carnet {carnet}")
        text, size = fit(f"{len(sheet.passes)} pass · {info.funder} · commande n°\xa0{info.order_id}", "Helvetica",
                         8, CELL_WIDTH)  # fmt: skip
        c.setFont("Helvetica", size)
        c.drawRightString(PAGE_WIDTH - PAD, PAGE_HEIGHT - 7 * mm, text)
        for index, digits in enumerate(sheet.passes):
            column, row = index % COLUMNS, index // COLUMNS
            x = column * CELL_WIDTH
            y = PAGE_HEIGHT - HEADER - (row + 1) * CELL_HEIGHT
            self._pass(x, y, digits, index + 1, len(sheet.passes))
        self._cut_lines(len(sheet.passes))
        self._end_page()

    def _pass(self, x: float, y: float, digits: str, position: int, size: int) -> None:
        c = self.canvas
        c.saveState()
        c.translate(x, y)
        c.doForm(FORM)
        barcode = Code128(digits, barWidth=BAR_WIDTH, barHeight=BAR_HEIGHT, humanReadable=False)
        bottom = PAD + 32
        barcode.drawOn(c, (CELL_WIDTH - barcode.width) / 2, bottom)
        c.setFont("Courier-Bold", 12)
        c.drawCentredString(CELL_WIDTH / 2, bottom - 12, format_pass(digits))
        c.setFont("Helvetica", 6.5)
        c.drawRightString(CELL_WIDTH - PAD, CELL_HEIGHT - PAD - 31, f"pass {position}/{size}")
        c.restoreState()

    def _cut_lines(self, passes: int) -> None:
        """Dashed lines around the cells in use, where the scissors go."""
        c = self.canvas
        rows = (passes + COLUMNS - 1) // COLUMNS
        columns = min(passes, COLUMNS)
        top = PAGE_HEIGHT - HEADER
        c.saveState()
        c.setDash(3, 2)
        c.setLineWidth(0.4)
        c.setStrokeColor(GREY)
        for row in range(rows + 1):
            c.line(0, top - row * CELL_HEIGHT, columns * CELL_WIDTH, top - row * CELL_HEIGHT)
        for column in range(1, columns):
            c.line(column * CELL_WIDTH, top, column * CELL_WIDTH, top - rows * CELL_HEIGHT)
        c.restoreState()

    def _end_page(self) -> None:
        self.canvas.showPage()
        self.pages += 1

    def close(self) -> None:
        """Write the end of the PDF (its cross-reference table) to ``out``."""
        self.canvas.save()
