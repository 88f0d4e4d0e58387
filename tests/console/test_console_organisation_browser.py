"""The organisation's pages in Debian's headless Chromium: an admin invites a member and changes the bank
details (through the password confirmation) with the keyboard alone, finding fields by their labels; every
page passes axe-core (WCAG 2 A/AA) at phone and desktop sizes (screenshots in artifacts/console/)."""

from __future__ import annotations

import re

import pytest
from console_fixtures import PASSWORD
from pages import assert_accessible, screenshots
from playwright.sync_api import expect

from central.services import organisation as service

pytestmark = pytest.mark.browser

IBAN = "FR7630006000011234567890189"
NEW = "nina.nouvelle@begles.fr"


def login(page, live, email):
    page.goto(f"{live}/console/connexion")
    page.get_by_label("Adresse e-mail").fill(email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_label("Mot de passe").press("Enter")
    page.wait_for_url(f"{live}/console/tableau-de-bord")


def follow(page, name, url):
    """Reach a link with the keyboard (focus, then Enter) and wait for its page (``url``: a full URL, or a
    compiled pattern)."""
    page.get_by_role("link", name=name, exact=True).focus()
    page.keyboard.press("Enter")
    page.wait_for_url(url)


def test_an_admin_invites_a_member_and_changes_the_bank_details_with_the_keyboard(site, live, page, caplog):
    org = site.organisation("Médiathèque de Bègles", slug="begles")
    service.update_details(site.engine, org.id, {"address": "12 rue Carnot", "postcode": "33130",
                                                 "commune": "Bègles"}, 1, site.clock())  # fmt: skip
    login(page, live, org.admin)
    follow(page, "Organisation", f"{live}/console/organisation")
    expect(page.get_by_label("Adresse", exact=True)).to_have_value("12 rue Carnot")
    assert_accessible(page)
    screenshots(page, "organisation-admin")

    follow(page, "Membres", f"{live}/console/organisation/membres")
    assert_accessible(page)
    screenshots(page, "membres")
    follow(page, "Inviter un membre", f"{live}/console/organisation/membres/inviter")
    assert_accessible(page)
    screenshots(page, "membres-inviter")
    page.get_by_label("Adresse e-mail").fill(NEW)
    page.keyboard.press("Tab")  # into the role group, on its checked radio (Membre)
    page.keyboard.press("ArrowDown")  # Administrateur
    expect(page.get_by_label("Administrateur")).to_be_checked()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Envoyer l’invitation")).to_be_focused()
    with caplog.at_level("INFO", logger="central.mail"):
        page.keyboard.press("Enter")
        page.wait_for_url(f"{live}/console/organisation/membres")
    expect(page.get_by_text(f"Invitation envoyée à {NEW}.")).to_be_visible()
    expect(page.get_by_role("cell", name=NEW)).to_be_visible()
    assert re.search(r"/console/invitation/[\w-]+", caplog.text)

    site.clock.advance(minutes=11)  # the password was typed too long ago for a change of bank details
    follow(page, "Informations", f"{live}/console/organisation")
    follow(page, "Modifier les coordonnées bancaires", re.compile(r".*/console/confirmer\?next=.*banque$"))
    assert_accessible(page)
    screenshots(page, "confirmer")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live}/console/organisation/banque")
    assert_accessible(page)
    screenshots(page, "banque")
    page.get_by_label("IBAN").fill(IBAN[:-1] + "8")
    page.get_by_label("BIC").fill("AGRIFRPP882")
    page.get_by_label("Titulaire du compte").fill("Ville de Bègles")
    page.keyboard.press("Enter")
    expect(page.get_by_text("la clé de contrôle ne correspond pas")).to_be_visible()
    expect(page.get_by_label("IBAN")).to_have_attribute("aria-invalid", "true")
    assert_accessible(page)
    screenshots(page, "banque-erreur")
    page.get_by_label("IBAN").fill(IBAN)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live}/console/organisation")
    expect(page.get_by_text("FR76 •••• •••• •••• •••• ••90 189").first).to_be_visible()
    assert IBAN[4:-5] not in page.content()

    follow(page, "Journal", f"{live}/console/organisation/journal")
    expect(page.get_by_role("cell", name="Coordonnées bancaires modifiées")).to_be_visible()
    assert_accessible(page)
    screenshots(page, "journal")


def test_the_member_view_and_the_admins_forms_are_accessible(site, live, page):
    org = site.organisation("Médiathèque de Bègles", slug="begles")
    service.update_bank(site.engine, org.id, IBAN, "AGRIFRPP882", "Ville de Bègles", 1, site.clock())
    login(page, live, org.member)
    page.goto(f"{live}/console/organisation")
    expect(page.get_by_text("Seuls les administrateurs")).to_be_visible()
    assert_accessible(page)
    screenshots(page, "organisation-membre")
    page.get_by_role("button", name="Se déconnecter").click()
    page.wait_for_url(f"{live}/console/connexion")

    login(page, live, org.admin)
    page.goto(f"{live}/console/organisation/code-mediateur")
    assert_accessible(page)
    screenshots(page, "code-mediateur")
    page.get_by_label("Nouveau code médiateur").fill("2468")
    page.get_by_label("Confirmer le code").fill("2469")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Les deux codes ne sont pas identiques.")).to_be_visible()
    assert_accessible(page)
    page.goto(f"{live}/console/organisation/membres")
    page.get_by_role("link", name=f"Modifier {org.member}").click()
    page.wait_for_url(re.compile(r".*/console/organisation/membres/\d+$"))
    assert_accessible(page)
    screenshots(page, "membre")
