"""Kit labels and activation files (``aptic-central add-kit --label ... --activation-file ...``).

What is printed is read back by real tools, not by the code that drew it: poppler renders the PDF
(``pdftoppm``) and extracts its text (``pdftotext``), zbar decodes every barcode and QR code on the page
(``zbarimg``, all its symbologies). The activation file is read by the device's own parser
(:func:`provisioning.firstboot.parse`), and once by the terminal's real first boot against a served central.
The Debian packages come from ``scripts/bootstrap test`` (poppler-utils, zbar-tools); without them these tests
fail, never skip.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reportlab.lib.pagesizes import A6
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy import func, select

import central.activation_file
import central.labels
from central import cli
from central.activation_file import InvalidActivationFile, Wifi, render, write_private
from central.db import make_engine
from central.labels import CODE_HEADING, render_label
from central.schema import kits
from central.services.admin import normalise_code
from provisioning import firstboot

REPO = Path(__file__).resolve().parent.parent.parent
KIT, CODE = "AK-12345678", "7QX4-PM2K"
PSK = "wifi-secret-42"
DPI = 300


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    missing = [tool for tool in ("pdftoppm", "pdftotext", "zbarimg") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install poppler-utils zbar-tools (scripts/bootstrap test)")


def symbols(pdf: Path, crop: tuple[float, float] | None = None) -> list[tuple[str, str]]:
    """Every symbol zbar reads on the PDF's first page at 300 dpi, as sorted (type, data) pairs.

    ``crop`` (top, bottom, in points from the top of the page) keeps only that band of the page: what a photo
    of it would show.
    """
    png = pdf.with_name(pdf.stem + "-page")
    area: list[str] = []
    if crop is not None:
        top, bottom = (round(y * DPI / 72) for y in crop)
        area = ["-x", "0", "-y", str(top), "-W", "100000", "-H", str(bottom - top)]
    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", "-singlefile", "-f", "1", "-l", "1", *area, str(pdf),
                    str(png)], check=True, timeout=60)  # fmt: skip
    out = subprocess.run(["zbarimg", "--quiet", "--nodbus", str(png) + ".png"], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode in (0, 4), out.stderr  # 4: zbar found no symbol
    return sorted((kind, data) for kind, data in (line.split(":", 1) for line in out.stdout.splitlines()))


def text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout  # fmt: skip


def words(pdf: Path) -> list[tuple[str, float, float]]:
    """The page's words with their top and bottom, in points from the top of the page (``pdftotext -bbox``)."""
    html = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout  # fmt: skip
    found = re.findall(r'<word xMin="[\d.]+" yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">([^<]*)</word>', html)
    return [(word, float(top), float(bottom)) for top, bottom, word in found]


def leaks(found: list[tuple[str, str]], code: str) -> list[tuple[str, str]]:
    """The symbols that hold the code, written as printed or as typed (no hyphen, any case)."""
    return [s for s in found if code in s[1] or normalise_code(code) in normalise_code(s[1])]


def write_label(path: Path, **kw: object) -> Path:
    path.write_bytes(render_label(KIT, CODE, **kw))  # type: ignore[arg-type]
    return path


# --- the label -----------------------------------------------------------------------------------------------


def test_the_label_s_codes_decode_to_the_kit_number_and_never_to_the_code(tmp_path: Path) -> None:
    pdf = write_label(tmp_path / "kit.pdf", organisation="Médiathèque de Cenon")
    found = symbols(pdf)
    assert found == [("CODE-128", KIT), ("QR-Code", KIT)]
    assert leaks(found, CODE) == []


def test_the_decoder_would_see_a_code_put_in_a_symbol(tmp_path: Path) -> None:
    """The check above can fail: a QR code of the activation code, drawn the way the label draws its own, is
    read and reported as a leak."""
    pdf = tmp_path / "leaky.pdf"
    canvas = Canvas(str(pdf), pagesize=A6)
    central.labels._qr(canvas, normalise_code(CODE), 100, 80)
    canvas.save()
    assert leaks(symbols(pdf), CODE) == [("QR-Code", normalise_code(CODE))]


