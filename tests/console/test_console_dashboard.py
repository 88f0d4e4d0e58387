"""Tableau de bord (issue 13, item 6): its numbers against real scans, and its queries against the indexes.

The page's numbers are read from its tables and from its JSON data island (what the charts draw); the
query plans with SQLite's ``EXPLAIN QUERY PLAN`` and PostgreSQL's ``EXPLAIN`` (sequential scans disabled, so
a plan that still reads the table means no index can serve the query)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from console_fixtures import Site
from money_fixtures import device, scan
from sqlalchemy import Select, text, update

from central import schema as t
from central.db import make_engine, migrate
from central.pgtemp import PostgresUnavailable, TempCluster
from central.services import admin, dashboard, payments, statements

FEB = datetime(2026, 2, 16, 10, 0, tzinfo=UTC)
MAR = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)


def island(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>', html, re.S)
    assert match, "no data island"
    return json.loads(match.group(1))


def table(html: str, table_id: str) -> list[list[str]]:
    """The body rows of a table, each as its cells' text."""
    body = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, table_id
    rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    return [[unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)]
            for r in rows]  # fmt: skip


def figure(html: str, figure_id: str) -> int:
    match = re.search(rf'id="{figure_id}">([^<]*)<', html)
    assert match, figure_id
    return int(match.group(1))


@pytest.fixture
def scene(site: Site):
    """A: 10 passes in February (services 1-10), 4 in March (3 of a second funder); B: 2 in January; C: not
    qualified. Points with coordinates: A's 2 new ones, B's 1, C's 1 (not on the map: C is not qualified)."""
    site.app.config["CONSOLE_NATIONAL_TTL"] = 0  # every view recomputes: the test adds scans between views
    a, b, c = (site.organisation(name, slug=slug) for name, slug in (("Médiathèque A", "a"), ("Centre B", "b"),
                                                                     ("Association C", "c")))  # fmt: skip
    now = site.clock()
    admin.add_point(site.engine, a.id, "Bibliothèque du centre", "33063", ["BIB"], now, latitude=44.84, longitude=-0.58)
    admin.add_point(site.engine, a.id, "Annexe des Aubiers", "33063", ["BIB"], now, latitude=44.87, longitude=-0.57)
    admin.add_point(site.engine, b.id, "Centre social", "33522", ["CS"], now, latitude=44.80, longitude=-0.55)
    admin.add_point(site.engine, c.id, "Local associatif", "33039", ["ASSO"], now, latitude=44.78, longitude=-0.56)
    with site.engine.begin() as conn:
        conn.execute(update(t.organisations).where(t.organisations.c.id == c.id).values(qualified=False))
    dev_a, dev_b = device(site, a), device(site, b)
    scan(site, a, dev_a, site.carnets(1, 10), FEB)
    region = site.carnets(1, 5, commanditaire="Région Nouvelle-Aquitaine")
    scan(site, a, dev_a, region[:2], MAR, [84, 95])
    scan(site, a, dev_a, region[2:3], MAR + timedelta(days=1), [95])  # a carnet pays a service once a day
    scan(site, a, dev_a, site.carnets(1, 5)[:1], MAR, [95])
    scan(site, b, dev_b, site.carnets(1, 5)[:2], datetime(2026, 1, 20, 10, tzinfo=UTC))
    return a, b, c


def test_dashboard_numbers_match_the_scans(site, scene):
    a, b, _ = scene
    html = site.client(a.member).get("/console/tableau-de-bord").get_data(as_text=True)
    assert figure(html, "org-total") == 14
    months = table(html, "table-months")
    assert [row[0] for row in months][-3:] == ["janvier 2026", "février 2026", "mars 2026"]
    assert months[0][0] == "avril 2025" and len(months) == 12
    # février: services 1-10 are levels 1 (services 1-40ish); the total column is what counts here
    assert months[-2][-1] == "10" and months[-1][-1] == "4" and months[-3][-1] == "0"
    assert table(html, "table-services")[0] == ["95. Plateforme France Connect", "3"]
    assert table(html, "table-funders") == [["Département de la Gironde", "11"], ["Région Nouvelle-Aquitaine", "3"]]
    # National: every organisation's passes, qualified organisations and their points.
    assert figure(html, "national-total") == 16
    national = {row[0]: row[1] for row in table(html, "table-national")}
    assert national["janvier 2026"] == "2" and national["février 2026"] == "10" and national["mars 2026"] == "4"
    assert table(html, "table-national-funders") == [["Département de la Gironde", "13"],
                                                     ["Région Nouvelle-Aquitaine", "3"]]  # fmt: skip
    assert figure(html, "national-organisations") == 2
    assert figure(html, "national-points") == 2 + 1 + 2  # A: 1 + 2, B: 1 + 1; C is not qualified
    # The charts draw the very numbers of the tables.
    data = island(html)
    charts = {chart["id"]: chart for chart in data["charts"]}
    assert [sum(col) for col in zip(*(d["data"] for d in charts["chart-months"]["datasets"]), strict=True)] == [
        int(row[-1]) for row in months
    ]
    assert charts["chart-funders"]["datasets"][0]["data"] == [11, 3]
    assert sorted(p["name"] for p in data["places"]) == ["Annexe des Aubiers", "Bibliothèque du centre",
                                                          "Centre social"]  # fmt: skip
    assert data["tiles"] == ""
    # B sees its own figures, and the same national ones.
    other = site.client(b.member).get("/console/tableau-de-bord").get_data(as_text=True)
    assert figure(other, "org-total") == 2 and figure(other, "national-total") == 16


