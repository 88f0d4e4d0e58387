"""A médiateur's morning in the console, end to end in Debian's headless Chromium with every non-local
request blocked: log in, test a pass, scan two passes as a douchette types them (one reader typing digits,
one set for a US keyboard typing the AZERTY top row), record them, send the form again (nothing more is
paid), then find them on the dashboard and in the month's statement, whose CSV says 2 × 9,60 €."""

from __future__ import annotations

import csv
import io

import pytest
from console_fixtures import PASSWORD
from playwright.sync_api import expect

from aptic.passnumber import AZERTY_TOP_ROW

pytestmark = pytest.mark.browser

US_ON_AZERTY = {digit: char for char, digit in AZERTY_TOP_ROW.items()}


def test_login_test_scan_then_dashboard_and_statement(site, live, page):
    org = site.organisation("Médiathèque de Bègles", slug="begles")
    first, second = site.carnets(2, size=5)[::5]  # two carnets: the same-carnet rule stays out of the way
    page.goto(f"{live}/console/")
    page.get_by_label("Adresse e-mail").fill(org.member)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()

    page.get_by_role("link", name="Tester un pass").click()
    page.get_by_label("Numéro du pass").fill(first)
    page.get_by_role("button", name="Tester").click()
    expect(page.get_by_role("status").filter(has_text="Pass valable")).to_be_visible()

    page.get_by_role("link", name="Scanner des pass").click()
    # Its script must be running before the douchette types: without it, Enter submits the form (the no-script
    # path), which a loaded machine showed by reloading the page under the second pass.
    page.wait_for_load_state("load")
    page.get_by_label("Service rendu").select_option(label="95 — Plateforme France Connect")
    page.get_by_label("Numéro du pass").focus()
    page.keyboard.type(first)
    page.keyboard.press("Enter")
    page.keyboard.type("".join(US_ON_AZERTY[d] for d in second))
    page.keyboard.press("Enter")
    expect(page.locator("#scan-list li.ok")).to_have_count(2)
    page.get_by_role("button", name="Enregistrer les pass").click()
    expect(page.locator("table.scan-results tbody tr").filter(has_text="Enregistré")).to_have_count(2)
    page.reload()  # the browser sends the same form again: the same batch, a replay (the total stays 2)
    expect(page.locator("table.scan-results tbody tr").filter(has_text="Enregistré")).to_have_count(2)

    page.get_by_role("link", name="Tableau de bord").click()
    expect(page.locator("#org-total")).to_have_text("2")
    expect(page.locator("#table-funders")).to_contain_text("Département de la Gironde")

    page.get_by_role("link", name="Contre-paiements").click()
    expect(page.locator("#en-cours ~ .cards .figure").first).to_have_text("2")
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV pour tableur", exact=False).first.click()
    text = download.value.path().read_text("utf-8-sig")  # what LibreOffice or Excel opens: ";", "19,20"
    total = next(r for r in csv.DictReader(io.StringIO(text), delimiter=";") if r["rubrique"] == "total")
    assert (total["pass"], total["net"]) == ("2", "19,20")
    assert not page.blocked_requests  # type: ignore[attr-defined]  # nothing tried to leave the machine