def test_the_label_prints_the_kit_the_organisation_and_the_code_as_text(tmp_path: Path) -> None:
    expires = datetime(2026, 3, 17, 10, 0, tzinfo=UTC)
    printed = text(write_label(tmp_path / "kit.pdf", organisation="Médiathèque de Cenon", expires_at=expires))
    for line in (KIT, CODE, "Médiathèque de Cenon", CODE_HEADING, "Numéro de kit"):
        assert line in printed
    assert "Valable jusqu'au 17/03/2026 à 11:00 (heure de Paris)." in printed  # CET in March


def test_folded_the_front_shows_the_kit_and_the_flap_the_code(tmp_path: Path) -> None:
    """The page cut at the code's heading, just under the fold line: the front (what a photo of the folded or
    scratch-covered label shows) has both symbols and the kit number but not the code; the flap has the code
    and no symbol."""
    pdf = write_label(tmp_path / "kit.pdf", organisation="Centre social")
    placed = words(pdf)
    fold = min(top for word, top, _ in placed if word == "découvrir")  # a word of the heading under the line
    page_bottom = 148 / 25.4 * 72
    code_words = [(top, bottom) for word, top, bottom in placed if word == CODE]
    assert len(code_words) == 1 and code_words[0][0] > fold
    kit_words = [top for word, top, _ in placed if word == KIT]
    assert kit_words and min(kit_words) < fold
    assert symbols(pdf, crop=(0, fold)) == [("CODE-128", KIT), ("QR-Code", KIT)]
    assert symbols(pdf, crop=(fold, page_bottom)) == []


def test_a_long_organisation_name_stays_on_the_page(tmp_path: Path) -> None:
    name = "Centre communal d'action sociale de Saint-Médard-en-Jalles, espace numérique de la place " * 2
    pdf = write_label(tmp_path / "kit.pdf", organisation=name)
    html = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout  # fmt: skip
    right_edges = [float(x) for x in re.findall(r'xMax="([\d.]+)"', html)]
    assert right_edges and max(right_edges) <= 105 / 25.4 * 72  # A6's width
    assert "Centre communal d'action sociale" in text(pdf) and "…" in text(pdf)


def test_the_pdf_s_properties_name_the_kit_not_the_code(tmp_path: Path) -> None:
    pdf = write_label(tmp_path / "kit.pdf")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True, timeout=60).stdout
    assert f"Title:           Étiquette du kit {KIT}" in info
    assert CODE not in info and normalise_code(CODE) not in info
    assert "297.638 x 419.528 pts" in info  # A6 portrait, 105 x 148 mm


# --- the activation file -------------------------------------------------------------------------------------


def test_the_activation_file_is_what_the_device_reads() -> None:
    wifi = Wifi("Médiathèque Public", PSK, "fr")
    parsed = firstboot.parse(render(KIT, CODE, "https://central.example.org/", wifi))
    assert parsed == firstboot.ActivationFile(KIT, CODE, "https://central.example.org",
                                              Wifi("Médiathèque Public", PSK, "FR"))  # fmt: skip
    without = firstboot.parse(render(KIT, CODE, "https://central.example.org"))
    assert without.wifi is None and without.activation_code == CODE


@settings(max_examples=200, deadline=None)
@given(
    ssid=st.text(min_size=1, max_size=32).filter(lambda s: len(s.encode("utf-8")) <= 32),
    psk=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=8, max_size=63),
)
def test_any_network_s_name_and_password_reach_the_device_unchanged(ssid: str, psk: str) -> None:
    """TOML escaping: quotes, backslashes, control characters, DEL, any script, in an SSID (32 bytes at most)."""
    parsed = firstboot.parse(render(KIT, CODE, "https://central.example.org", Wifi(ssid, psk, "FR")))
    assert parsed.wifi == Wifi(ssid, psk, "FR")


@pytest.mark.parametrize(
    ("url", "wifi", "reason"),
    [
        ("http://central.example.org", None, "doit commencer par https://"),
        ("ftp://central.example.org", None, "doit commencer par https://"),
        ("https://central.example.org/?x=1", None, "ni « ? » ni « # »"),
        ("https://central.example.org", Wifi("Public", "court", "FR"), "de 8 à 63 caractères"),
        ("https://central.example.org", Wifi("Public", None, "FR"), "psk manquant"),
        ("https://central.example.org", Wifi("Public", PSK, "France"), "code du pays en deux lettres"),
        ("https://central.example.org", Wifi("x" * 33, PSK, "FR"), "ssid trop long"),
    ],
)
def test_what_the_device_would_refuse_is_refused_with_its_reasons(url: str, wifi: Wifi | None, reason: str) -> None:
    with pytest.raises(InvalidActivationFile) as refused:
        render(KIT, CODE, url, wifi)
    message = "\n".join(refused.value.problems)
    assert reason in message
    assert CODE not in message and (wifi is None or wifi.psk is None or wifi.psk not in message)