def test_a_new_scan_shows_once_the_national_cache_expires(site, scene):
    _, b, _ = scene
    site.app.config["CONSOLE_NATIONAL_TTL"] = 3600
    client = site.client(b.member)
    assert figure(client.get("/console/tableau-de-bord").get_data(as_text=True), "national-total") == 16
    scan(site, b, device(site, b), site.carnets(1, 5)[:1], MAR)
    html = client.get("/console/tableau-de-bord").get_data(as_text=True)
    assert figure(html, "org-total") == 3  # the organisation's own figures are always live
    assert figure(html, "national-total") == 16  # the national ones, from the cache
    site.app.config["CONSOLE_NATIONAL_TTL"] = 0
    assert figure(client.get("/console/tableau-de-bord").get_data(as_text=True), "national-total") == 17


def test_the_page_without_scans_or_places(site):
    org = site.organisation("Tiers-lieu", slug="vide")
    html = site.client(org.member).get("/console/tableau-de-bord").get_data(as_text=True)
    assert figure(html, "org-total") == 0
    assert "Aucun pass accepté sur la période." in html
    assert island(html)["places"] == []


# --- Query plans -------------------------------------------------------------------------------------------

MONTHS = dashboard.last_months("2026-03")


def _queries() -> dict[str, Select]:
    return {
        "organisation": dashboard.organisation_query(1, MONTHS),
        "national": dashboard.national_query(MONTHS),
        "places": dashboard.points_query(),
        "open months": payments.open_months_query(1, {"2026-01", "2026-02"}),
    }


def _sql(query: Select, engine) -> str:
    return str(query.compile(engine, compile_kwargs={"literal_binds": True}))


def test_sqlite_plans_read_indexes_not_the_scans_table(site, scene):
    with site.engine.connect() as conn:
        for name, query in _queries().items():
            plan = [row[-1] for row in conn.execute(text("EXPLAIN QUERY PLAN " + _sql(query, site.engine)))]
            on_scans = [line for line in plan if re.search(r"\bscans\b", line)]
            assert all(line.startswith("SEARCH scans USING") for line in on_scans), (name, plan)
            if name in ("organisation", "national"):
                assert all("COVERING INDEX" in line for line in on_scans), (name, plan)
                assert "TEMP B-TREE FOR GROUP BY" not in " ".join(plan), (name, plan)  # groups in index order


@pytest.fixture(scope="module")
def pg_url():
    try:
        cluster = TempCluster.start()
    except PostgresUnavailable as error:
        pytest.fail(str(error))
    try:
        yield cluster.new_database()
    finally:
        cluster.stop()


@pytest.mark.postgres
def test_postgresql_plans_use_the_indexes(pg_url):
    engine = make_engine(pg_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            conn.execute(text("SET enable_seqscan = off"))  # what remains a Seq Scan has no index to use
            for name, query in _queries().items():
                plan = "\n".join(conn.execute(text("EXPLAIN " + _sql(query, engine))).scalars())
                assert "Seq Scan on scans" not in plan, (name, plan)
                if name in ("organisation", "national"):
                    assert "Index Only Scan using ix_scans_" in plan, (name, plan)
    finally:
        engine.dispose()


def test_closing_a_month_leaves_the_dashboard_counting_by_service_month(site, scene):
    a, _, _ = scene
    statements.close_month(site.engine, "2026-02", site.clock())
    html = site.client(a.member).get("/console/tableau-de-bord").get_data(as_text=True)
    assert table(html, "table-months")[-2][-1] == "10"
