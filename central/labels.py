"""A kit's label: the PDF that goes in the box with a new terminal (``aptic-central add-kit --label``).

The label has two parts, on either side of a dashed fold line:

* the **front** names the kit: its number as text, as a Code 128 barcode and as a QR code, so whoever handles
  the box can type it, scan it with a douchette or with a phone;
* **under the line**, the single-use activation code, in a box meant to be covered with a scratch-off sticker
  or folded behind the front. Whoever installs the terminal uncovers it then, not before.

The activation code is printed as text only, never in a barcode or a QR code: a photo of the front, or a
scanner passing over the box, must never read it. Both symbols hold the kit number and nothing else, which
``tests/central/test_central_labels.py`` checks with a real decoder (zbar) on the rendered page.

The page is **A6 portrait (105 × 148 mm)**: any office printer takes it (print "actual size", not "fit"),
four of them make an A4 sheet of labels, and it is close to the 100 × 150 mm of thermal shipping-label
printers. The texts are French: the label is read in French médiathèques and social centres.

This module only draws: it knows no database. :func:`render_label` returns the PDF's bytes and the caller
decides where they go (the CLI writes them as privately as the activation file: the PDF holds the code too).
"""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.code128 import Code128
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A6
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

PAGE_WIDTH, PAGE_HEIGHT = A6
MARGIN = 8 * mm
PARIS = ZoneInfo("Europe/Paris")  # the scheme's local time, as in central.services.common (kept free of its imports)

TITLE = "Pass #APTIC — kit de terminal"
CODE_HEADING = "Code d'activation — à découvrir à l'installation"
FOLD_HINT = "Couvrir le code d'une pastille à gratter, ou replier le bas de l'étiquette derrière ce pointillé."
SYMBOLS_NOTE = "Le code-barres et le QR code ne contiennent que le numéro du kit."


def _fit(text: str, font: str, size: float, width: float, smallest: float = 6) -> tuple[str, float]:
    """``text`` and a font size at which it fits in ``width``: smaller first, then cut with an ellipsis.

    An organisation's name can be long ("Centre communal d'action sociale de ..."); a label that overflows its
    page would lose the end of the name, silently, at the printer.
    """
    while size > smallest and stringWidth(text, font, size) > width:
        size -= 0.5
    while len(text) > 1 and stringWidth(text, font, size) > width:
        text = text[:-2].rstrip() + "…"
    return text, size


def _centred(canvas: Canvas, text: str, font: str, size: float, y: float) -> None:
    text, size = _fit(text, font, size, PAGE_WIDTH - 2 * MARGIN)
    canvas.setFont(font, size)
    canvas.drawCentredString(PAGE_WIDTH / 2, y, text)


def _code128(canvas: Canvas, value: str, y: float) -> float:
    """Draw ``value`` as a Code 128 barcode centred at height ``y``; return its top.

    0.33 mm bars (the size most douchettes are tuned for) keep the module wide enough for a 300 dpi printer
    and a phone camera; reportlab adds the quiet zones (10 modules) on both sides.
    """
    barcode = Code128(value, barWidth=0.33 * mm, barHeight=13 * mm, humanReadable=False)
    if barcode.width > PAGE_WIDTH - 2 * MARGIN:  # a longer kit number than AK-12345678: narrower bars
        barcode = Code128(value, barWidth=0.33 * mm * (PAGE_WIDTH - 2 * MARGIN) / barcode.width,
                          barHeight=13 * mm, humanReadable=False)  # fmt: skip
    barcode.drawOn(canvas, (PAGE_WIDTH - barcode.width) / 2, y)
    return y + barcode.height


def _qr(canvas: Canvas, value: str, y: float, size: float) -> None:
    """Draw ``value`` as a QR code of ``size`` (quiet zone included) centred at height ``y``.

    Level M (15 % of the symbol can be lost): a label gets scratched and folded.
    """
    widget = QrCodeWidget(value, barLevel="M")
    x0, y0, x1, y1 = widget.getBounds()
    drawing = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
    drawing.add(widget)
    renderPDF.draw(drawing, canvas, (PAGE_WIDTH - size) / 2, y)


def render_label(
    kit_number: str,
    activation_code: str,
    *,
    organisation: str | None = None,
    expires_at: datetime | None = None,
) -> bytes:
    """The label of ``kit_number`` as a one-page A6 PDF (see the module's docstring for its layout).

    ``organisation`` (the name printed under the title) tells apart kits prepared for several places;
    ``expires_at`` (an aware datetime) prints until when the code works, in Paris time: an installer who
    finds it expired knows to ask for a new one rather than retype it.

    >>> pdf = render_label("AK-12345678", "7QX4-PM2K", organisation="Médiathèque de Cenon")
    >>> pdf[:5]
    b'%PDF-'
    """
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A6)
    # The document's metadata are shown by any PDF viewer's "properties": the kit number, never the code.
    canvas.setTitle(f"Étiquette du kit {kit_number}")
    canvas.setAuthor("aptic-central")
    canvas.setCreator("aptic-central")
    canvas.setSubject("Pass #APTIC : numéro de kit et code d'activation")

    # The front, from the top down.
    top = PAGE_HEIGHT - MARGIN
    _centred(canvas, TITLE, "Helvetica-Bold", 11, top - 4 * mm)
    if organisation:
        _centred(canvas, organisation, "Helvetica", 9, top - 9.5 * mm)
    _centred(canvas, "Numéro de kit", "Helvetica", 8, top - 16 * mm)
    _centred(canvas, kit_number, "Helvetica-Bold", 20, top - 23.5 * mm)
    _code128(canvas, kit_number, top - 40 * mm)
    _qr(canvas, kit_number, top - 72 * mm, 30 * mm)
    _centred(canvas, SYMBOLS_NOTE, "Helvetica-Oblique", 6.5, top - 76 * mm)

    # The fold line: dashed, across the whole page so a fold or a cut follows it.
    fold = 58 * mm
    canvas.saveState()
    canvas.setDash(3, 2)
    canvas.setLineWidth(0.6)
    canvas.line(3 * mm, fold, PAGE_WIDTH - 3 * mm, fold)
    canvas.restoreState()
    _centred(canvas, FOLD_HINT, "Helvetica", 5.5, fold + 1.5 * mm)

    # Under the line: the code, as text only.
    _centred(canvas, CODE_HEADING, "Helvetica-Bold", 9.5, fold - 7 * mm)
    box_width, box_height, box_bottom = 62 * mm, 17 * mm, fold - 28 * mm
    canvas.setLineWidth(1)
    canvas.rect((PAGE_WIDTH - box_width) / 2, box_bottom, box_width, box_height)
    # Courier: every character the same width, and the code's alphabet already avoids 0/O and 1/I/L.
    _centred(canvas, activation_code, "Courier-Bold", 24, box_bottom + 5.5 * mm)
    _centred(canvas, f"Kit {kit_number} · code à usage unique", "Helvetica", 7.5, box_bottom - 5 * mm)
    if expires_at is not None:
        until = expires_at.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")
        _centred(canvas, f"Valable jusqu'au {until} (heure de Paris).", "Helvetica", 7.5, box_bottom - 9 * mm)
    _centred(canvas, "Code perdu ou expiré : le central en donne un nouveau (aptic-central reissue-code).",
             "Helvetica", 6.5, box_bottom - 13 * mm)  # fmt: skip

    canvas.showPage()
    canvas.save()
    return out.getvalue()
