"""Checks the browser tests run on every page: axe-core (WCAG 2 A and AA, zero violations) and screenshots at
phone and desktop sizes in ``artifacts/console/``."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe
from console_fixtures import ARTIFACTS, PASSWORD
from playwright.sync_api import Page

_axe = Axe()
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def login(page: Page, live: str, email: str) -> None:
    """Log in through the login page, as a person would, and land on the dashboard."""
    page.goto(f"{live}/console/connexion")
    page.get_by_label("Adresse e-mail").fill(email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url("**/console/tableau-de-bord")


def assert_accessible(page: Page) -> None:
    """Zero WCAG 2 A/AA violations on the page as it is now, with each violation's nodes in the message."""
    results = _axe.run(
        page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
    )
    violations = results.response["violations"]
    assert not violations, "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} — " + "; ".join(n["target"][0] for n in v["nodes"][:5])
        for v in violations
    )


def screenshots(page: Page, name: str) -> None:
    """Full-page screenshots at phone and desktop widths (then back to desktop)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)
