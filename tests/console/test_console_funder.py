"""A funder's pages over HTTP (Flask's test client, CSRF on, real SQLite): a funder sees its own orders only,
requests carnets (draft, then submitted), the operator activates the request from their « Commandes » page,
and the funder then follows the carnets' use (tables, CSV) and is warned before their validity ends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from console_fixtures import PASSWORD, SECRET
from money_fixtures import device, scan
from sqlalchemy import select
from test_console_operator import OPERATOR, act

from aptic import passnumber
from central import schema as t
from central.cli import main as cli_main
from central.services import funders

FUNDER = "Département de la Gironde"
ADMIN = "achats@gironde.fr"
READER = "lecture@gironde.fr"
NEW = "/console/financeur/commandes/nouvelle"
ORDERS = "/console/financeur/commandes"


@pytest.fixture
def funder(site):
    for email, role in ((ADMIN, "admin"), (READER, "reader")):
        funders.add_user(site.engine, email, FUNDER, site.clock(), role=role, password=PASSWORD)
    return site.client(ADMIN)


def order_ids(site, name):
    with site.engine.connect() as conn:
        return list(
            conn.execute(
                select(t.orders.c.id)
                .join(t.commanditaires, t.commanditaires.c.id == t.orders.c.commanditaire_id)
                .where(t.commanditaires.c.name == name)
            ).scalars()
        )


def test_a_funder_sees_its_own_orders_only(site, funder):
    site.carnets(2, commanditaire=FUNDER)
    site.carnets(1, commanditaire="Région Nouvelle-Aquitaine")
    mine, theirs = order_ids(site, FUNDER)[0], order_ids(site, "Région Nouvelle-Aquitaine")[0]
    login = site.client().login(ADMIN)
    assert login.headers["Location"].endswith(ORDERS)  # a funder's home
    page = funder.get(ORDERS).get_data(as_text=True)
    assert f"Commande {mine}" in page and f"Commande {theirs}" not in page
    assert funder.get(f"{ORDERS}/{mine}").status_code == 200
    assert funder.get(f"{ORDERS}/{theirs}").status_code == 404
    assert funder.get(f"{ORDERS}/{theirs}/utilisation.csv").status_code == 404
    assert funder.get("/console/tableau-de-bord").status_code == 404  # a place's page
    assert funder.get("/console/operateur/commandes").status_code == 404

    org = site.organisation("Médiathèque de Bègles", slug="begles")
    site.user(OPERATOR, operator=True)
    for email in (org.admin, OPERATOR):
        assert site.client(email).get(ORDERS).status_code == 404
        assert site.client(email).get(f"{ORDERS}/{mine}").status_code == 404


def test_a_reader_cannot_order(site, funder):
    reader = site.client(READER)
    assert reader.get(ORDERS).status_code == 200
    assert "Nouvelle commande" not in reader.get(ORDERS).get_data(as_text=True)
    assert reader.get(NEW).status_code == 404


def test_a_bad_request_is_refused_field_by_field(site, funder):
    r = funder.post(NEW, {"carnet_size": "7", "quantity": "0", "millesime": "1999", "territories": "33, ZZ"})
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert 'id="f-quantity-error"' in html and "ZZ" in html and 'id="f-carnet_size-error"' in html


def test_request_submit_activate_use(site, funder):
    year = site.clock().year
    r = funder.post(NEW, {"carnet_size": "5", "quantity": "3", "millesime": str(year), "territories": "33"})
    assert r.status_code == 302
    page = funder.get(ORDERS).get_data(as_text=True)
    assert "Brouillon" in page and "3 × 5 pass" in page
    (request_id,) = [r.id for r in funders.requests(site.engine.connect(), status="draft")]

    # A draft is not the operator's business yet.
    site.user(OPERATOR, operator=True)
    operator = site.client(OPERATOR)
    assert f"Activer la demande {request_id}" not in operator.get("/console/operateur/commandes").get_data(True)

    submit = f"/console/financeur/demandes/{request_id}/soumission"
    assert funder.post(submit, form_page=ORDERS).status_code == 302
    assert "Soumise" in funder.get(ORDERS).get_data(as_text=True)
    assert funder.post(submit, form_page=ORDERS).status_code == 302  # twice: refused with a message, no change

    site.clock.advance(minutes=11)
    page = "/console/operateur/commandes"
    assert f"Activer la demande {request_id}" in operator.get(page).get_data(as_text=True)
    url = f"/console/operateur/demandes/{request_id}/activation"
    assert act(operator, url, {"reason": ""}, page).status_code == 400  # a reason is required
    r = act(operator, url, {"reason": "Virement reçu"}, page)
    assert r.status_code == 302
    assert act(operator, url, {"reason": "Encore"}, page).status_code == 409  # issued once only
    (order_id,) = order_ids(site, FUNDER)
    with site.engine.connect() as conn:
        req = conn.execute(select(t.order_requests).where(t.order_requests.c.id == request_id)).one()
        order = conn.execute(select(t.orders).where(t.orders.c.id == order_id)).one()
        logged = conn.execute(select(t.audit_log.c.action)).scalars().all()
    assert (req.status, req.order_id) == ("activated", order_id)
    assert order.activated and order.carnet_size == 5 and order.serial_last - order.serial_first == 2
    assert order.territories == "33"
    assert {"funder.request_created", "funder.request_submitted", "operator.request_activated"} <= set(logged)

    page = funder.get(ORDERS).get_data(as_text=True)
    assert "Activée" in page and f"Commande {order_id}" in page
    report = funder.get(f"{ORDERS}/{order_id}").get_data(as_text=True)
    assert "<strong>3</strong> carnets émis" in report and "Aucun pass utilisé" in report

    # A pass of it scanned at a place in Gironde: the funder sees where and for what.
    auth = passnumber.hmac_authenticator(SECRET)
    number = passnumber.build(year, order.serial_first, 1, auth)
    org = site.organisation("Médiathèque de Bègles", slug="begles")
    scan(site, org, device(site, org), [number], site.clock(), services=[12])
    report = funder.get(f"{ORDERS}/{order_id}").get_data(as_text=True)
    assert "<strong>1</strong> carnets entamés" in report and "<strong>1</strong> pass utilisés sur 15" in report
    assert "Médiathèque de Bègles 1" in report and ">12<" in report
    csv = funder.get(f"{ORDERS}/{order_id}/utilisation.csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    lines = csv.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0].startswith("date,pass,carnet,service") and len(lines) == 2
    assert "Médiathèque de Bègles" in lines[1] and ",12," in lines[1]


def test_validity_alert_30_days_before_the_end(site, funder):
    site.carnets(1, commanditaire=FUNDER)
    (order_id,) = order_ids(site, FUNDER)
    url = f"{ORDERS}/{order_id}"
    assert 'role="alert"' not in funder.get(url).get_data(as_text=True)
    site.clock.set(site.clock().replace(month=12, day=31) - timedelta(days=20))
    html = funder.get(url).get_data(as_text=True)
    assert 'role="alert"' in html and "dans 20 jours" in html


def test_the_cli_adds_funder_users(site, tmp_path, capsys):
    db = str(site.engine.url)
    assert cli_main(["add-user", "--db", db, "--email", "compta@cd40.fr", "--funder", "Département des Landes",
                     "--role", "admin"]) == 0  # fmt: skip
    assert cli_main(["add-user", "--db", db, "--email", "vue@cd40.fr", "--funder", "Département des Landes"]) == 0
    with site.engine.connect() as conn:
        roles = conn.execute(select(t.funder_memberships.c.role).order_by(t.funder_memberships.c.user_id)).all()
        names = conn.execute(select(t.commanditaires.c.name)).scalars().all()
    assert [r.role for r in roles] == ["admin", "reader"] and names == ["Département des Landes"]
