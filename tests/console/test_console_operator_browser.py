"""The operator's pages in Debian's headless Chromium: the operator finds a carnet by a pass number and blocks it
(through the password confirmation) with the keyboard alone; every operator page passes axe-core (WCAG 2 A/AA)
at phone and desktop sizes (screenshots in artifacts/console/)."""

from __future__ import annotations

import re

import pytest
from console_fixtures import PASSWORD
from money_fixtures import device
from pages import assert_accessible, screenshots
from playwright.sync_api import expect

from central.services import fleet

pytestmark = pytest.mark.browser

OPERATOR = "operateur@aptic.fr"


def test_the_operator_blocks_a_carnet_with_the_keyboard(site, live, page):
    org = site.organisation("Médiathèque de Bègles", slug="begles")
    number = site.carnets(1)[0]
    device(site, org)
    fleet.start_rollout(site.engine, "0.2.0", site.clock(), 10)
    site.user(OPERATOR, operator=True)

    page.goto(f"{live}/console/connexion")
    page.get_by_label("Adresse e-mail").fill(OPERATOR)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_label("Mot de passe").press("Enter")
    page.wait_for_url(f"{live}/console/operateur/organisations")
    site.clock.advance(minutes=11)  # the action will ask for the password again

    for name, path in (("Organisations", "organisations"), ("Commandes", "commandes"), ("Relevés", "releves"),
                       ("Parc", "parc"), ("Journal", "journal"), ("Carnets", "carnets")):  # fmt: skip
        page.get_by_role("link", name=name, exact=True).focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{live}/console/operateur/{path}")
        expect(page.get_by_role("link", name=name, exact=True)).to_have_attribute("aria-current", "page")
        assert_accessible(page)
        screenshots(page, f"operator-{path}")

    page.get_by_label("Numéro de carnet ou de pass").focus()
    page.keyboard.type(number)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=f"Carnet {number[:10]}")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Motif").focus()
    page.keyboard.type("Carnet perdu par son bénéficiaire")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Bloquer le carnet")).to_be_focused()
    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r".*/console/confirmer.*"))
    page.get_by_label("Mot de passe").focus()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/console/operateur/carnets\?carnet=.*"))
    page.get_by_label("Motif").focus()  # the confirmation brought the operator back: submit again
    page.keyboard.type("Carnet perdu par son bénéficiaire")
    page.keyboard.press("Enter")

    expect(page.get_by_text(f"Carnet {number[:10]} bloqué.")).to_be_visible()
    expect(page.get_by_text("Carnet perdu par son bénéficiaire")).to_be_visible()
    expect(page.get_by_role("button", name="Débloquer le carnet")).to_be_visible()
    assert_accessible(page)
    screenshots(page, "operator-carnet-blocked")
