"""A statement as files to download: CSV for programs, CSV for spreadsheets, PDF for people.

The input is a statement document (:func:`central.services.statements.statement`), the output bytes; no
database, no request.

**CSV** — one line per service, one per funder (commanditaire), one total; every line repeats the
organisation, its SIRET, the month and the status, so each line stands alone (a filter in a spreadsheet, a
``csv.DictReader``). Two dialects:

* ``csv``: UTF-8 without BOM, ``,`` between cells, amounts in euros with a decimal point (``9.60``);
* ``tableur`` (what LibreOffice and Excel open by a double click in France): UTF-8 *with* a BOM (or Excel
  guesses Windows-1252), ``;`` between cells, decimal comma (``9,60``).

Formula injection (CWE-1236): a spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a
tab or carriage return before one) as a formula. Names come from people (an organisation, a funder), so every
text cell that starts with one of those characters gets a leading apostrophe, by hand in
:func:`neutralise` (OWASP's advice; no extra dependency): the spreadsheet shows the text as typed. Numeric
cells are written by this module from integers and are never negative.

**PDF** — A4, reportlab (already used by ``central.labels``), with DejaVu Sans embedded so that ``€`` and
the narrow no-break spaces of French amounts print; without the font file (``fonts-dejavu-core`` missing)
it falls back to Helvetica and plain spaces, readable all the same.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from aptic.money import NET_PER_PASS_CENTS, format_euros
from central.services.payments import french_date
from central.services.statements import month_label

FIELDS = ["organisation", "siret", "mois", "statut", "rubrique", "code", "libelle", "pass", "brut", "frais", "net"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


def neutralise(text: str) -> str:
    """``=HYPERLINK(...)`` → ``'=HYPERLINK(...)``: shown as text by a spreadsheet, never run."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _status(document: dict[str, Any]) -> str:
    return "provisoire" if document.get("status") != "closed" else "clos"


def rows(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The statement's lines as dicts with :data:`FIELDS` (amounts in cents): services, funders, total."""
    org = document["organisation"]
    common = {"organisation": org["name"], "siret": org["siret"], "mois": document["month"],
              "statut": _status(document)}  # fmt: skip

    def amounts(line: dict[str, Any]) -> dict[str, int]:
        return {"pass": line["passes"], "brut": line["gross_cents"], "frais": line["fee_cents"],
                "net": line["net_cents"]}  # fmt: skip

    for line in document["by_service"]:
        yield {**common, "rubrique": "service", "code": str(line["service"]), "libelle": line["title"],
               **amounts(line)}  # fmt: skip
    for line in document["by_commanditaire"]:
        yield {**common, "rubrique": "commanditaire", "code": "", "libelle": line["commanditaire"], **amounts(line)}
    yield {**common, "rubrique": "total", "code": "", "libelle": "Total du mois", **amounts(document)}


def _euros(cents: int, decimal: str) -> str:
    return f"{cents // 100}{decimal}{cents % 100:02d}"


def to_csv(document: dict[str, Any], *, spreadsheet: bool = False) -> bytes:
    """The statement as CSV bytes: plain (``,``, ``9.60``) or for spreadsheets (``;``, ``9,60``, BOM)."""
    decimal = "," if spreadsheet else "."
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, delimiter=";" if spreadsheet else ",", lineterminator="\r\n")
    writer.writeheader()
    for row in rows(document):
        cells = {key: (neutralise(value) if isinstance(value, str) else value) for key, value in row.items()}
        for key in ("brut", "frais", "net"):
            cells[key] = _euros(row[key], decimal)
        writer.writerow(cells)
    return out.getvalue().encode("utf-8-sig" if spreadsheet else "utf-8")


def filename(document: dict[str, Any], extension: str) -> str:
    """``contre-paiement-<siret>-<AAAA-MM>.<ext>``: ASCII only, safe in a Content-Disposition header."""
    return f"contre-paiement-{document['organisation']['siret']}-{document['month']}.{extension}"


# --- PDF ---------------------------------------------------------------------------------------------------

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 18 * mm
LINE = 5.2 * mm


def _fonts() -> tuple[str, str, bool]:
    """(regular, bold, unicode) font names: DejaVu Sans embedded when its files exist, else Helvetica."""
    regular, bold = FONT_DIR / "DejaVuSans.ttf", FONT_DIR / "DejaVuSans-Bold.ttf"
    if not (regular.is_file() and bold.is_file()):
        return "Helvetica", "Helvetica-Bold", False
    if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("DejaVuSans", str(regular)))
        pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(bold)))
    return "DejaVuSans", "DejaVuSans-Bold", True


