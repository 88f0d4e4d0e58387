"""The console in Debian's headless Chromium: every page passes axe-core (WCAG 2 A/AA) with zero
violations, at phone and desktop sizes (screenshots in artifacts/console/), with no request leaving the
machine."""

from __future__ import annotations

import pytest
from pages import assert_accessible, login, screenshots

pytestmark = pytest.mark.browser



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
