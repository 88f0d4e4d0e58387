"""The operator's pages over HTTP (Flask's test client, CSRF on, real SQLite): 404 for everyone but the operator,
every action behind re-authentication, audited with its reason, and with the effect a user would notice (a
blocked carnet's pass refused, a refused organisation's point refusing passes, « Payé le … » on the place's
counter-payments page, a command queued for the device)."""

from __future__ import annotations

import io

import pytest
from console_fixtures import PASSWORD, Client
from money_fixtures import scan
from pypdf import PdfReader
from sqlalchemy import select

from central import schema as t
from central.cli import main as cli_main
from central.services import activation, admin, fleet, snapshot, validity

OPERATOR = "operateur@aptic.fr"
PAGES = (
    "/console/operateur/",
    "/console/operateur/organisations",
    "/console/operateur/carnets",
    "/console/operateur/commandes",
    "/console/operateur/releves",
    "/console/operateur/parc",
    "/console/operateur/journal",
)
ACTIONS = (
    "/console/operateur/organisations/1/qualification",
    "/console/operateur/carnets/1260000001/blocage",
    "/console/operateur/commandes/1/activation",
    "/console/operateur/commandes/1/carnets.pdf",
    "/console/operateur/releves/cloture",
    "/console/operateur/releves/1/2026-02/paiement",
    "/console/operateur/parc/1/commande",
    "/console/operateur/parc/code",
    "/console/operateur/parc/reglages",
    "/console/operateur/parc/deploiements/1",
)


@pytest.fixture
def org(site):
    return site.organisation("Médiathèque de Bègles", slug="begles")


@pytest.fixture
def operator(site):
    site.user(OPERATOR, operator=True)
    client = site.client(OPERATOR)
    site.clock.advance(minutes=11)  # the login's password is old now: the first action asks for it again
    return client


def act(client, url, data, page):
    """POST an action, confirming the password when asked (once per ``REAUTH_FOR``); the final answer."""
    r = client.post(url, data, form_page=page)
    if r.status_code == 302 and "/console/confirmer" in r.headers["Location"]:
        confirm = r.headers["Location"]
        back = client.post(confirm, {"password": PASSWORD})
        assert back.status_code == 302 and back.headers["Location"].endswith(url)
        assert client.get(url).status_code == 302  # the action's URL by GET leads back to its page
        r = client.post(url, data, form_page=page)
    return r


def audit(site, action):
    with site.engine.connect() as conn:
        return conn.execute(select(t.audit_log).where(t.audit_log.c.action == action)).all()


def device(site, org):
    kit = admin.add_kit(site.engine, org.id, site.clock())
    body = activation.activate(site.engine, kit["kit_number"], kit["activation_code"],
                               {"serial": "pi-op", "model": "Raspberry Pi 5", "software_version": "0.1.0"},
                               site.clock())  # fmt: skip
    return body, kit["kit_number"]


def verdict(site, token, number, point):
    auth = site.app.extensions["aptic_central"].auth
    with site.engine.connect() as conn:
        return validity.validity(conn, auth, token, number, 1, point, site.clock())[1]


def test_only_the_operator_sees_the_operator_pages(site, org):
    anonymous = site.client()
    for url in PAGES:
        r = anonymous.get(url)
        assert r.status_code == 302 and "/console/connexion" in r.headers["Location"], url
    for email in (org.member, org.admin):
        client = site.client(email)
        token = client.token("/console/compte")
        for url in PAGES:
            assert client.get(url).status_code == 404, (email, url)
        for url in ACTIONS:
            assert client.get(url).status_code == 404, (email, url)
            assert client.http.post(url, data={"csrf_token": token, "reason": "x"}).status_code == 404, (email, url)
        assert "Parc" not in client.get("/console/tableau-de-bord").get_data(as_text=True)
    assert not audit(site, "operator.carnet_blocked")


def test_the_operator_lands_on_their_pages_with_their_menu(site, org, operator):
    login = Client(site.app).login(OPERATOR)
    assert login.status_code == 302 and login.headers["Location"].endswith("/console/operateur/organisations")
    r = operator.get("/console/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/console/operateur/organisations")
    assert operator.get("/console/tableau-de-bord").status_code == 404  # a place's page: not theirs
    page = operator.get("/console/operateur/organisations").get_data(as_text=True)
    for label in ("Organisations", "Carnets", "Commandes", "Relevés", "Parc", "Journal"):
        assert f">{label}</a>" in page
    assert "Médiathèque de Bègles" in page and "Qualifiée" in page and "Contre-paiements" not in page
    for url in PAGES:
        assert operator.get(url, follow_redirects=True).status_code == 200, url


