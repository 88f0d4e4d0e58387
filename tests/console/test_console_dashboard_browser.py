"""The dashboard and the counter-payments in headless Chromium: charts drawn from the same numbers as their
tables, the map's markers with the tiles blocked (every non-loopback request is aborted), axe-core, and a
statement downloaded as a person would and read back."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from money_fixtures import device, scan
from pages import assert_accessible, login, screenshots
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from central.services import admin, statements

pytestmark = pytest.mark.browser

FEB = datetime(2026, 2, 16, 10, 0, tzinfo=UTC)
MAR = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)


@pytest.fixture
def member(site):
    """A member of an organisation with passes in February (closed) and March, and three points on the map."""
    org = site.organisation("Médiathèque de Bègles", slug="begles")
    other = site.organisation("Centre social de Talence", slug="talence")
    now = site.clock()
    for name, lat, lon in (("Bibliothèque", 44.808, -0.548), ("Annexe du Prêche", 44.800, -0.540)):
        admin.add_point(site.engine, org.id, name, "33039", ["BIB"], now, latitude=lat, longitude=lon)
    admin.add_point(site.engine, other.id, "Espace numérique", "33522", ["CS"], now, latitude=44.80, longitude=-0.59)
    dev = device(site, org)
    scan(site, org, dev, site.carnets(1, 10), FEB)
    region = site.carnets(1, 5, commanditaire="Région Nouvelle-Aquitaine")
    scan(site, org, dev, region[:2], MAR, [84, 95])
    scan(site, org, dev, region[2:4], MAR + timedelta(days=1), [95, 3])
    scan(site, other, device(site, other), site.carnets(1, 5)[:3], MAR)
    statements.close_month(site.engine, "2026-02", now)
    return org.member



def table_cells(page: Page, table_id: str) -> list[list[str]]:
    return page.eval_on_selector(
        f"#{table_id}", "t => [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.textContent.trim()))"
    )


def test_dashboard_charts_equal_their_tables_and_the_map_works_without_tiles(page, live, member):
    login(page, live, member)
    page.goto(live + "/console/tableau-de-bord")
    canvases = page.eval_on_selector_all("canvas[data-table]", "cs => cs.map(c => [c.id, c.dataset.table])")
    assert len(canvases) == 4
    for canvas_id, table_id in canvases:
        page.wait_for_function("id => window.Chart && Chart.getChart(document.getElementById(id))", arg=canvas_id)
        chart = page.evaluate(
            "id => { const c = Chart.getChart(document.getElementById(id));"
            " return {labels: c.data.labels, data: c.data.datasets.map(d => d.data)}; }",
            canvas_id,
        )
        rows = table_cells(page, table_id)
        if chart["labels"]:
            assert chart["labels"] == [row[0] for row in rows], canvas_id
            for i, series in enumerate(chart["data"]):  # dataset i is the table's column i + 1
                assert series == [int(row[i + 1]) for row in rows], canvas_id
        else:
            assert rows == [["Aucun pass accepté sur la période."]], canvas_id
    months = table_cells(page, "table-months")
    assert [row[-1] for row in months[-2:]] == ["10", "4"]
    assert table_cells(page, "table-national")[-1] == ["mars 2026", "7"]
    # The map: one marker per qualified point with coordinates, drawn with every tile request blocked.
    expect(page.locator("#map .leaflet-marker-icon")).to_have_count(3)
    assert not page.locator("#map .leaflet-tile").count()
    page.locator("#map .leaflet-marker-icon[title='Bibliothèque']").click()
    expect(page.locator(".leaflet-popup-content")).to_contain_text("Médiathèque de Bègles")
    page.keyboard.press("Escape")
    page.get_by_text("Liste des 3 points de présence de la carte").click()
    expect(page.locator("#table-places tbody tr")).to_have_count(3)
    assert_accessible(page)
    screenshots(page, "dashboard")
    assert not [e for e in page.console_errors if "net::ERR_FAILED" not in e], page.console_errors


def test_counter_payments_page_and_downloads(page, live, member, tmp_path):
    login(page, live, member)
    page.get_by_role("link", name="Contre-paiements").click()
    expect(page.get_by_role("heading", name="Mois en cours : mars 2026")).to_be_visible()
    expect(page.get_by_role("row", name="février 2026")).to_contain_text("En attente de paiement")
    assert_accessible(page)
    screenshots(page, "contre-paiements")
    with page.expect_download() as info:
        page.get_by_role("link", name="CSV pour tableur de mars 2026").click()
    download = info.value
    assert download.suggested_filename.endswith("-2026-03.tableur.csv")
    rows = list(csv.DictReader(io.StringIO(download.path().read_text("utf-8-sig")), delimiter=";"))
    total = rows[-1]
    assert total["rubrique"] == "total" and total["pass"] == "4" and total["net"] == "38,40"

    page.get_by_role("link", name="février 2026").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Relevé de février 2026")
    assert_accessible(page)
    screenshots(page, "contre-paiements-mois")
    with page.expect_download() as info:
        page.get_by_role("link", name="Relevé PDF de février 2026").click()
    reader = PdfReader(info.value.path())
    text = " ".join(
        " ".join(p.extract_text() for p in reader.pages).replace("\xa0", " ").replace("\u202f", " ").split()
    )
    assert "Total du mois 10 100,00 € 4,00 € 96,00 €" in text
    assert "Médiathèque de Bègles" in text and "En attente de paiement" in text
