"""Who reaches what: every console URL × role × organisation, on SQLite and PostgreSQL.

Roles: nobody logged in, a member and an admin of organisation A, an admin of organisation B, the operator
and a funder's admin (no place membership: the places' pages are not theirs). Answers: 200, a redirect to the login page
(``login``), or 404 — never 403, and never another organisation's data. Objects of A (a point, a member, a
month's statement) are requested by everyone, so B's admin must get 404 where A's own people get 200.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_fixtures import PASSWORD, Client, Site, serve_site
from money_fixtures import device, scan
from sqlalchemy import select

from central import schema as t
from central.services import funders

ROLES = ("anonymous", "member_a", "admin_a", "admin_b", "operator", "funder")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_site(request: pytest.FixtureRequest, clock, tmp_path: Path) -> Iterator[Site]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'central.db'}"
    else:
        url = request.getfixturevalue("pg_server").new_database()
    yield from serve_site(url, clock, tmp_path)


def matrix(site: Site) -> tuple[dict[str, Client], list[tuple[str, dict[str, int | str]]]]:
    a = site.organisation("Médiathèque A", slug="a")
    b = site.organisation("Centre social B", slug="b")
    site.user("operateur@aptic.fr", operator=True)
    funders.add_user(site.engine, "financeur@gironde.fr", "Département de la Gironde", site.clock(), role="admin",
                     password=PASSWORD)  # fmt: skip
    passes = site.carnets(1)
    scan(site, a, device(site, a), passes[:1], site.clock())
    month = site.clock().strftime("%Y-%m")
    member_a = site.user(a.member, a.id)  # an existing user: returns their id
    with site.engine.connect() as conn:
        order = conn.execute(select(t.orders.c.id)).scalar_one()  # the Gironde's: the funder's own
        gironde = conn.execute(select(t.orders.c.commanditaire_id)).scalar_one()
    draft = funders.create_request(
        site.engine,
        gironde,
        {"carnet_size": "5", "quantity": "1", "millesime": str(site.clock().year)},
        None,
        site.clock(),
    )
    clients = {
        "anonymous": Client(site.app),
        "member_a": site.client(a.member),
        "admin_a": site.client(a.admin),
        "admin_b": site.client(b.admin),
        "operator": site.client("operateur@aptic.fr"),
        "funder": site.client("financeur@gironde.fr"),
    }
    everyone = answers(member_a=200, admin_a=200, admin_b=200)
    admins = answers(admin_a=200, admin_b=200)
    a_only = answers(member_a=200, admin_a=200)
    a_admin_only = answers(admin_a=200)
    operator_only = answers(operator=200)
    funder_only = answers(funder=200)
    point = a.points[0]
    urls: list[tuple[str, dict[str, int | str]]] = [
        ("/console/tableau-de-bord", everyone),
        ("/console/tester", everyone),
        ("/console/scanner", everyone),
        ("/console/contre-paiements", everyone),
        ("/console/catalogue", everyone),
        ("/console/points-de-presence", everyone),
        ("/console/organisation", everyone),
        ("/console/points-de-presence/nouveau", admins),
        ("/console/organisation/membres", admins),
        ("/console/organisation/membres/inviter", admins),
        ("/console/organisation/journal", admins),
        ("/console/organisation/banque", admins),
        ("/console/organisation/code-mediateur", admins),
        (f"/console/points-de-presence/{point}", a_only),
        (f"/console/points-de-presence/{point}/modifier", a_admin_only),
        (f"/console/organisation/membres/{member_a}", a_admin_only),
        # A month's statement is the session's organisation's own: B's admin gets B's (empty) one.
        (f"/console/contre-paiements/{month}", everyone),
        (f"/console/contre-paiements/{month}/releve.csv", everyone),
        (f"/console/contre-paiements/{month}/releve-tableur.csv", everyone),
        (f"/console/contre-paiements/{month}/releve.pdf", everyone),
        ("/console/compte", {**everyone, "operator": 200, "funder": 200}),
        ("/console/financeur/commandes", funder_only),
        ("/console/financeur/commandes/nouvelle", funder_only),
        ("/console/financeur/tableau-de-bord", funder_only),
        (f"/console/financeur/commandes/{order}", funder_only),
        (f"/console/financeur/commandes/{order}/utilisation.csv", funder_only),
        (f"/console/financeur/demandes/{draft}/modifier", funder_only),
        *(
            (f"/console/operateur/{page}", operator_only)
            for page in ("organisations", "carnets", "commandes", "releves", "parc", "journal")
        ),
    ]
    return clients, urls


def answers(**allowed: int) -> dict[str, int | str]:
    """What each role gets: the login page when anonymous, the given status, else 404."""
    return {"anonymous": "login", **{role: 404 for role in ROLES[1:]}, **allowed}


def outcome(response) -> int | str:  # type: ignore[no-untyped-def]
    if response.status_code == 302 and "/console/connexion" in response.headers["Location"]:
        return "login"
    return response.status_code


def test_every_url_answers_each_role_as_it_should(any_site: Site) -> None:
    clients, urls = matrix(any_site)
    wrong = []
    for url, expected in urls:
        for role in ROLES:
            got = outcome(clients[role].get(url))
            if got != expected[role]:
                wrong.append(f"{role} GET {url}: {got}, expected {expected[role]}")
    assert not wrong, "\n".join(wrong)
    month = any_site.clock().strftime("%Y-%m")
    totals = {role: csv_total(clients[role].get(f"/console/contre-paiements/{month}/releve.csv"))
              for role in ("member_a", "admin_b")}  # fmt: skip
    assert totals == {"member_a": "1", "admin_b": "0"}  # A's scan is in A's statement only


def csv_total(response) -> str:  # type: ignore[no-untyped-def]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    return next(r["pass"] for r in rows if r["rubrique"] == "total")


def test_writes_to_another_organisations_objects_are_404_and_change_nothing(site: Site) -> None:
    clients, _urls = matrix(site)
    intruder = clients["admin_b"]
    with site.engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT name FROM points ORDER BY id").all()
    edit = f"/console/points-de-presence/{site_point_of_a(site)}/modifier"
    r = intruder.post(edit, {"name": "Pris", "insee": "33039"}, form_page="/console/points-de-presence/nouveau")
    assert r.status_code == 404
    member_page = f"/console/organisation/membres/{site.user('membre@a.fr')}"
    r = intruder.post(member_page, {"role": "admin"}, form_page="/console/compte")
    assert r.status_code in (302, 404)  # re-authentication first, then 404; never a change
    with site.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT name FROM points ORDER BY id").all() == before
        roles = conn.exec_driver_sql("SELECT role FROM memberships m JOIN users u ON u.id = m.user_id "
                                     "WHERE u.email = 'membre@a.fr'").all()  # fmt: skip
    assert [r.role for r in roles] == ["member"]


def site_point_of_a(site: Site) -> int:
    with site.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT p.id FROM points p JOIN organisations o ON o.id = p.organisation_id "
                                    "WHERE o.name = 'Médiathèque A' ORDER BY p.id LIMIT 1").scalar_one()  # fmt: skip
