"""The funder's dashboard over HTTP (Flask's test client, real SQLite, real scans through the ingest service):
its figures for a funder with two activated orders used at two places in two départements, another funder's
uses never counted, the page a funder's only, and the end-of-validity alert exactly within 30 days."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from console_fixtures import PASSWORD, Site
from money_fixtures import device, scan
from sqlalchemy import select, update
from test_console_funder import order_ids

from aptic import referentiel
from central import schema as t
from central.services import funder_dashboard, funders

FUNDER = "Département de la Gironde"
OTHER = "Région Nouvelle-Aquitaine"
ADMIN = "achats@gironde.fr"
URL = "/console/financeur/tableau-de-bord"
FEB = datetime(2026, 2, 16, 10, 0, tzinfo=UTC)
MAR = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
# Services per carnet (passes of one carnet on one day serve different services), across several categories.
TEN = [1, 14, 30, 45, 60, 84, 95, 100, 110, 125]
FIVE = [2, 31, 61, 101, 126]


@dataclass
class Funder:
    """What ``two_orders`` made: the funder's orders (newest last) and the services its passes were used for."""

    orders: list[int]
    services: list[int]
    commanditaire_id: int


def carnets_of(site: Site, order_id: int) -> list[str]:
    with site.engine.connect() as conn:
        return list(
            conn.execute(
                select(t.carnets.c.carnet).where(t.carnets.c.order_id == order_id).order_by(t.carnets.c.serial)
            ).scalars()
        )


def two_orders(site: Site) -> Funder:
    """The Gironde's funder admin; its two activated orders of 2026 used in February and March at Bègles (33)
    and Dax (40); a third order of 2027 not used yet, and an unpaid one (not counted); the Région's passes used
    at Bègles too (never the Gironde's)."""
    funders.add_user(site.engine, ADMIN, FUNDER, site.clock(), role="admin", password=PASSWORD)
    begles = site.organisation("Médiathèque de Bègles", slug="begles", insee="33039")
    dax = site.organisation("Centre social de Dax", slug="dax", insee="40088")
    at_begles, at_dax = device(site, begles), device(site, dax)
    first = site.carnets(3, 10)  # order 1: 3 carnets of 10 passes at 10 €
    second = site.carnets(2, 5, value_cents=500)  # order 2: 2 carnets of 5 passes at 5 €
    site.carnets(1, 10, millesime=2027)  # order 3: valid next year, unused
    site.carnets(1, 10, activated=False)  # awaiting payment: not on the dashboard
    region = site.carnets(1, 5, commanditaire=OTHER)

    scan(site, begles, at_begles, first[:10], MAR, TEN)  # carnet 1 of order 1: used up
    scan(site, dax, at_dax, first[10:12], FEB, [84, 95])  # carnet 2: started
    scan(site, begles, at_begles, second[:5], FEB, FIVE)  # carnet 1 of order 2: used up
    scan(site, dax, at_dax, second[5:6], MAR, [12])  # carnet 2: started
    scan(site, begles, at_begles, region[:3], MAR, [1, 2, 3])  # another funder's

    ids = order_ids(site, FUNDER)[:2]
    # Three carnets handed to distributors (the form that does it is another page's: set them directly).
    handed = carnets_of(site, ids[0])[:2] + carnets_of(site, ids[1])[:1]
    with site.engine.begin() as conn:
        conn.execute(update(t.carnets).where(t.carnets.c.carnet.in_(handed))
                     .values(distributed_at=site.clock(), distributed_to="CCAS de Bègles"))  # fmt: skip
        gironde = conn.execute(select(t.commanditaires.c.id).where(t.commanditaires.c.name == FUNDER)).scalar_one()
    return Funder(ids, [*TEN, 84, 95, *FIVE, 12], int(gironde))


@pytest.fixture
def gironde(site: Site) -> Funder:
    return two_orders(site)


def expected_categories(services: list[int]) -> dict[str, int]:
    per = Counter(referentiel.service(n).category.code for n in services)
    return {code: per[code] for code in sorted(referentiel.CATEGORIES)}


def test_figures_across_the_funders_orders(site, gironde):
    with site.engine.connect() as conn:
        d = funder_dashboard.dashboard(conn, gironde.commanditaire_id, date(2026, 3, 10))
    total = d.totals
    assert (total.carnets, total.distributed, total.not_distributed, total.started, total.used_up) == (6, 3, 3, 4, 2)
    assert (total.passes, total.passes_used, total.value_used_cents) == (50, 18, 12 * 1000 + 6 * 500)
    assert [o.id for o in d.orders][1:] == gironde.orders[::-1]  # newest first; the 2027 order is first
    by_order = {o.id: o.counts for o in d.orders}
    first, second = (by_order[i] for i in gironde.orders)
    assert (first.carnets, first.distributed, first.started, first.used_up, first.passes_used) == (3, 2, 2, 1, 12)
    assert (second.carnets, second.distributed, second.started, second.used_up, second.passes_used) == (2, 1, 2, 1, 6)

    assert len(d.months) == 12 and d.months[0]["month"] == "2025-04"
    assert [(r["label"], r["passes"]) for r in d.months[-2:]] == [("février 2026", 7), ("mars 2026", 11)]
    assert sum(r["passes"] for r in d.months) == 18  # the Région's 3 passes are not there
    assert [(r["label"], r["passes"]) for r in d.places] == [
        ("Médiathèque de Bègles — Médiathèque de Bègles 1", 15),
        ("Centre social de Dax — Centre social de Dax 1", 3),
    ]
    assert {r["code"]: r["passes"] for r in d.categories} == expected_categories(gironde.services)
    assert len(d.categories) == 9
    assert d.departements == [{"departement": "33", "passes": 15}, {"departement": "40", "passes": 3}]
    assert d.alerts == []