def test_blocking_and_unblocking_a_carnet(site, org, operator):
    passes = site.carnets(2)
    body, _ = device(site, org)
    token, number, carnet = body["token"], passes[0], passes[0][:10]
    with site.engine.connect() as conn:
        cursor = snapshot.snapshot(conn, org.id, None, site.clock())["cursor"]
    found = operator.get(f"/console/operateur/carnets?carnet={number}").get_data(as_text=True)
    assert f"Carnet {carnet}" in found and "Département de la Gironde" in found and "Utilisable" in found

    url, page = f"/console/operateur/carnets/{carnet}/blocage", f"/console/operateur/carnets?carnet={carnet}"
    r = act(operator, url, {"action": "block", "reason": ""}, page)
    assert r.status_code == 400 and "Indiquez le motif" in r.get_data(as_text=True)
    assert verdict(site, token, number, org.points[0])["valid"]

    r = act(operator, url, {"action": "block", "reason": "Carnet volé, plainte 2026/123"}, page)
    assert r.status_code == 302
    shown = operator.get(r.headers["Location"]).get_data(as_text=True)
    assert "Bloqué" in shown and "Carnet volé, plainte 2026/123" in shown
    refused = verdict(site, token, number, org.points[0])
    assert not refused["valid"] and refused["reason"] == "blocked"
    [entry] = audit(site, "operator.carnet_blocked")
    assert entry.target == carnet and entry.details == {"reason": "Carnet volé, plainte 2026/123"}
    with site.engine.connect() as conn:
        delta = snapshot.snapshot(conn, org.id, cursor, site.clock())
    assert not delta["full"] and delta["blocked_carnets"] == [carnet]
    cursor = delta["cursor"]

    assert act(operator, url, {"action": "block", "reason": "encore"}, page).status_code == 409
    r = act(operator, url, {"action": "unblock", "reason": "Carnet retrouvé"}, page)
    assert r.status_code == 302
    assert verdict(site, token, number, org.points[0])["valid"]
    assert audit(site, "operator.carnet_unblocked")[0].details == {"reason": "Carnet retrouvé"}
    with site.engine.connect() as conn:
        after = snapshot.snapshot(conn, org.id, cursor, site.clock())
    assert after["full"] and after["blocked_carnets"] == []  # the terminal replaces its blocked set


def test_refusing_an_organisation_makes_its_points_refuse_passes(site, org, operator):
    number = site.carnets(1)[0]
    body, _ = device(site, org)
    url = f"/console/operateur/organisations/{org.id}/qualification"
    r = act(operator, url, {"decision": "refuse", "reason": "Charte non signée"}, "/console/operateur/organisations")
    assert r.status_code == 302
    refused = verdict(site, body["token"], number, org.points[0])
    assert not refused["valid"] and refused["reason"] == "place_not_qualified"
    page = operator.get("/console/operateur/organisations").get_data(as_text=True)
    assert "Refusée" in page and "Charte non signée" in page
    [entry] = audit(site, "operator.refused")
    assert entry.organisation_id == org.id and entry.details == {"reason": "Charte non signée"}
    with site.engine.connect() as conn:
        kinds = conn.execute(select(t.changes.c.kind, t.changes.c.ref)).all()
    assert ("organisation", str(org.id)) in kinds

    act(operator, url, {"decision": "qualify", "reason": "Charte signée"}, "/console/operateur/organisations")
    assert verdict(site, body["token"], number, org.points[0])["valid"]


def test_activating_an_order(site, org, operator):
    passes = site.carnets(1, activated=False)
    body, _ = device(site, org)
    assert verdict(site, body["token"], passes[0], org.points[0])["reason"] == "not_activated"
    with site.engine.connect() as conn:
        order_id = conn.execute(select(t.orders.c.id)).scalar_one()
    page = operator.get("/console/operateur/commandes").get_data(as_text=True)
    assert "En attente" in page and f"Activer la commande {order_id}" in page
    r = act(operator, f"/console/operateur/commandes/{order_id}/activation", {"reason": "Virement reçu"},
            "/console/operateur/commandes")  # fmt: skip
    assert r.status_code == 302
    assert verdict(site, body["token"], passes[0], org.points[0])["valid"]
    assert audit(site, "operator.order_activated")[0].details == {"reason": "Virement reçu"}


