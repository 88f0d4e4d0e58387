"""Issue 14's whole journey, in real Chromium against the stack ``make demo`` starts (the central, a terminal
with its virtual douchette, the kiosk page), with the demo's console accounts:

a funder orders carnets in the console → the operator records the payment, activates the order and prints it →
zbar reads every barcode of the PDF back → a pass from it is scanned at the kiosk by a médiateur → the funder's
dashboard counts the use; then the operator blocks a carnet → the kiosk refuses its pass (the central answers),
and after the terminal's next sync it refuses the carnet's other passes with the central unreachable too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_stack import Stack, demo_stack, login, start_entry
from playwright.sync_api import Browser, Page, expect

from aptic import passnumber

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with demo_stack(tmp_path_factory.mktemp("journey")) as running:
        yield running


def console(browser: Browser, stack: Stack, role: str) -> Page:
    """A browser window logged in to the console with the demo's ``role`` account."""
    page = browser.new_context(accept_downloads=True).new_page()
    email, password = stack.login(role)
    page.goto(f"{stack.central}/console/connexion")
    page.get_by_label("Adresse e-mail").fill(email)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("navigation", name="Menu principal")).to_be_visible()
    return page


def decoded(pdf: Path) -> list[str]:
    """Every barcode zbar reads on the PDF's pages rendered at 300 dpi, page by page, top to bottom."""
    missing = [tool for tool in ("pdftoppm", "zbarimg") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install poppler-utils zbar-tools (scripts/bootstrap test)")
    subprocess.run(["pdftoppm", "-r", "300", "-gray", "-png", str(pdf), str(pdf.with_suffix(""))], check=True,
                   timeout=120)  # fmt: skip
    numbers = []
    for png in sorted(pdf.parent.glob(f"{pdf.stem}-*.png")):
        out = subprocess.run(["zbarimg", "--quiet", "--nodbus", "--raw", str(png)], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        assert out.returncode in (0, 4), out.stderr  # 4: no barcode on the page (the letter)
        numbers += sorted(out.stdout.split())
    return numbers


def submit_entry(kiosk: Page, stack: Stack, service: int, number: str) -> None:
    """A médiateur's entry at the kiosk: one pass scanned for ``service``, submitted, and on the central."""
    login(kiosk)
    start_entry(kiosk, service)
    stack.scan(number)
    expect(kiosk.locator("#entry-passes li")).to_have_count(1)
    kiosk.locator("#entry-submit").click()
    expect(kiosk.locator("#confirm-title")).to_have_text("Enregistré")
    expect(kiosk.locator("#pending")).to_have_text("0 en attente", timeout=30_000)  # the central has it
    kiosk.get_by_role("button", name="Nouvelle saisie").click()
    kiosk.get_by_role("button", name="Quitter").click()
    expect(kiosk.get_by_role("button", name="Espace médiateur")).to_be_visible()


def test_ordered_printed_scanned_counted_then_blocked(browser: Browser, stack: Stack, tmp_path: Path) -> None:
    # The funder orders two carnets of five passes, valid in the Gironde, and submits the order.
    funder = console(browser, stack, "funder")
    expect(funder).to_have_url(re.compile(r"/console/financeur/tableau-de-bord$"))
    funder.get_by_role("link", name="Commandes", exact=True).click()
    funder.get_by_role("link", name="Nouvelle commande").click()
    funder.get_by_label("5 pass").check()
    funder.get_by_label("Nombre de carnets").fill("2")
    funder.get_by_label("Territoires", exact=True).fill("33")
    funder.get_by_role("button", name="Enregistrer le brouillon").click()
    submit = funder.get_by_role("button", name=re.compile(r"^Soumettre la demande \d+$"))
    request_id = submit.inner_text().rsplit(" ", 1)[1]
    submit.click()
    expect(funder.get_by_role("cell", name="Soumise")).to_be_visible()

    # The operator records the payment, activates the order and prints its carnets.
    operator = console(browser, stack, "operator")
    operator.get_by_role("link", name="Commandes", exact=True).click()
    row = operator.locator(f"#request-{request_id}")
    row.get_by_label("Référence du paiement").fill("Mandat 2026-118")
    row.get_by_role("button", name=f"Paiement reçu pour la demande {request_id}").click()
    row = operator.locator(f"#request-{request_id}")
    row.get_by_label("Motif").fill("Mandat reçu le jour même")
    row.get_by_role("button", name=f"Activer la demande {request_id}").click()
    flash = operator.locator(".flash.success")
    expect(flash).to_contain_text("émise")
    order_id = re.search(r"commande (\d+) émise", flash.inner_text()).group(1)  # type: ignore[union-attr]
    printing = operator.locator(f"#print-{order_id}")
    printing.get_by_label("Motif").fill("Pour l’imprimeur")
    with operator.expect_download() as download:
        printing.get_by_role("button", name=f"Imprimer les carnets de la commande {order_id} (PDF)").click()
    pdf = tmp_path / "carnets.pdf"
    download.value.save_as(pdf)

    # A real decoder reads the ten passes back: well-formed numbers of the order's two carnets.
    passes = decoded(pdf)
    assert len(passes) == 10 and len(set(passes)) == 10
    carnets = sorted({number[:10] for number in passes})
    assert len(carnets) == 2 and all(passnumber.parse(number) for number in passes)
    first = [n for n in passes if n.startswith(carnets[0])]
    second = [n for n in passes if n.startswith(carnets[1])]

    # A médiateur records a pass of the first carnet at the kiosk: the funder sees where it helped.
    kiosk = browser.new_context(viewport={"width": 1280, "height": 800}, has_touch=True).new_page()
    kiosk.goto(stack.kiosk)
    kiosk.wait_for_function("() => document.body.dataset.live === 'sse'")
    submit_entry(kiosk, stack, 95, first[0])
    funder.get_by_role("link", name="Tableau de bord", exact=True).click()
    expect(funder.locator("#count-passes-used")).to_have_text("1")
    expect(funder.locator("#count-started")).to_have_text("1")
    expect(funder.locator("#table-places")).to_contain_text("Médiathèque Mériadeck")

    # The operator blocks the second carnet (lost): the central refuses its passes at once.
    operator.get_by_role("link", name="Carnets", exact=True).click()
    operator.get_by_label("Numéro de carnet ou de pass").fill(carnets[1])
    operator.get_by_role("button", name="Rechercher").click()
    operator.get_by_label("Motif").fill("Carnet perdu par son bénéficiaire")
    operator.get_by_role("button", name="Bloquer le carnet").click()
    expect(operator.locator("#carnet")).to_contain_text("Bloqué")
    stack.scan(second[0])
    expect(kiosk.locator("#verdict-title")).to_have_text("Pass bloqué")
    expect(kiosk.locator("#verdict")).to_have_attribute("data-tone", "refused")

    # The terminal's next sync (an entry wakes it) brings the block into its snapshot...
    submit_entry(kiosk, stack, 48, stack.passes("gironde")[20])
    deadline = time.monotonic() + 30
    while stack.offline_verdict(second[1]).get("reason") != "blocked":
        assert time.monotonic() < deadline, stack.offline_verdict(second[1])
        time.sleep(0.5)
    # ...so that with the central unreachable the kiosk still refuses the carnet, and still accepts others
    # (provisionally: the central will confirm them).
    with stack.central_frozen():
        stack.scan(second[1])
        expect(kiosk.locator("#verdict-title")).to_have_text("Pass bloqué", timeout=10_000)
        expect(kiosk.locator("#verdict")).to_have_attribute("data-tone", "refused")
        stack.scan(stack.passes("gironde")[0])
        expect(kiosk.locator("#verdict-title")).to_have_text("Pass valable (vérifié hors ligne)", timeout=10_000)
        expect(kiosk.locator("#verdict")).to_have_attribute("data-tone", "provisional")
