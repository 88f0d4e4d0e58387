"""The funder's pages in Debian's headless Chromium: a funder's admin requests carnets and submits the request
with the keyboard alone; the funder's pages pass axe-core (WCAG 2 A/AA) (screenshots in artifacts/console/)."""

from __future__ import annotations

import pytest
from console_fixtures import PASSWORD
from pages import assert_accessible, screenshots
from playwright.sync_api import expect

from central.services import funders

pytestmark = pytest.mark.browser

ADMIN = "achats@gironde.fr"


def test_a_funder_orders_with_the_keyboard(site, live, page):
    funders.add_user(site.engine, ADMIN, "Département de la Gironde", site.clock(), role="admin", password=PASSWORD)
    site.carnets(2, commanditaire="Département de la Gironde")

    page.goto(f"{live}/console/connexion")
    page.get_by_label("Adresse e-mail").fill(ADMIN)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_label("Mot de passe").press("Enter")
    page.wait_for_url(f"{live}/console/financeur/tableau-de-bord")  # a funder's home
    page.get_by_role("link", name="Commandes", exact=True).click()
    page.wait_for_url(f"{live}/console/financeur/commandes")
    assert_accessible(page)
    screenshots(page, "funder-orders")

    page.get_by_role("link", name="Nouvelle commande").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live}/console/financeur/commandes/nouvelle")
    assert_accessible(page)
    page.get_by_label("5 pass").focus()
    page.keyboard.press("Space")
    page.get_by_label("Nombre de carnets").focus()
    page.keyboard.type("0")
    page.keyboard.press("Enter")  # refused: the error is tied to its field
    expect(page.locator("#f-quantity-error")).to_be_visible()
    assert_accessible(page)
    screenshots(page, "funder-new-refused")
    page.get_by_label("Nombre de carnets").fill("")
    page.get_by_label("Nombre de carnets").focus()
    page.keyboard.type("40")
    page.get_by_label("Territoires", exact=True).focus()
    page.keyboard.type("33")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live}/console/financeur/commandes*")
    expect(page.get_by_text("40 × 5 pass")).to_be_visible()
    page.get_by_role("button", name="Soumettre la demande 1").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("cell", name="Soumise")).to_be_visible()
    assert_accessible(page)
    screenshots(page, "funder-submitted")

    page.get_by_role("link", name="Commande 1", exact=True).focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live}/console/financeur/commandes/1")
    expect(page.get_by_role("heading", name="Utilisations par lieu")).to_be_visible()
    assert_accessible(page)
    screenshots(page, "funder-order")
