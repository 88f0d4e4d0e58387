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

from aptic import passnumber, referentiel
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
                .order_by(t.orders.c.id)
            ).scalars()
        )


def test_a_funder_sees_its_own_orders_only(site, funder):
    site.carnets(2, commanditaire=FUNDER)
    site.carnets(1, commanditaire="Région Nouvelle-Aquitaine")
    mine, theirs = order_ids(site, FUNDER)[0], order_ids(site, "Région Nouvelle-Aquitaine")[0]
    login = site.client().login(ADMIN)
    assert login.headers["Location"].endswith("/console/financeur/tableau-de-bord")  # a funder's home
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
    assert f"Paiement reçu pour la demande {request_id}" in operator.get(page).get_data(as_text=True)
    url = f"/console/operateur/demandes/{request_id}/activation"
    assert act(operator, url, {"reason": "Trop tôt"}, page).status_code == 409  # not paid yet: nothing issued
    assert order_ids(site, FUNDER) == []
    paid = f"/console/operateur/demandes/{request_id}/paiement"
    assert act(operator, paid, {"reference": ""}, page).status_code == 400  # a reference is required
    assert act(operator, paid, {"reference": "Mandat 2026-0412"}, page).status_code == 302
    assert act(operator, paid, {"reference": "Mandat 2026-0412"}, page).status_code == 409  # paid once
    assert "Payée" in funder.get(ORDERS).get_data(as_text=True)
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
    assert {"funder.request_created", "funder.request_submitted", "operator.request_paid",
            "operator.request_activated"} <= set(logged)  # fmt: skip
    assert req.payment_reference == "Mandat 2026-0412"

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


def _ingest(site, org, device_id, number, service, point):
    """One scan through the terminals' ingest: its (status, reason)."""
    import uuid

    from central.services import ingest

    scan_in = ingest.ScanIn(str(uuid.uuid4()), number, service, point, site.clock(), True, 1)
    auth = site.app.extensions["aptic_central"].auth
    (result,) = ingest.ingest(site.engine, auth, device_id, org.id, [scan_in], site.clock())
    return result["status"], result.get("reason")


def test_a_request_carries_every_restriction_to_its_order(site, funder):
    """Kinds of place, designated points and services chosen in the form reach the order the operator issues,
    and the passes then pay at the designated point only, for the chosen services only."""
    year = site.clock().year
    begles = site.organisation("Médiathèque de Bègles", slug="begles", points=2)
    designated, other = begles.points
    form = {
        "carnet_size": "10",
        "quantity": "2",
        "millesime": str(year),
        "territories": "33",
        "place_types": ["BIB", "CS"],
        "categories": ["1.2"],
        "services": "84-86",
        "points": [str(designated)],
    }
    bad = funder.post(NEW, {**form, "services": "84-200", "place_types": ["BIB", "NOPE"]})
    assert bad.status_code == 400
    html = bad.get_data(as_text=True)
    assert 'id="f-services-error"' in html and 'id="f-place_types-error"' in html
    assert 'value="BIB" checked' in html  # what was ticked is ticked again
    assert funder.post(NEW, {**form, "points": ["999"]}).status_code == 400  # not a qualified place's point
    assert funder.post(NEW, form).status_code == 302
    (draft,) = funders.requests(site.engine.connect(), status="draft")
    page = funder.get(ORDERS).get_data(as_text=True)
    assert "Lieux : bibliothèque ou médiathèque, centre social" in page
    assert "Médiathèque de Bègles 1" in page and "services 84-86" in page

    # The draft is changed: the form comes back filled in, as it was saved.
    edit = f"/console/financeur/demandes/{draft.id}/modifier"
    html = funder.get(edit).get_data(as_text=True)
    assert 'value="CS" checked' in html and 'value="1.2" checked' in html and 'value="84-86"' in html
    assert f'value="{designated}" checked' in html and f'value="{other}" checked' not in html
    assert funder.post(edit, {**form, "quantity": "3"}, form_page=edit).status_code == 302
    assert "3 × 10 pass" in funder.get(ORDERS).get_data(as_text=True)

    funder.post(f"/console/financeur/demandes/{draft.id}/soumission", form_page=ORDERS)
    assert funder.get(edit).status_code == 302  # submitted: not a draft any more
    assert funder.post(edit, {**form, "quantity": "9"}, form_page=ORDERS).status_code == 302  # refused, unchanged
    site.user(OPERATOR, operator=True)
    operator = site.client(OPERATOR)
    site.clock.advance(minutes=11)
    page = "/console/operateur/commandes"
    assert "Lieux : bibliothèque ou médiathèque, centre social" in operator.get(page).get_data(as_text=True)
    act(operator, f"/console/operateur/demandes/{draft.id}/paiement", {"reference": "VIR 8841"}, page)
    act(operator, f"/console/operateur/demandes/{draft.id}/activation", {"reason": "Payée"}, page)
    with site.engine.connect() as conn:
        order = conn.execute(select(t.orders)).one()
    assert order.serial_last - order.serial_first + 1 == 3
    assert (order.place_types, order.points) == ("BIB,CS", str(designated))
    assert (order.services, order.categories) == ("84,85,86", "1.2")

    auth = passnumber.hmac_authenticator(SECRET)
    first, second = (passnumber.build(year, order.serial_first, i, auth) for i in (1, 2))
    terminal = device(site, begles)
    assert _ingest(site, begles, terminal, first, 84, other) == ("rejected", "place_not_designated")
    assert _ingest(site, begles, terminal, first, 1, designated) == ("rejected", "service_not_covered")
    assert _ingest(site, begles, terminal, first, 84, designated)[0] == "accepted"
    category_12 = next(n for n, s in referentiel.SERVICES.items() if s.category.code == "1.2")
    assert _ingest(site, begles, terminal, second, category_12, designated)[0] == "accepted"