class _Page:
    """A top-down writer on a canvas: text lines and table rows, with a new page when the bottom is reached."""

    def __init__(self, canvas: Canvas, regular: str, bold: str, unicode: bool, footer: str) -> None:
        self.canvas, self.regular, self.bold, self.unicode, self.footer = canvas, regular, bold, unicode, footer
        self.number = 1
        self.y = PAGE_HEIGHT - MARGIN

    def clean(self, text: str) -> str:
        # Helvetica (WinAnsi) has no narrow no-break space: a plain one reads the same.
        return text if self.unicode else text.replace("\u202f", " ")

    def need(self, height: float) -> None:
        if self.y - height < MARGIN + 8 * mm:
            self._footer()
            self.canvas.showPage()
            self.number += 1
            self.y = PAGE_HEIGHT - MARGIN

    def _footer(self) -> None:
        self.canvas.setFont(self.regular, 8)
        self.canvas.drawString(MARGIN, MARGIN - 4 * mm, self.clean(f"{self.footer} — page {self.number}"))

    def text(self, text: str, size: float = 10, bold: bool = False, gap: float = LINE) -> None:
        self.need(gap)
        self.canvas.setFont(self.bold if bold else self.regular, size)
        self.canvas.drawString(MARGIN, self.y, self.clean(text))
        self.y -= gap

    def row(self, cells: list[str], widths: list[float], bold: bool = False, rule: bool = False) -> None:
        """One table row: the first cell left-aligned (cut to fit), the others right-aligned."""
        self.need(LINE)
        font, size = (self.bold if bold else self.regular), 9
        self.canvas.setFont(font, size)
        x = MARGIN
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            cell = self.clean(cell)
            if i == 0:
                while len(cell) > 1 and stringWidth(cell, font, size) > width - 2 * mm:
                    cell = cell[:-2].rstrip() + "…"
                self.canvas.drawString(x, self.y, cell)
            else:
                self.canvas.drawRightString(x + width, self.y, cell)
            x += width
        if rule:
            self.canvas.setLineWidth(0.4)
            self.canvas.line(MARGIN, self.y - 1.6 * mm, PAGE_WIDTH - MARGIN, self.y - 1.6 * mm)
        self.y -= LINE

    def close(self) -> None:
        self._footer()
        self.canvas.save()


def to_pdf(document: dict[str, Any]) -> bytes:
    """The statement as an A4 PDF: organisation, month, status, lines per service and per funder, totals."""
    regular, bold, unicode = _fonts()
    buffer = io.BytesIO()
    org = document["organisation"]
    label = month_label(document["month"])
    canvas = Canvas(buffer, pagesize=A4, pageCompression=1)
    canvas.setTitle(f"Relevé de contre-paiement — {org['name']} — {label}")
    canvas.setAuthor("Pass numérique #APTIC")
    page = _Page(canvas, regular, bold, unicode, f"{org['name']} — relevé de {label}")
    page.text("Pass numérique #APTIC — relevé de contre-paiement", 15, bold=True, gap=9 * mm)
    page.text(org["name"], 12, bold=True, gap=6 * mm)
    page.text(f"SIRET {org['siret']}", 10)
    page.text(f"Mois : {label}", 10)
    if document.get("status") == "closed":
        paid = document.get("paid_at")
        page.text("Mois clos. " + (f"Payé le {french_date(paid)}." if paid else "En attente de paiement."), 10)
    else:
        page.text("Relevé provisoire : le mois n’est pas clos, d’autres pass peuvent s’y ajouter.", 10)
    page.text(f"Chaque pass de 10 € accepté est payé {format_euros(NET_PER_PASS_CENTS)} (frais de 4 %).", 10,
              gap=9 * mm)  # fmt: skip
    content = PAGE_WIDTH - 2 * MARGIN
    widths = [content - 4 * 26 * mm, 18 * mm, 30 * mm, 26 * mm, 30 * mm]
    header = ["", "Pass", "Brut", "Frais", "Net"]

    def amounts(line: dict[str, Any]) -> list[str]:
        return [str(line["passes"]), format_euros(line["gross_cents"]), format_euros(line["fee_cents"]),
                format_euros(line["net_cents"])]  # fmt: skip

    for title, lines, name in (
        ("Par service", document["by_service"], lambda line: f"{line['service']}. {line['title']}".strip()),
        ("Par commanditaire", document["by_commanditaire"], lambda line: line["commanditaire"]),
    ):
        page.need(3 * LINE)
        page.row([title, *header[1:]], widths, bold=True, rule=True)
        for line in lines:
            page.row([name(line), *amounts(line)], widths)
        if not lines:
            page.row(["Aucun pass ce mois-ci.", "", "", "", ""], widths)
        page.y -= LINE
    page.row(["Total du mois", *amounts(document)], widths, bold=True, rule=True)
    page.y -= LINE / 2
    for note in document.get("notes", []):
        page.text(note, 9)
    page.close()
    return buffer.getvalue()
