"""The funder's dashboard in Debian's headless Chromium: its three charts are drawn (pixels on the canvas) from
the same numbers as the tables beside them, the end-of-validity alert links to its order, and the page passes
axe-core (WCAG 2 A/AA) (screenshots in artifacts/console/)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from console_fixtures import PASSWORD
from pages import assert_accessible, screenshots
from playwright.sync_api import Page, expect
from test_console_funder_dashboard import ADMIN, URL, two_orders

pytestmark = pytest.mark.browser

# How many pixels of a canvas are not transparent: > 0 once Chart.js has drawn on it.
PAINTED = """id => { const c = document.getElementById(id);
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < px.length; i += 4) { if (px[i]) { n++; } } return n; }"""


def table_cells(page: Page, table_id: str) -> list[list[str]]:
    return page.eval_on_selector(
        f"#{table_id}", "t => [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.textContent.trim()))"
    )


def test_the_charts_are_drawn_from_the_tables_numbers(site, live, page):
    funder = two_orders(site)
    site.clock.set(datetime(2026, 12, 11, 10, tzinfo=UTC))  # 20 days before the end of the 2026 orders

    page.goto(f"{live}/console/connexion")
    page.get_by_label("Adresse e-mail").fill(ADMIN)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(live + URL)  # a funder's home
    expect(page.get_by_role("heading", name="Fin de validité dans moins de 30 jours")).to_be_visible()

    canvases = page.eval_on_selector_all("canvas[data-table]", "cs => cs.map(c => [c.id, c.dataset.table])")
    assert [c for c, _ in canvases] == ["chart-months", "chart-places", "chart-categories"]
    for canvas_id, table_id in canvases:
        page.wait_for_function("id => window.Chart && Chart.getChart(document.getElementById(id))", arg=canvas_id)
        assert page.evaluate(PAINTED, canvas_id) > 0, canvas_id
        chart = page.evaluate(
            "id => { const c = Chart.getChart(document.getElementById(id));"
            " return {labels: c.data.labels, data: c.data.datasets[0].data}; }",
            canvas_id,
        )
        rows = table_cells(page, table_id)
        assert chart["labels"] == [row[0] for row in rows], canvas_id
        assert chart["data"] == [int(row[1]) for row in rows], canvas_id
    months = table_cells(page, "table-months")
    assert months[0][0] == "janvier 2026" and months[1:3] == [["février 2026", "7"], ["mars 2026", "11"]]
    assert sum(int(n) for _, n in table_cells(page, "table-categories")) == 18

    assert_accessible(page)
    screenshots(page, "funder-dashboard")
    page.get_by_role("link", name=f"Commande {funder.orders[0]}").first.click()
    page.wait_for_url(f"{live}/console/financeur/commandes/{funder.orders[0]}")
    assert not [e for e in page.console_errors if "net::ERR_FAILED" not in e], page.console_errors
