"""The console in Debian's headless Chromium: every page passes axe-core (WCAG 2 A/AA) with zero
violations, at phone and desktop sizes (screenshots in artifacts/console/), with no request leaving the
machine."""

from __future__ import annotations

import pytest
from console_fixtures import PASSWORD
from pages import assert_accessible, screenshots

pytestmark = pytest.mark.browser


def login(page, live, email):
    page.goto(f"{live}/console/connexion")
    page.get_by_label("Adresse e-mail").fill(email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url("**/console/tableau-de-bord")


def test_the_login_page_and_the_account_page_are_accessible(site, live, page):
    org = site.organisation("Centre social Lucie Aubrac", slug="aubrac")
    page.goto(f"{live}/console/")
    page.wait_for_url("**/console/connexion")
    assert_accessible(page)
    screenshots(page, "connexion")
    login(page, live, org.admin)
    for path, name in (("/console/compte", "compte"), ("/console/mot-de-passe/oubli", "oubli")):
        page.goto(live + path)
        assert_accessible(page)
        screenshots(page, name)