def test_printing_an_orders_carnets(site, org, operator):
    """The operator downloads an order's carnets (before its payment too: carnets are printed, then activated),
    with a reason; the download is audited. The PDF's content is tested in tests/central/test_carnet_print.py."""
    passes = site.carnets(2, size=5, activated=False)
    with site.engine.connect() as conn:
        order_id = conn.execute(select(t.orders.c.id)).scalar_one()
    page, url = "/console/operateur/commandes", f"/console/operateur/commandes/{order_id}/carnets.pdf"
    assert f"Imprimer les carnets de la commande {order_id} (PDF)" in operator.get(page).get_data(as_text=True)
    refused = act(operator, url, {"reason": ""}, page)
    assert refused.status_code == 400 and 'id="print-1-reason-error"' in refused.get_data(as_text=True)
    r = act(operator, url, {"reason": "Envoi à l’imprimeur"}, page)
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert f"filename=carnets-commande-{order_id}.pdf" in r.headers["Content-Disposition"]
    document = PdfReader(io.BytesIO(r.get_data()))
    assert len(document.pages) == 3  # the letter, then one page a carnet
    assert passes[0][:10] in "".join(document.pages[1].extract_text().split())
    (entry,) = audit(site, "operator.carnets_printed")
    assert entry.details == {"reason": "Envoi à l’imprimeur", "carnets": 2} and entry.target == str(order_id)
    assert act(operator, "/console/operateur/commandes/999/carnets.pdf", {"reason": "x"}, page).status_code == 404


def test_closing_a_month_and_marking_a_statement_paid(site, org, operator, tmp_path):
    passes = site.carnets(1)
    body, _ = device(site, org)
    scan(site, org, body["device_id"], passes[:2], site.clock())
    site.clock.advance(days=30)  # April: March can be closed
    r = act(operator, "/console/operateur/releves/cloture", {"month": "2026-05", "reason": "fin de mois"},
            "/console/operateur/releves")  # fmt: skip
    assert r.status_code == 400 and "pas encore commencé" in r.get_data(as_text=True)
    r = act(operator, "/console/operateur/releves/cloture", {"month": "2026-03", "reason": "Clôture de mars"},
            "/console/operateur/releves")  # fmt: skip
    assert r.status_code == 302
    assert audit(site, "operator.month_closed")[0].details == {"reason": "Clôture de mars", "statements": 1}
    page = operator.get("/console/operateur/releves").get_data(as_text=True)
    assert "Médiathèque de Bègles" in page and "Marquer payé" in page

    r = act(operator, f"/console/operateur/releves/{org.id}/2026-03/paiement", {"reason": "Virement du 3 avril"},
            "/console/operateur/releves")  # fmt: skip
    assert r.status_code == 302
    assert "Payé le 9 avril 2026" in site.client(org.member).get("/console/contre-paiements").get_data(as_text=True)
    assert audit(site, "operator.statement_paid")[0].details == {"reason": "Virement du 3 avril"}
    again = act(operator, f"/console/operateur/releves/{org.id}/2026-03/paiement", {"reason": "bis"},
                "/console/operateur/releves")  # fmt: skip
    assert again.status_code == 409


def test_mark_paid_on_the_command_line(site, org, tmp_path, capsys):
    passes = site.carnets(1)
    body, _ = device(site, org)
    scan(site, org, body["device_id"], passes[:1], site.clock())
    from central.services import statements

    statements.close_month(site.engine, "2026-03", site.clock())  # the current month, closed (and then paid)
    db = str(site.engine.url)
    assert cli_main(["mark-paid", "--db", db, "--organisation", str(org.id), "--month", "2026-03"]) == 0
    assert "marked paid" in capsys.readouterr().out
    assert "Payé le" in site.client(org.member).get("/console/contre-paiements").get_data(as_text=True)
    assert audit(site, "operator.statement_paid")[0].user_id is None


def test_the_fleet_page_sends_commands_and_reissues_codes(site, org, operator):
    body, kit_number = device(site, org)
    page = operator.get("/console/operateur/parc").get_data(as_text=True)
    assert f"Borne {body['device_id']} — Médiathèque de Bègles" in page and "Hors ligne depuis plus de 24" in page
    url = f"/console/operateur/parc/{body['device_id']}/commande"
    r = act(operator, url, {"kind": "screenshot", "reason": "Écran noir signalé"}, "/console/operateur/parc")
    assert r.status_code == 302
    with site.engine.connect() as conn:
        [command] = conn.execute(select(t.commands)).all()
    assert (command.device_id, command.kind, command.status) == (body["device_id"], "screenshot", "pending")
    page = operator.get("/console/operateur/parc").get_data(as_text=True)
    assert "Capture d’écran" in page and "en attente" in page
    assert audit(site, "operator.command")[0].details["reason"] == "Écran noir signalé"

    r = act(operator, "/console/operateur/parc/code", {"kit": kit_number, "reason": "Carte SD remplacée"},
            "/console/operateur/parc")  # fmt: skip
    assert r.status_code == 200 and "Nouveau code d’activation" in r.get_data(as_text=True)
    [entry] = audit(site, "operator.code_reissued")
    assert entry.target == kit_number and "code" not in str(entry.details).lower().replace("reason", "")
    r = act(operator, "/console/operateur/parc/code", {"kit": "KIT-NOPE", "reason": "x"}, "/console/operateur/parc")
    assert r.status_code == 404 and "inconnu" in r.get_data(as_text=True)


