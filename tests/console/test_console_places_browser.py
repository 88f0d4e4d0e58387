"""The catalogue and the points de présence in Debian's headless Chromium: an admin edits the catalogue and
creates a bus with its stops; every page passes axe-core (WCAG 2 A/AA) for a member and an admin, at phone
and desktop sizes (screenshots in artifacts/console/)."""

from __future__ import annotations

import pytest
from pages import assert_accessible, login, screenshots
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PANORAMA_PRICE = "Tarif de « Panorama des objets connectés (Domotique, Sécurité, Santé) » (€)"  # service 10



def test_an_admin_edits_the_catalogue(site, live, page):
    org = site.organisation("Médiathèque de Bègles", slug="begles")
    login(page, live, org.admin)
    page.goto(f"{live}/console/catalogue")
    assert_accessible(page)
    screenshots(page, "catalogue-admin")

    page.locator("summary", has_text="Faire ses démarches en ligne").click()  # opens the category 2.2
    service = page.get_by_label("95. Plateforme France Connect", exact=True)
    expect(service).to_be_checked()
    service.uncheck()
    page.get_by_label("Tarif de « Plateforme France Connect » (€)").fill("abc")
    page.locator("summary", has_text="S’informer").click()
    price = page.get_by_label(PANORAMA_PRICE)
    price.fill("1500")
    page.get_by_role("button", name="Enregistrer le catalogue").click()
    expect(page.get_by_role("alert")).to_contain_text("Le catalogue n’a pas été enregistré")
    assert_accessible(page)  # the form with its error
    screenshots(page, "catalogue-erreur")
    page.get_by_role("alert").get_by_role("link", name="10. Panorama des objets connectés").click()
    expect(price).to_be_focused()
    price.fill("12,50")
    page.get_by_role("button", name="Enregistrer le catalogue").click()
    expect(page.get_by_text("Catalogue enregistré.")).to_be_visible()

    page.reload()
    expect(page.get_by_text("propose 128 des 129 services")).to_be_visible()
    expect(page.get_by_label("95. Plateforme France Connect", exact=True)).not_to_be_checked()
    expect(page.get_by_label(PANORAMA_PRICE)).to_have_value("12,50")


def test_a_member_reads_the_catalogue(site, live, page):
    org = site.organisation("Médiathèque de Bègles", slug="begles")
    login(page, live, org.member)
    page.goto(f"{live}/console/catalogue")
    expect(page.get_by_role("button", name="Enregistrer le catalogue")).to_have_count(0)
    page.locator("summary", has_text="Faire ses démarches en ligne").click()
    expect(page.get_by_role("cell", name="Plateforme France Connect")).to_be_visible()
    assert_accessible(page)
    screenshots(page, "catalogue-membre")


def test_an_admin_creates_a_bus_with_its_stops(site, live, page):
    org = site.organisation("Médiathèque de Bègles", slug="begles")
    login(page, live, org.admin)
    page.goto(f"{live}/console/points-de-presence")
    assert_accessible(page)
    screenshots(page, "points")
    page.get_by_role("link", name="Ajouter un point de présence").click()
    page.wait_for_url("**/points-de-presence/nouveau")
    assert_accessible(page)
    screenshots(page, "point-nouveau")

    page.get_by_label("Nom").fill("Bus numérique")
    page.get_by_label("Code postal").fill("33130")
    page.get_by_label("Commune", exact=True).fill("Bègles")
    page.get_by_label("Code INSEE de la commune").fill("33039")
    page.get_by_label("Horaires", exact=True).fill("Mo-Fr 9h-12h; Sa 25:00-26:00")
    page.get_by_label("Ce lieu se déplace").check()
    page.get_by_label("Espace public numérique").check()
    stop = page.get_by_role("group", name="Arrêt 1")
    stop.get_by_label("Lieu").fill("Place du marché")
    stop.get_by_label("Code INSEE").fill("33318")
    stop.get_by_label("Horaires de l’arrêt").fill("We 09:00-12:00")
    page.get_by_role("button", name="Créer le point de présence").click()

    expect(page.get_by_role("alert")).to_contain_text("corrigez les champs signalés")
    hours = page.get_by_label("Horaires", exact=True)
    expect(hours).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-hours-error")).to_contain_text("heure impossible")
    assert_accessible(page)
    screenshots(page, "point-erreur")
    hours.fill("Mo-Fr 09:00-12:00,14:00-17:00; Sa 10:00-12:00; PH off")
    page.get_by_role("button", name="Créer le point de présence").click()

    expect(page.get_by_text("Point de présence « Bus numérique » créé.")).to_be_visible()
    expect(page.get_by_role("heading", name="Bus numérique")).to_be_visible()
    expect(page.get_by_role("cell", name="Place du marché")).to_be_visible()
    expect(page.get_by_text("Mo-Fr 09:00-12:00,14:00-17:00; Sa 10:00-12:00; PH off")).to_be_visible()
    expect(page.get_by_text("Du lundi au vendredi : de 9 h à 12 h et de 14 h à 17 h")).to_be_visible()
    assert_accessible(page)
    screenshots(page, "point")
    page.get_by_role("link", name="Modifier").click()
    expect(page.get_by_role("group", name="Arrêt 1").get_by_label("Lieu")).to_have_value("Place du marché")
    assert_accessible(page)
