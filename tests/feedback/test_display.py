"""The small status screen, rendered to PNG as a panel would show it."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from terminal.display import COLOURS, Screen, render, to_framebuffer


@pytest.mark.parametrize("tone", ["valid", "refused", "provisional", "error", "idle"])
def test_each_verdict_fills_the_panel_with_its_colour(tone: str, tmp_path: Path) -> None:
    image = render(Screen(tone, "Pass valable", "10,00 € — contre-paiement 9,60 €"), (320, 240))  # type: ignore[arg-type]
    path = tmp_path / f"{tone}.png"
    image.save(path)
    reread = Image.open(path).convert("RGB")
    background, ink = COLOURS[tone]  # type: ignore[index]
    assert reread.size == (320, 240)
    assert reread.getpixel((2, 237)) == background  # a corner, outside the text
    colours = {c for _, c in reread.getcolors(maxcolors=100_000)}
    assert ink in colours  # text was drawn


def test_text_stays_inside_the_panel_and_wraps() -> None:
    long_detail = "Pass non valable sur ce territoire (réservé à : département 24, commune 33063, commune 33318)."
    image = render(Screen("refused", "Hors territoire", long_detail), (240, 135))
    background, _ = COLOURS["refused"]
    # The right-hand margin column holds no ink: lines wrapped before the edge.
    assert {image.getpixel((239, y)) for y in range(135)} == {background}
    # The title and at least three lines of detail were drawn: bands of rows with ink, blank rows between.
    inked = [any(image.getpixel((x, y)) != background for x in range(240)) for y in range(135)]
    bands = sum(1 for y in range(1, 135) if inked[y] and not inked[y - 1])
    assert bands >= 4


def test_framebuffer_packing() -> None:
    image = Image.new("RGB", (2, 1), (255, 0, 0))
    image.putpixel((1, 0), (0, 0, 255))
    assert to_framebuffer(image, 32) == bytes([0, 0, 255, 0, 255, 0, 0, 0])  # BGRX: X is padding
    assert to_framebuffer(image, 16) == bytes([0x00, 0xF8, 0x1F, 0x00])  # RGB565 little-endian
    with pytest.raises(ValueError, match="24 bits"):
        to_framebuffer(image, 24)
    # Every colour, green (split across the two bytes) included, packs as the RGB565 formula says.
    colours = [(r, g, b) for r in (0, 7, 8, 200, 255) for g in (0, 3, 4, 28, 100, 252, 255) for b in (0, 7, 8, 255)]
    strip = Image.new("RGB", (len(colours), 1))
    strip.putdata(colours)
    expected = b"".join((((r & 0xF8) << 8) | ((g & 0xFC) << 3) | (b >> 3)).to_bytes(2, "little") for r, g, b in colours)
    assert to_framebuffer(strip, 16) == expected


def test_amounts_are_not_split_from_their_euro_sign() -> None:
    from terminal.display import REGULAR, _font, _wrap

    lines = _wrap("10,00\u00a0€ (contre-paiement 9,60\u00a0€), millésime 2026", _font(REGULAR, 17), 290)
    assert all(not line.startswith("€") for line in lines)
    assert any("9,60\u00a0€)" in line for line in lines)