def test_the_fleet_page_sets_settings_at_each_level(site, org, operator):
    """A setting set in the console reaches the device's desired state (a new generation, the merged config),
    the most precise level winning; a bad value is refused beside its field; an empty value removes it."""
    body, _ = device(site, org)
    device_id, page, url = body["device_id"], "/console/operateur/parc", "/console/operateur/parc/reglages"

    def desired():
        with site.engine.connect() as conn:
            row = conn.execute(select(t.devices).where(t.devices.c.id == device_id)).one()
            return fleet.desired_state(conn, row, site.clock())

    before = desired()["generation"]
    r = act(operator, url, {"scope": "fleet", "name": "sync_interval", "value": "20", "reason": "Bus"}, page)
    assert r.status_code == 302
    r = act(operator, url, {"scope": "device", "ref": str(device_id), "name": "sync_interval", "value": "15",
                            "reason": "Borne du bus"}, page)  # fmt: skip
    state = desired()
    assert state["generation"] > before and state["config"]["sync_interval"] == 15.0
    html = operator.get(page).get_data(as_text=True)
    assert "Tout le parc" in html and f"Borne {device_id}</th><td>Intervalle de synchronisation (secondes) : 15" in html

    bad = act(operator, url, {"scope": "fleet", "name": "sync_interval", "value": "2", "reason": "Trop court"}, page)
    assert bad.status_code == 400 and 'id="settings-value-error"' in bad.get_data(as_text=True)
    unknown = act(operator, url, {"scope": "device", "ref": "999", "name": "log_level", "value": "INFO",
                                  "reason": "x"}, page)  # fmt: skip
    assert unknown.status_code == 404 and 'id="settings-ref-error"' in unknown.get_data(as_text=True)
    act(operator, url, {"scope": "device", "ref": str(device_id), "name": "sync_interval", "value": "",
                        "reason": "Retour au réglage du parc"}, page)  # fmt: skip
    assert desired()["config"]["sync_interval"] == 20.0
    assert [e.details["value"] for e in audit(site, "operator.setting")] == ["20", "15", "(retiré)"]


def test_rollouts_pause_resume_and_widen(site, org, operator):
    from central.services import fleet

    device(site, org)
    rollout = fleet.start_rollout(site.engine, "0.2.0", site.clock(), 10)
    url, page = f"/console/operateur/parc/deploiements/{rollout['id']}", "/console/operateur/parc"
    assert act(operator, url, {"action": "pause", "reason": "Plantages signalés"}, page).status_code == 302
    assert fleet.rollout(site.engine, rollout["id"])["status"] == "paused"
    assert act(operator, url, {"action": "resume", "reason": "Corrigé"}, page).status_code == 302
    r = act(operator, url, {"action": "widen", "percent": "5", "reason": "Moins"}, page)
    assert r.status_code == 400 and "ne se réduit pas" in r.get_data(as_text=True)
    assert act(operator, url, {"action": "widen", "percent": "50", "reason": "Stable"}, page).status_code == 302
    assert fleet.rollout(site.engine, rollout["id"])["percent"] == 50
    assert [e.details["reason"] for e in audit(site, "operator.rollout_widen")] == ["Stable"]


def test_the_journal_shows_everything_newest_first(site, org, operator):
    numbers = site.carnets(3)
    for number in numbers[::10]:
        act(operator, f"/console/operateur/carnets/{number[:10]}/blocage", {"action": "block", "reason": number[:10]},
            "/console/operateur/carnets")  # fmt: skip
        site.clock.advance(minutes=1)
    page = operator.get("/console/operateur/journal").get_data(as_text=True)
    assert "Carnet bloqué" in page and "motif\u00a0:" in page
    positions = [page.index(number[:10]) for number in numbers[::10]]
    assert positions == sorted(positions, reverse=True)