def test_a_draft_or_a_submitted_request_can_be_withdrawn_not_a_paid_one(site, funder):
    year = str(site.clock().year)
    for _ in range(3):
        funder.post(NEW, {"carnet_size": "5", "quantity": "1", "millesime": year})
    first, second, third = sorted(r.id for r in funders.requests(site.engine.connect()))
    withdraw = "/console/financeur/demandes/{}/retrait"
    assert funder.post(withdraw.format(first), form_page=ORDERS).status_code == 302
    funder.post(f"/console/financeur/demandes/{second}/soumission", form_page=ORDERS)
    assert funder.post(withdraw.format(second), form_page=ORDERS).status_code == 302
    funder.post(f"/console/financeur/demandes/{third}/soumission", form_page=ORDERS)
    funders.record_payment(site.engine, third, "VIR 1", None, site.clock())
    funder.post(withdraw.format(third), form_page=ORDERS)
    statuses = {r.id: r.status for r in funders.requests(site.engine.connect())}
    assert statuses == {first: "withdrawn", second: "withdrawn", third: "paid"}
    page = funder.get(ORDERS).get_data(as_text=True)
    assert page.count("Retirée") == 2 and f"Retirer la demande {third}" not in page
    assert "ne peut plus être retirée" in page  # the refusal, said
    # Withdrawn requests are not the operator's business; a reader withdraws nothing; another funder's is 404.
    site.user(OPERATOR, operator=True)
    html = site.client(OPERATOR).get("/console/operateur/commandes").get_data(as_text=True)
    assert f"demande {first}" not in html and f"demande {third}" in html
    funder.post(NEW, {"carnet_size": "5", "quantity": "1", "millesime": year})
    (fourth,) = [r.id for r in funders.requests(site.engine.connect(), status="draft")]
    assert site.client(READER).post(withdraw.format(fourth), form_page=ORDERS).status_code == 404
    funders.add_user(site.engine, "achats@landes.fr", "Département des Landes", site.clock(), role="admin",
                     password=PASSWORD)  # fmt: skip
    other = site.client("achats@landes.fr")
    assert other.post(withdraw.format(fourth), form_page=ORDERS).status_code == 404
    assert other.get(f"/console/financeur/demandes/{fourth}/modifier").status_code == 404