def test_the_file_is_written_0600_whatever_the_umask_and_over_an_open_file(tmp_path: Path) -> None:
    path = tmp_path / "aptic-activation.toml"
    path.write_text("old")
    path.chmod(0o644)
    old_umask = os.umask(0)
    try:
        write_private(path, b"new")
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_a_write_cut_short_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "aptic-activation.toml"
    path.write_bytes(b"old")

    def fail(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space"):
        write_private(path, b"new")
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("module", [central.activation_file, central.labels])
def test_doctests(module: object) -> None:
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert tried and not failures


# --- the command line ----------------------------------------------------------------------------------------


@pytest.fixture
def run(db_url, tmp_path, monkeypatch, capsys):
    """``aptic-central`` in this process, as in test_central_cli.py; returns (stdout, stderr), stdout parsed
    with ``--json``."""
    monkeypatch.setenv("APTIC_CENTRAL_SECRET", "cli-secret")

    def run(*args: str, expect: int = 0) -> tuple[object, str]:
        code = cli.main([args[0], "--db", db_url, "--data-dir", str(tmp_path), *args[1:]])
        out, err = capsys.readouterr()
        assert code == expect, out + err
        return (json.loads(out) if "--json" in args else out), err

    return run


@pytest.fixture
def organisation(run) -> str:
    org, _ = run("add-organisation", "--name", "Médiathèque de Cenon", "--siret", "12345678900012", "--json")
    return str(org["id"])


def count_kits(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(kits)).scalar_one())
    finally:
        engine.dispose()


