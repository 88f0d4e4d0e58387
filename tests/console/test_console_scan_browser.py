"""Tester un pass and Scanner des pass in Debian's headless Chromium: a médiateur tests a pass, then scans
passes as a USB douchette types them (digits, or the AZERTY top row of a reader set for a US keyboard), each
listed with its pre-check, and records them all at once; a double click or a reload pays nothing twice; the
scan page works with the keyboard alone; every page passes axe-core."""

from __future__ import annotations

import re

import pytest
from pages import assert_accessible, login, screenshots
from playwright.sync_api import expect
from sqlalchemy import func, select

from aptic.passnumber import AZERTY_TOP_ROW, format_pass
from central import schema as t

pytestmark = pytest.mark.browser

REVERSE_AZERTY = {digit: char for char, digit in AZERTY_TOP_ROW.items()}
SERVICE_LABEL = "95 — Plateforme France Connect"



def recorded(site) -> tuple[int, int]:
    with site.engine.connect() as conn:
        scans = conn.execute(select(func.count()).select_from(t.scans)).scalar_one()
        uses = conn.execute(select(func.count()).select_from(t.pass_uses)).scalar_one()
    return scans, uses


def test_testing_a_pass_shows_its_verdict(site, live, page):
    org = site.organisation("Médiathèque de Pessac", slug="pessac")
    number = site.carnets(1, size=5)[0]
    login(page, live, org.member)
    page.get_by_role("link", name="Tester un pass").click()
    page.wait_for_url("**/console/tester")
    assert_accessible(page)
    page.get_by_label("Numéro du pass").fill(format_pass(number))
    page.get_by_role("button", name="Tester").click()
    verdict = page.get_by_role("status").filter(has_text="Pass valable")
    expect(verdict).to_contain_text("commanditaire Département de la Gironde")
    expect(verdict).to_contain_text("Rien n’a été enregistré")
    expect(page).to_have_title(re.compile("^Pass valable"))
    assert recorded(site) == (0, 0)
    assert_accessible(page)
    screenshots(page, "tester-un-pass")


def test_scanning_passes_as_a_douchette_types_them(site, live, page):
    org = site.organisation("Centre social Lucie Aubrac", slug="aubrac", points=2)
    a, b = site.carnets(2, size=5)[::5]
    login(page, live, org.member)
    page.get_by_role("link", name="Scanner des pass").click()
    page.wait_for_url("**/console/scanner")
    page.get_by_label("Service rendu").select_option(label=SERVICE_LABEL)
    page.get_by_label("Numéro du pass").focus()
    page.keyboard.type(a)  # a douchette: digits, then Enter
    page.keyboard.press("Enter")
    page.keyboard.type("".join(REVERSE_AZERTY[d] for d in b))  # a reader set for a US keyboard, on AZERTY
    page.keyboard.press("Enter")
    items = page.locator("#scan-list li")
    expect(items).to_have_count(2)
    for i, number in enumerate((a, b)):
        expect(items.nth(i)).to_have_class(re.compile(r"\bok\b"))
        expect(items.nth(i)).to_contain_text(format_pass(number))
        expect(items.nth(i)).to_contain_text("Pass valable")
    expect(page.get_by_label("Numéro du pass")).to_have_value("")
    assert recorded(site) == (0, 0)  # the pre-check wrote nothing
    assert_accessible(page)
    screenshots(page, "scanner-des-pass")

    page.get_by_role("button", name="Enregistrer les pass").dblclick()  # an impatient double click
    page.wait_for_url("**/console/scanner")
    rows = page.locator("table.scan-results tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Enregistré")).to_have_count(2)
    expect(page.get_by_role("status").filter(has_text="2 pass enregistrés")).to_be_visible()
    assert recorded(site) == (2, 2)
    assert_accessible(page)
    screenshots(page, "scanner-des-pass-resultat")

    page.reload()  # the browser sends the same form again: a replay, the first results come back
    expect(page.locator("table.scan-results tbody tr").filter(has_text="Enregistré")).to_have_count(2)
    assert recorded(site) == (2, 2)


def test_the_scan_page_works_with_the_keyboard_alone(site, live, page):
    org = site.organisation("Maison France services", slug="mfs")
    a, b, c = site.carnets(3, size=5)[::5]
    login(page, live, org.admin)
    page.goto(f"{live}/console/scanner")
    field = page.get_by_label("Numéro du pass")
    expect(field).to_be_focused()  # ready for the douchette as soon as the page is open
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_label("Service rendu")).to_be_focused()
    page.keyboard.press("ArrowDown")  # the first service of the catalogue
    expect(page.get_by_label("Service rendu")).not_to_have_value("")
    page.keyboard.press("Tab")
    expect(field).to_be_focused()
    for number in (a, format_pass(b), c):
        page.keyboard.type(number)
        page.keyboard.press("Enter")
    items = page.locator("#scan-list li")
    expect(items).to_have_count(3)
    expect(items.locator(".scan-check").filter(has_text="Pass valable")).to_have_count(3)

    page.keyboard.press("Tab")  # the first "Retirer" button: drop the first pass
    expect(items.nth(0).get_by_role("button")).to_be_focused()
    page.keyboard.press("Enter")
    expect(items).to_have_count(2)
    expect(page.locator("#scan-announce")).to_have_text(f"Pass {format_pass(a)} retiré de la liste.")
    submit = page.get_by_role("button", name="Enregistrer les pass")
    for _ in range(6):
        if submit.evaluate("button => button === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(submit).to_be_focused()
    page.keyboard.press("Enter")
    rows = page.locator("table.scan-results tbody tr")
    expect(rows.filter(has_text="Enregistré")).to_have_count(2)
    expect(rows.nth(0)).to_contain_text(format_pass(b))
    assert recorded(site) == (2, 2)


def test_without_javascript_enter_records_the_one_pass_typed(site, live, browser):
    org = site.organisation("Bibliothèque de Talence", slug="talence")
    number = site.carnets(1, size=5)[0]
    context = browser.new_context(locale="fr-FR", java_script_enabled=False)
    context.route("**/*", lambda route, request: route.continue_() if request.url.startswith(live) else route.abort())
    try:
        page = context.new_page()
        login(page, live, org.member)
        page.goto(f"{live}/console/scanner")
        page.get_by_label("Service rendu").select_option(label=SERVICE_LABEL)
        page.get_by_label("Numéro du pass").fill(format_pass(number))
        page.get_by_label("Numéro du pass").press("Enter")
        expect(page.locator("table.scan-results tbody tr").filter(has_text="Enregistré")).to_have_count(1)
        assert recorded(site) == (1, 1)
    finally:
        context.close()
