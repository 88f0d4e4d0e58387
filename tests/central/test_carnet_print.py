"""Printed carnets (``aptic-central print-carnets``): the PDF is read back by real tools, as a printer and a
douchette would meet it.

poppler renders the pages at print resolution (``pdftoppm -r 300``) and extracts the text (``pdftotext``);
zbar decodes every barcode of every page (``zbarimg``), sharp, blurred, and rendered at half the resolution.
The order is made and printed through the command line on a real SQLite database. The Debian packages come
from ``scripts/bootstrap test`` (poppler-utils, zbar-tools); without them these tests fail, never skip.
"""

from __future__ import annotations

import doctest
import json
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from PIL import Image, ImageFilter
from pypdf import PdfReader

from aptic.passnumber import format_pass, hmac_authenticator
from central import carnets_pdf, cli, config
from central.db import make_engine
from central.services import carnet_print

FUNDER = "Département de la Gironde"


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    missing = [tool for tool in ("pdftoppm", "pdftotext", "zbarimg") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install poppler-utils zbar-tools (scripts/bootstrap test)")


class Central:
    """``aptic-central`` on a SQLite database in a temporary folder."""

    def __init__(self, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.folder = folder
        self.capsys = capsys

    def run(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = cli.main([*argv, "--data-dir", str(self.folder)])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str) -> dict:
        code, out, err = self.run(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def central(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Central:
    c = Central(tmp_path, capsys)
    cenon = c.json("add-organisation", "--name", "Médiathèque de Cenon", "--siret", "12345678901234")["id"]
    paris = c.json("add-organisation", "--name", "EPN du Marais", "--siret", "98765432109876")["id"]
    c.json("add-point", "--organisation", str(cenon), "--name", "Médiathèque Jacques-Ellul", "--insee", "33119",
           "--address", "1 rue de la Paix", "--postcode", "33150", "--commune", "Cenon",
           "--opening-hours", "Mo-Fr 09:00-12:00; Sa 10:00-12:00", "--typologie", "BIB")  # fmt: skip
    c.json("add-point", "--organisation", str(cenon), "--name", "Espace numérique de Bègles", "--insee", "33039",
           "--address", "3 place du Marché", "--postcode", "33130", "--commune", "Bègles")  # fmt: skip
    c.json("add-point", "--organisation", str(paris), "--name", "EPN Beaubourg", "--insee", "75104",
           "--address", "5 rue Rambuteau", "--postcode", "75004", "--commune", "Paris")  # fmt: skip
    return c


def order(central: Central, carnets: int, size: int, *extra: str) -> tuple[int, list[str]]:
    data = central.json("issue-carnets", "--commanditaire", FUNDER, "--millesime", "2026", "--carnets", str(carnets),
                        "--size", str(size), *extra)  # fmt: skip
    return data["order"], data["passes"]


def barcodes(pdf: Path, dpi: int = 300, blur: float = 0) -> list[tuple[str, str]]:
    """Every symbol zbar reads on every page, as (type, data), rendered at ``dpi`` and blurred by ``blur`` px."""
    prefix = pdf.with_name(f"{pdf.stem}-{dpi}-{blur}")
    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", "-png", str(pdf), str(prefix)], check=True, timeout=120)
    found = []
    for png in sorted(prefix.parent.glob(f"{prefix.name}-*.png")):
        if blur:
            Image.open(png).filter(ImageFilter.GaussianBlur(blur)).save(png)
        out = subprocess.run(["zbarimg", "--quiet", "--nodbus", str(png)], capture_output=True, text=True, timeout=60)
        assert out.returncode in (0, 4), out.stderr  # 4: no symbol on the page (the letter)
        found += [tuple(line.split(":", 1)) for line in out.stdout.splitlines()]
    return found


def barcodes_by_page(pdf: Path) -> dict[int, set[str]]:
    """What zbar reads on each page (numbered from 1), rendered at 150 dpi (coarse, and quick)."""
    subprocess.run(["pdftoppm", "-r", "150", "-gray", "-png", str(pdf), str(pdf.with_suffix(""))], check=True,
                   timeout=120)  # fmt: skip
    found: dict[int, set[str]] = {}
    for png in pdf.parent.glob(f"{pdf.stem}-*.png"):
        out = subprocess.run(["zbarimg", "--quiet", "--nodbus", "--raw", str(png)], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        assert out.returncode in (0, 4), out.stderr
        found[int(png.stem.rsplit("-", 1)[1])] = set(out.stdout.split())
    return found


def text(pdf: Path) -> str:
    raw = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True, timeout=60).stdout
    return raw.replace("\xa0", " ").replace("\u202f", " ")


@pytest.mark.parametrize("size", [5, 10])
def test_every_pass_is_printed_once_and_scans(central: Central, tmp_path: Path, size: int) -> None:
    number, passes = order(central, 2, size, "--territory", "33", "--territory-label", "Gironde")
    pdf = tmp_path / "carnets.pdf"

    code, out, err = central.run("print-carnets", "--order", str(number), "--output", str(pdf))

    assert code == 0, err
    assert f"2 carnet(s), {2 * size} passes, 3 pages" in out
    assert stat.S_IMODE(pdf.stat().st_mode) == 0o600  # the numbers are worth money
    read = barcodes(pdf)
    assert {kind for kind, _ in read} == {"CODE-128"}
    assert Counter(data for _, data in read) == Counter(passes)  # each pass once, nothing else

    words = text(pdf)
    for digits in passes:
        assert format_pass(digits) in words
    assert FUNDER in words and "10,00 €" in words
    assert "Valable du 01/01/2026 au 31/12/2026" in words
    assert "Uniquement sur ce territoire : Gironde." in words
    # The letter lists the qualified places of the territory, with address and hours, and no other.
    assert "lettre d’orientation" in words
    assert f"2 carnets de {size} pass, soit {2 * size} pass" in words
    assert "Médiathèque Jacques-Ellul" in words and "1 rue de la Paix, 33150 Cenon" in words
    assert "Du lundi au vendredi : de 9 h à 12 h ; samedi : de 10 h à 12 h" in words
    assert "Espace numérique de Bègles" in words
    assert "EPN Beaubourg" not in words


def test_barcodes_survive_a_blur_and_a_coarse_printer(central: Central, tmp_path: Path) -> None:
    number, passes = order(central, 2, 10)
    pdf = tmp_path / "carnets.pdf"
    assert central.run("print-carnets", "--order", str(number), "--output", str(pdf))[0] == 0

    assert Counter(data for _, data in barcodes(pdf, 300, blur=1)) == Counter(passes)
    assert Counter(data for _, data in barcodes(pdf, 150)) == Counter(passes)
    # No territory: every qualified place is listed.
    assert "EPN Beaubourg" in text(pdf) and "Dans tout lieu qualifié #APTIC" in text(pdf)


def test_blocked_carnets_are_left_out(central: Central, tmp_path: Path) -> None:
    number, passes = order(central, 2, 5)
    central.json("block-carnet", passes[0])
    pdf = tmp_path / "carnets.pdf"

    data = central.json("print-carnets", "--order", str(number), "--output", str(pdf))

    assert (data["carnets"], data["passes"], data["blocked"]) == (1, 5, 1)
    assert Counter(d for _, d in barcodes(pdf)) == Counter(passes[5:])


def test_the_letter_lists_at_most_the_places_asked_for(central: Central, tmp_path: Path) -> None:
    number, _ = order(central, 1, 5)
    pdf = tmp_path / "carnets.pdf"
    assert central.run("print-carnets", "--order", str(number), "--output", str(pdf), "--places", "1")[0] == 0
    words = text(pdf)
    assert "Espace numérique de Bègles" in words  # first by département, commune, name
    assert "EPN Beaubourg" not in words and "… et 2 autres lieux qualifiés" in words


def test_an_unknown_order_writes_nothing(central: Central, tmp_path: Path) -> None:
    pdf = tmp_path / "carnets.pdf"

    code, _, err = central.run("print-carnets", "--order", "99", "--output", str(pdf))

    assert code == 1
    assert "Commande 99 inconnue." in err
    assert list(tmp_path.glob("carnets.pdf*")) == []


def test_a_print_in_several_parts_is_one_pdf_in_order(central: Central, tmp_path: Path) -> None:
    """8 carnets drawn 3 at a time (a letter part and 3 carnet parts) make one PDF: the letter, then each carnet
    on its own page in serial order, its ten barcodes on that page."""
    number, passes = order(central, 8, 10)
    settings = config.settings(None, central.folder)
    engine = make_engine(settings.db_url)
    info = carnet_print.letter(engine, number, date(2026, 3, 10))
    pdf = tmp_path / "parts.pdf"

    with pdf.open("wb") as out:
        result = carnet_print.write(engine, hmac_authenticator(settings.secret), info, out, chunk=3)
    engine.dispose()

    assert (result["carnets"], result["passes"], result["pages"]) == (8, 80, 9)
    reader = PdfReader(pdf)
    assert len(reader.pages) == 9
    assert "lettre d’orientation" in reader.pages[0].extract_text()
    carnets = [passes[i][:10] for i in range(0, 80, 10)]
    printed = [re.search(r"Carnet (\d) (\d\d) (\d{7})", page.extract_text()) for page in reader.pages[1:]]
    assert ["".join(m.groups()) if m else None for m in printed] == carnets
    assert barcodes_by_page(pdf) == {1: set()} | {k + 2: set(passes[10 * k : 10 * k + 10]) for k in range(8)}


MEMORY_CHILD = """
import sys
from datetime import date
from aptic.passnumber import hmac_authenticator
from central.db import make_engine
from central.services import carnet_print

url, chunk, orders = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
secret = b"any"  # the numbers printed are not read here
engine = make_engine(url)
infos = [carnet_print.letter(engine, int(order), date(2026, 3, 10)) for order in orders]
def peak():  # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's size at the fork
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))

peaks = [peak()]
for info in infos:
    with open(url.removeprefix("sqlite:///") + ".pdf", "wb") as out:
        carnet_print.write(engine, hmac_authenticator(secret), info, out, chunk=chunk)
    peaks.append(peak())
print(*peaks)
"""


def test_memory_does_not_grow_with_the_order(central: Central) -> None:
    """Printing 400 carnets after 100 (in parts of 10) raises the peak memory by less than 2 MB.

    Drawing the whole document at once, reportlab holds about 25 kB a page until it saves: 400 carnets would
    peak about 7.5 MB above 100 carnets; merging the parts with qpdf (``pages.extend``, then ``save``) about
    4 MB (13 kB a page). Printed in parts, each part holds 10 carnets and the joined document 8 bytes an object,
    so the bigger print reaches the peak of the smaller one. The 2 MB margin absorbs the allocators' noise (the
    peak is counted in 4 kB pages; CPython's arenas are 1 MB, glibc's heap grows and trims in 128 kB steps,
    SQLite's page cache fills as it reads): RSS depends on what was allocated, not on time, so a loaded machine
    does not make it flaky. A child process prints, so that nothing of the test session counts, and the
    orders are made here, so that the child's peak before printing is its imports' (migrations peak higher).
    """
    small, large = order(central, 100, 10)[0], order(central, 400, 10)[0]
    argv = [config.settings(None, central.folder).db_url, "10", str(small), str(large)]
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(MEMORY_CHILD), *argv], capture_output=True,
                          text=True, timeout=300, check=False, cwd=Path(__file__).parents[2])  # fmt: skip
    assert done.returncode == 0, done.stderr
    before, after_small, after_large = (int(kb) / 1024 for kb in done.stdout.split())
    assert after_large - after_small < 2, (
        f"peak memory {before:.1f} MB, {after_small:.1f} MB after 100 carnets, {after_large:.1f} MB after 400"
    )


def test_doctests() -> None:
    assert doctest.testmod(carnets_pdf).failed == 0