def test_add_kit_writes_its_label_and_the_card_s_file(run, organisation, tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    kit, _ = run("add-kit", "--organisation", organisation, "--label", str(tmp_path / "kit.pdf"),
                 "--activation-file", str(boot), "--central-url", "https://central.example.org",
                 "--wifi-ssid", "Médiathèque Public", "--wifi-psk", PSK, "--json")  # fmt: skip
    number, code = kit["kit_number"], kit["activation_code"]
    card = boot / "aptic-activation.toml"  # a folder given: the file the device looks for, in it
    assert kit == {"kit_number": number, "activation_code": code, "label": str(tmp_path / "kit.pdf"),
                   "activation_file": str(card)}  # fmt: skip

    parsed = firstboot.parse(card.read_bytes())
    assert (parsed.kit_number, parsed.activation_code) == (number, code)
    assert parsed.central_url == "https://central.example.org"
    assert parsed.wifi == Wifi("Médiathèque Public", PSK, "FR")
    assert stat.S_IMODE(card.stat().st_mode) == 0o600

    pdf = tmp_path / "kit.pdf"
    assert stat.S_IMODE(pdf.stat().st_mode) == 0o600  # the label holds the code too
    found = symbols(pdf)
    assert found == [("CODE-128", number), ("QR-Code", number)] and leaks(found, code) == []
    printed = text(pdf)
    assert number in printed and code in printed and "Médiathèque de Cenon" in printed


def test_the_code_is_printed_once_on_stdout_and_nowhere_else(db_url, organisation, tmp_path: Path) -> None:
    """The real command, in its own process with debug logging: its whole stderr, and stdout but for the one
    line that shows the code, hold neither the code nor the Wi-Fi password."""

    def aptic_central(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "central.cli", "-v", *args, "--db", db_url, "--data-dir", str(tmp_path),
             "--label", str(tmp_path / "kit.pdf"), "--activation-file", str(tmp_path / "kit.toml"),
             "--central-url", "https://central.example.org", "--wifi-ssid", "Public", "--wifi-psk", PSK],
            capture_output=True, text=True, cwd=REPO, timeout=60,
            env={**os.environ, "APTIC_CENTRAL_SECRET": "cli-secret"},
        )  # fmt: skip

    made = aptic_central("add-kit", "--organisation", organisation)
    assert made.returncode == 0, made.stderr
    number, code = re.fullmatch(r"kit (AK-\d+), activation code (\S+)", made.stdout.splitlines()[0]).groups()
    again = aptic_central("reissue-code", number)
    assert again.returncode == 0, again.stderr
    new_code = re.fullmatch(rf"kit {number}, new activation code (\S+)", again.stdout.splitlines()[0]).group(1)

    for out, secret in ((made, code), (again, new_code)):
        assert "written to" in out.stderr  # the log speaks, of the kit and paths only
        for leak in (secret, normalise_code(secret), PSK):
            assert leak not in out.stderr
            assert leak not in "\n".join(out.stdout.splitlines()[1:])
        assert out.stdout.count(secret) == 1
    assert "copy it to the card's boot partition as aptic-activation.toml" in made.stdout
    # A lost label: the new one and the card's file have the new code; the old one is in neither.
    assert new_code in text(tmp_path / "kit.pdf") and code not in text(tmp_path / "kit.pdf")
    assert firstboot.parse((tmp_path / "kit.toml").read_bytes()).activation_code == new_code


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (["--activation-file", "{tmp}/a.toml", "--central-url", "http://central.example.org"], "https://"),
        (["--activation-file", "{tmp}/a.toml"], "--activation-file demande --central-url"),
        (["--central-url", "https://central.example.org"], "ne servent qu'avec --activation-file"),
        (["--activation-file", "{tmp}/a.toml", "--central-url", "https://c.example.org", "--wifi-ssid", "Public"],
         "--wifi-ssid demande --wifi-psk"),
        (["--activation-file", "{tmp}/a.toml", "--central-url", "https://c.example.org", "--wifi-ssid", "Public",
          "--wifi-psk", "court"], "de 8 à 63 caractères"),
        (["--label", "{tmp}/missing/kit.pdf"], "n'existe pas"),
        (["--label", "{tmp}/same", "--activation-file", "{tmp}/same", "--central-url", "https://c.example.org"],
         "le même fichier"),
    ],
)  # fmt: skip
def test_a_mistake_in_the_options_is_refused_before_any_kit_is_made(
    run, organisation, db_url, tmp_path: Path, options: list[str], reason: str
) -> None:
    options = [o.replace("{tmp}", str(tmp_path)) for o in options]
    refused, err = run("add-kit", "--organisation", organisation, *options, "--json", expect=1)
    assert refused["error"] == "invalid_kit_files" and reason in refused["message"]
    assert reason in err
    assert count_kits(db_url) == 0
    assert not (tmp_path / "a.toml").exists() and not (tmp_path / "same").exists()


def test_reissue_code_of_an_unknown_kit_writes_nothing(run, organisation, tmp_path: Path) -> None:
    refused, _ = run("reissue-code", "AK-00000000", "--label", str(tmp_path / "kit.pdf"), "--json", expect=1)
    assert refused["error"] == "unknown_kit" and not (tmp_path / "kit.pdf").exists()


def test_a_card_written_by_add_kit_activates_a_terminal(central, db_url, tmp_path: Path, capsys) -> None:
    """The whole way: add-kit writes the card's file, and the terminal's real first boot activates with it
    against the served central (http on loopback, which the device allows for tests)."""
    central.clock.set(datetime.now(UTC))  # add-kit's code expires 7 days after the real now
    org, _ = central.organisation("Centre social de Cenon")
    boot = tmp_path / "boot"
    boot.mkdir()
    code = cli.main(["add-kit", "--db", db_url, "--data-dir", str(tmp_path / "central"), "--organisation", str(org),
                     "--activation-file", str(boot), "--central-url", central.base])  # fmt: skip
    assert code == 0
    kit_code = re.search(r"activation code (\S+)", capsys.readouterr().out).group(1)
    out = subprocess.run(
        [sys.executable, "-m", "terminal.cli", "firstboot", "--boot-dir", str(boot), "--wifi-dir",
         str(tmp_path / "nm"), "--data-dir", str(tmp_path / "terminal"), "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
        env={**os.environ, "APTIC_TERMINAL_CONFIG": "/nonexistent"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"] == "activated"
    left = (boot / "aptic-activation.toml").read_text()
    assert kit_code not in left and "activation_code" not in tomllib.loads(left)  # the device erased it
