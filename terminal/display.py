"""A small status screen (optional hardware): the verdict drawn with Pillow for an SPI panel or a framebuffer.

Some terminals have no touchscreen, only a 2-3 inch panel beside the douchette. The same verdicts as the
kiosk page are drawn into a Pillow image: the colour says the verdict from across the room, the title says
it in words, the detail line gives the amount or the reason.

>>> image = render(Screen("valid", "Pass valable", "10,00 € — Département de la Gironde"))
>>> image.size
(320, 240)

``to_framebuffer()`` packs an image for ``/dev/fbN`` (16 bits RGB565 or 32 bits BGRX, as the panel's
``bits_per_pixel`` in sysfs says); an SPI driver such as luma.lcd takes the Pillow image itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Literal, cast

from PIL import Image, ImageChops, ImageDraw, ImageFont

Tone = Literal["valid", "refused", "provisional", "error", "idle"]

# Background and text colours per verdict: the same meaning as the LEDs and the kiosk page.
COLOURS: dict[Tone, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "valid": ((0, 122, 61), (255, 255, 255)),
    "refused": ((190, 30, 45), (255, 255, 255)),
    "provisional": ((240, 160, 0), (20, 20, 20)),
    "error": ((90, 90, 90), (255, 255, 255)),
    "idle": ((245, 245, 240), (20, 20, 20)),
}
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
REGULAR = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@dataclass(frozen=True, slots=True)
class Screen:
    """What the panel shows: a tone (its colour), a title and a detail line or two."""

    tone: Tone
    title: str
    detail: str = ""


@cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    if os.path.exists(path):
        return ImageFont.truetype(path, size)
    # Pillow's own scalable font when DejaVu is not installed (its wheels always carry FreeType).
    return cast(ImageFont.FreeTypeFont, ImageFont.load_default(size))


def render(screen: Screen, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """Draw the screen into a new RGB image of ``size`` pixels."""
    width, height = size
    background, ink = COLOURS[screen.tone]
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    margin = width // 20
    title_font = _font(BOLD, max(12, height // 7))
    detail_font = _font(REGULAR, max(10, height // 14))

    y = margin
    for text, font, spacing, lines in ((screen.title, title_font, 1.25, 2), (screen.detail, detail_font, 1.3, 4)):
        for line in _wrap(text, font, width - 2 * margin)[:lines]:
            draw.text((margin, y), line, font=font, fill=ink)
            y += int(font.size * spacing)
        y += margin // 2
    return image


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy word wrap by measured width (a word longer than the line is left to overflow alone)."""
    lines: list[str] = []
    for word in filter(None, text.split(" ")):  # not split(): it would break "9,60\u00a0€" apart
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def to_framebuffer(image: Image.Image, bits_per_pixel: int) -> bytes:
    """Raw bytes for a Linux framebuffer: 32 bpp as BGRX, 16 bpp as little-endian RGB565."""
    rgb = image.convert("RGB")
    if bits_per_pixel == 32:
        return rgb.tobytes("raw", "BGRX")
    if bits_per_pixel == 16:
        # Pillow has no RGB565 packer any more: build the two bytes of each pixel as two 8-bit bands
        # (the bit fields do not overlap, so adding them is OR-ing them) and interleave them, low byte first.
        r, g, b = rgb.split()
        high = ImageChops.add(r.point(lambda v: v & 0xF8), g.point(lambda v: v >> 5))
        low = ImageChops.add(g.point(lambda v: (v & 0x1C) << 3), b.point(lambda v: v >> 3))
        return Image.merge("LA", (low, high)).tobytes()
    raise ValueError(f"unsupported framebuffer depth: {bits_per_pixel} bits per pixel")


def write_framebuffer(image: Image.Image, device: str = "/dev/fb1") -> None:
    """Show ``image`` on a framebuffer, reading its depth from sysfs (``/sys/class/graphics/fbN``)."""
    name = os.path.basename(device)
    with open(f"/sys/class/graphics/{name}/bits_per_pixel") as f:
        bits = int(f.read())
    with open(device, "wb") as fb:
        fb.write(to_framebuffer(image, bits))