def test_places_beyond_the_top_are_grouped(site, gironde):
    with site.engine.connect() as conn:
        places = funder_dashboard.uses_by_place(conn, gironde.commanditaire_id, top=1)
    assert [(r["label"], r["passes"]) for r in places] == [
        ("Médiathèque de Bègles — Médiathèque de Bègles 1", 15),
        ("Autres lieux (1)", 3),
    ]


def test_another_funder_sees_only_its_own(site, gironde):
    with site.engine.connect() as conn:
        region = conn.execute(select(t.commanditaires.c.id).where(t.commanditaires.c.name == OTHER)).scalar_one()
        d = funder_dashboard.dashboard(conn, region, date(2026, 3, 10))
    assert (d.totals.carnets, d.totals.started, d.totals.passes_used) == (1, 1, 3)
    assert [(r["label"], r["passes"]) for r in d.places] == [("Médiathèque de Bègles — Médiathèque de Bègles 1", 3)]
    assert d.departements == [{"departement": "33", "passes": 3}]


def cells(html: str, table_id: str) -> list[list[str]]:
    """The body rows of a table of the page, as text (tags stripped)."""
    table = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_the_page_shows_the_figures(site, gironde):
    html = site.client(ADMIN).get(URL).get_data(as_text=True)
    for figure, value in (("carnets", "6"), ("distributed", "3"), ("not-distributed", "3"), ("started", "4"),
                          ("used-up", "2"), ("passes-used", "18")):  # fmt: skip
        assert f'id="count-{figure}">{value}<' in html, figure
    assert "Pass utilisés sur 50" in html and "150,00\u00a0€" in html
    assert cells(html, "table-months")[-2:] == [["février 2026", "7"], ["mars 2026", "11"]]
    assert cells(html, "table-places") == [["Médiathèque de Bègles — Médiathèque de Bègles 1", "15"],
                                           ["Centre social de Dax — Centre social de Dax 1", "3"]]  # fmt: skip
    assert cells(html, "table-departements") == [["33", "15"], ["40", "3"]]
    categories = {row[0].split()[0]: int(row[1]) for row in cells(html, "table-categories")}
    assert categories == expected_categories(gironde.services)
    assert 'id="alerts"' not in html
    assert 'id="dashboard-data"' in html and "<script>" not in html  # a data island, no inline script


def test_only_a_funder_reaches_it(site, gironde):
    assert site.client().get(URL).status_code == 302  # to the login page
    site.user("operateur@aptic.fr", operator=True)
    for email in ("admin@begles.fr", "membre@dax.fr", "operateur@aptic.fr"):
        assert site.client(email).get(URL).status_code == 404, email
    funders.add_user(site.engine, "lecture@gironde.fr", FUNDER, site.clock(), password=PASSWORD)  # a reader
    assert site.client("lecture@gironde.fr").get(URL).status_code == 200


@pytest.mark.parametrize(
    ("today", "alerted"),
    [
        (datetime(2026, 11, 30, 12, tzinfo=UTC), False),  # 31 days before 31 December
        (datetime(2026, 12, 1, 12, tzinfo=UTC), True),  # 30 days before
        (datetime(2026, 12, 31, 12, tzinfo=UTC), True),  # the last day
        (datetime(2027, 1, 1, 12, tzinfo=UTC), False),  # over (the tolerance month is not an alert)
    ],
)
def test_the_alert_comes_30_days_before_the_end_of_validity(site, gironde, today, alerted):
    site.clock.set(today)
    html = site.client(ADMIN).get(URL).get_data(as_text=True)
    assert ('id="alerts"' in html) is alerted
    if alerted:
        first, second = gironde.orders
        assert f'id="alert-{first}"' in html and f'id="alert-{second}"' in html
        assert f'href="/console/financeur/commandes/{first}"' in html
        alert = html.split(f'id="alert-{first}"', 1)[1].split("</li>", 1)[0]
        assert "3 carnets émis, 2 distribués, 2 entamés, 1 épuisé" in alert and "18 pass sur 30" in alert
        assert "alert-" + str(gironde.orders[-1] + 1) not in html  # the 2027 order is not ending


def test_an_empty_funder_has_a_complete_page(site):
    funders.add_user(site.engine, ADMIN, FUNDER, site.clock(), role="admin", password=PASSWORD)
    r = site.client(ADMIN).get(URL)
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "Aucune commande activée" in html
    assert cells(html, "table-places") == [["Aucun pass utilisé pour l’instant."]]