def test_carnets_handed_to_distributors_are_counted(site, funder):
    site.carnets(5, size=10, commanditaire=FUNDER)
    (order_id,) = order_ids(site, FUNDER)
    with site.engine.connect() as conn:
        first_serial = conn.execute(select(t.orders.c.serial_first)).scalar_one()
    year = site.clock().year % 100
    printed = [f"1 {year:02d} {first_serial + i:07d}" for i in range(5)]  # as on the carnets' pages
    url, page = f"{ORDERS}/{order_id}/distribution", f"{ORDERS}/{order_id}"
    assert "<strong>0</strong> carnets distribués" in funder.get(page).get_data(as_text=True)

    r = funder.post(url, {"first": printed[3], "last": printed[1], "distributor": "CCAS"}, form_page=page)
    assert r.status_code == 400 and 'id="f-last-error"' in r.get_data(as_text=True)  # reversed
    r = funder.post(url, {"first": "1 99 0000001", "last": printed[1], "distributor": ""}, form_page=page)
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and 'id="f-first-error"' in html and 'id="f-distributor-error"' in html
    assert printed[0] in html  # the error says which carnets are this order's

    assert funder.post(url, {"first": printed[0], "last": printed[2].replace(" ", ""),
                             "distributor": "CCAS de Mérignac"}, form_page=page).status_code == 302  # fmt: skip
    assert funder.post(url, {"first": str(first_serial + 2), "last": str(first_serial + 3),
                             "distributor": "Secours populaire"}, form_page=page).status_code == 302  # fmt: skip
    html = funder.get(page).get_data(as_text=True)
    assert "<strong>4</strong> carnets distribués" in html and "<strong>1</strong> carnets non distribués" in html
    assert 'CCAS de Mérignac</th><td class="num">2' in html and 'Secours populaire</th><td class="num">2' in html

    # The end-of-validity alert gives the four counts.
    site.clock.set(site.clock().replace(month=12, day=31) - timedelta(days=10))
    html = funder.get(page).get_data(as_text=True)
    assert "Carnets émis : 5 ; distribués : 4 ; non distribués : 1 ; entamés : 0." in html
    # A reader sees the counts, records nothing.
    reader = site.client(READER)
    assert "Enregistrer la remise" not in reader.get(page).get_data(as_text=True)
    assert reader.post(url, {"first": printed[4], "last": printed[4], "distributor": "X"},
                       form_page=page).status_code == 404  # fmt: skip
    with site.engine.connect() as conn:
        logged = conn.execute(select(t.audit_log.c.action).where(t.audit_log.c.action.like("funder.carnets%")))
        assert len(logged.all()) == 2


def test_a_user_of_two_funders_chooses_which_one(site, funder):
    site.carnets(1, commanditaire=FUNDER)
    site.carnets(1, commanditaire="Département des Landes")
    gironde, landes = order_ids(site, FUNDER)[0], order_ids(site, "Département des Landes")[0]
    funders.add_user(site.engine, ADMIN, "Département des Landes", site.clock(), role="reader")
    client = site.client(ADMIN)
    html = client.get(ORDERS).get_data(as_text=True)
    assert "Vous agissez pour" in html and f"Commande {gironde}" in html and f"Commande {landes}" not in html
    with site.engine.connect() as conn:
        landes_id = conn.execute(
            select(t.commanditaires.c.id).where(t.commanditaires.c.name == "Département des Landes")
        ).scalar_one()
    assert client.post("/console/financeur/choisir", {"funder": str(landes_id)}, form_page=ORDERS).status_code == 302
    html = client.get(ORDERS).get_data(as_text=True)
    assert f"Commande {landes}" in html and f"Commande {gironde}" not in html
    assert "Nouvelle commande" not in html  # a reader of this one
    assert client.get(f"{ORDERS}/{gironde}").status_code == 404
    assert client.post("/console/financeur/choisir", {"funder": "999"}, form_page=ORDERS).status_code == 404


def test_an_operator_who_is_also_a_funder_sees_whose_orders(site, funder):
    site.user(OPERATOR, operator=True)
    funders.add_user(site.engine, OPERATOR, FUNDER, site.clock())
    html = site.client(OPERATOR).get(ORDERS).get_data(as_text=True)
    assert ">Commandes</a>" in html and ">Commandes (financeur)</a>" in html
    assert ">Commandes</a>" in funder.get(ORDERS).get_data(as_text=True)  # a funder alone: plain names
