"""Tester un pass and Scanner des pass over HTTP (Flask's test client, the real app on a real SQLite database):
the test writes nothing; a scan goes through the terminals' ingest (same refusals, same statement), once only
however often its form is sent again; another organisation's point is never scanned."""

from __future__ import annotations

import re
from html import unescape

from sqlalchemy import func, select

from aptic.passnumber import AZERTY_TOP_ROW, format_pass
from central import schema as t
from central.services import statements

SERVICE = 95  # Plateforme France Connect, in every catalogue (none set: the whole référentiel)
REVERSE_AZERTY = {digit: char for char, digit in AZERTY_TOP_ROW.items()}


def text_of(response) -> str:
    """The page's text, tags dropped and spaces collapsed, as a reader sees it."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.get_data(as_text=True), flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def batch_of(client) -> str:
    html = client.get("/console/scanner").get_data(as_text=True)
    return re.search(r'name="batch" value="([^"]+)"', html).group(1)


def count(site, table) -> int:
    with site.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def scan(client, org, passes, *, batch=None, point=None, service=SERVICE, **kw):
    data = {"point": point or org.points[0], "service": service, "pass": passes, "batch": batch or batch_of(client)}
    return client.post("/console/scanner", data, form_page="/console/scanner", **kw)


def test_testing_a_pass_shows_the_verdict_and_writes_nothing(site):
    org = site.organisation("Médiathèque de Pessac", slug="pessac")
    first, second = site.carnets(1, size=5)[:2]
    client = site.client(org.member)
    form = client.get("/console/tester")
    assert form.status_code == 200
    assert 'for="f-pass">Numéro du pass<' in form.get_data(as_text=True)
    assert ">Tester</button>" in form.get_data(as_text=True)
    before = (count(site, t.scans), count(site, t.pass_uses), count(site, t.audit_log))

    r = client.post("/console/tester", {"pass": format_pass(first), "point": "", "service": ""})
    assert r.status_code == 200
    page = text_of(r)
    assert "Pass valable —" in page and "commanditaire Département de la Gironde" in page
    assert "Déjà utilisé Non." in page and "Restrictions Aucune." in page
    assert "n’importe quel service du catalogue" in page and "Rien n’a été enregistré" in page
    assert 'role="status"' in r.get_data(as_text=True)
    # Tested twice, for a given point and service: still valid (nothing was spent).
    r = client.post("/console/tester", {"pass": first, "point": org.points[0], "service": SERVICE})
    assert "Pass valable —" in text_of(r) and "Plateforme France Connect" in text_of(r)
    assert (count(site, t.scans), count(site, t.pass_uses), count(site, t.audit_log)) == before

    # Once scanned, the test says it is used, and when; another pass of its carnet refused the same day.
    assert "Enregistré" in text_of(scan(client, org, [first]))
    r = client.post("/console/tester", {"pass": first, "point": org.points[0], "service": SERVICE})
    assert "Pass refusé" in text_of(r) and "Pass déjà utilisé le 10/03/2026 (Médiathèque de Pessac 1)." in text_of(r)
    r = client.post("/console/tester", {"pass": second, "point": org.points[0], "service": SERVICE})
    assert "Un autre pass de ce carnet" in text_of(r)
    # For any service of the catalogue, it still pays another one.
    r = client.post("/console/tester", {"pass": second, "point": "", "service": ""})
    assert "Pass valable —" in text_of(r)


def test_testing_garbage_and_unknown_passes(site):
    org = site.organisation("Espace numérique", slug="esn")
    number = site.carnets(1, size=5)[0]
    client = site.client(org.admin)
    r = client.post("/console/tester", {"pass": "1 26 0001234 07 5821 13", "point": "", "service": ""})
    assert r.status_code == 200 and "Pass non conforme : Clé de contrôle incorrecte" in text_of(r)
    forged = number[:12] + "0000"
    forged += f"{98 - int(forged) * 100 % 97:02d}"
    r = client.post("/console/tester", {"pass": forged, "point": "", "service": ""})
    assert "Pass inconnu : ce numéro n'a pas été émis." in text_of(r)
    r = client.post("/console/tester", {"pass": "", "point": "", "service": ""})
    assert r.status_code == 400 and "Saisissez ou scannez le numéro du pass." in text_of(r)


def test_scanning_two_passes_records_them_once_and_the_statement_counts_them(site):
    org = site.organisation("Centre social Lucie Aubrac", slug="aubrac")
    a, b = site.carnets(2, size=5)[::5]  # one pass of each carnet
    client = site.client(org.member)  # a member, not only an admin, can scan
    batch = batch_of(client)
    typed_azerty = "".join(REVERSE_AZERTY[d] for d in b)  # a douchette on the wrong keyboard layout
    r = scan(client, org, [format_pass(a), typed_azerty], batch=batch)
    assert r.status_code == 200, text_of(r)
    page = text_of(r)
    assert page.count("Enregistré") == 2 and "2 pass enregistrés , 0 refusé" in page
    assert "Contre-paiement sur le relevé de mars 2026" in page
    with site.engine.connect() as conn:
        rows = conn.execute(select(t.scans).order_by(t.scans.c.pass_number)).all()
        document = statements.statement(conn, org.id, "2026-03")
        user_id = conn.execute(select(t.users.c.id).where(t.users.c.email == org.member)).scalar_one()
        audits = conn.execute(select(t.audit_log).where(t.audit_log.c.action == "scan.submit")).all()
    assert sorted(r.pass_number for r in rows) == sorted([a, b])
    assert {(r.status, r.device_id, r.user_id, r.point_id, r.service, r.entry_id) for r in rows} == {
        ("accepted", None, user_id, org.points[0], SERVICE, batch)
    }
    assert document["passes"] == 2
    assert [(x.user_id, x.organisation_id, x.target, x.details["new"]) for x in audits] == [(user_id, org.id, batch, 2)]

    # The same form again (a double click, a reload of the POST): the first results, nothing paid twice.
    again = scan(client, org, [a, b], batch=batch)
    assert again.status_code == 200 and text_of(again).count("Enregistré") == 2
    assert count(site, t.scans) == 2 and count(site, t.pass_uses) == 2 and len(audits) == 1
    with site.engine.connect() as conn:
        assert statements.statement(conn, org.id, "2026-03")["passes"] == 2

    # A new form (a new batch) with the same pass: refused as already used, paid nothing.
    r = scan(client, org, [a])
    assert "Refusé" in text_of(r) and "Pass déjà utilisé le 10/03/2026" in text_of(r)
    with site.engine.connect() as conn:
        assert statements.statement(conn, org.id, "2026-03")["passes"] == 2


def test_a_pass_of_the_same_carnet_same_place_same_day_same_service_is_refused(site):
    org = site.organisation("Maison France services", slug="mfs")
    first, second = site.carnets(1, size=5)[:2]
    client = site.client(org.admin)
    assert "Enregistré" in text_of(scan(client, org, [first]))
    r = scan(client, org, [second])
    assert r.status_code == 200
    assert "Refusé" in text_of(r)
    assert f"Un autre pass de ce carnet ({format_pass(first)}) a déjà réglé ce service le 10/03/2026." in text_of(r)
    # Another service the same day is fine.
    assert "Enregistré" in text_of(scan(client, org, [second], service=SERVICE + 1))


def test_another_organisations_point_bad_input_and_too_many_passes_are_refused(site):
    ours = site.organisation("Bibliothèque de Talence", slug="talence")
    theirs = site.organisation("Tiers-lieu de Bègles", slug="begles")
    number = site.carnets(1, size=5)[0]
    client = site.client(ours.member)
    r = scan(client, ours, [number], point=theirs.points[0])
    assert r.status_code == 400 and "Point de présence inconnu de votre organisation." in text_of(r)
    assert 'id="f-point-error"' in r.get_data(as_text=True)
    r = scan(client, ours, ["bonjour"])
    assert r.status_code == 400 and "« bonjour » : pass non conforme." in text_of(r)
    r = scan(client, ours, [number], service="abc")
    assert r.status_code == 400 and "Choisissez le service rendu." in text_of(r)
    r = scan(client, ours, [number], batch="not-a-uuid")
    assert r.status_code == 400 and "rechargez la page" in text_of(r)
    r = scan(client, ours, [], point=ours.points[0])
    assert r.status_code == 400 and "Saisissez ou scannez au moins un pass." in text_of(r)
    many = site.carnets(51, size=5)[::5]
    r = scan(client, ours, many)
    assert r.status_code == 400 and "Trop de pass à la fois (51) : 50 au plus" in text_of(r)
    # The pre-check refuses the point too, in JSON.
    r = client.post("/console/scanner/verifier", {"point": theirs.points[0], "service": SERVICE, "pass": number},
                    form_page="/console/scanner")  # fmt: skip
    assert r.status_code == 400
    assert r.get_json()["fields"] == {"point": "Point de présence inconnu de votre organisation."}
    assert count(site, t.scans) == 0 and count(site, t.pass_uses) == 0


def test_a_service_not_in_the_catalogue_is_refused_next_to_its_field(site):
    org = site.organisation("Atelier numérique", slug="atelier")
    with site.engine.begin() as conn:
        conn.execute(t.organisations.update().where(t.organisations.c.id == org.id).values(catalogue="84-95"))
    number = site.carnets(1, size=5)[0]
    client = site.client(org.member)
    form = client.get("/console/scanner").get_data(as_text=True)
    assert 'value="95"' in form and 'value="96"' not in form and '<optgroup label="2.2 ' in form
    r = scan(client, org, [number], service=96)
    assert r.status_code == 400 and "ne figure pas au catalogue de votre organisation" in text_of(r)
    assert 'id="f-service-error"' in r.get_data(as_text=True) and count(site, t.scans) == 0


def test_the_precheck_judges_without_writing(site):
    org = site.organisation("Point numérique", slug="pn")
    first, second = site.carnets(1, size=5)[:2]
    client = site.client(org.member)

    def check(number, entry=()):
        data = {"point": org.points[0], "service": SERVICE, "pass": number, "entry": list(entry)}
        return client.post("/console/scanner/verifier", data, form_page="/console/scanner")

    r = check(format_pass(first))
    assert r.status_code == 200
    assert r.get_json() | {"message": ""} == {
        "valid": True, "reason": "ok", "message": "", "warnings": [], "digits": first, "printed": format_pass(first),
        "malformed": False,
    }  # fmt: skip
    assert check(second, entry=[first]).get_json()["reason"] == "same_carnet"
    assert check("12").get_json()["malformed"] is True
    assert count(site, t.scans) == 0


def test_without_a_csrf_token_nothing_is_recorded(site):
    org = site.organisation("Médiathèque", slug="med")
    number = site.carnets(1, size=5)[0]
    client = site.client(org.member)
    data = {"point": org.points[0], "service": SERVICE, "pass": number, "batch": batch_of(client)}
    r = client.http.post("/console/scanner", data=data)
    assert r.status_code == 400 and "Le formulaire a expiré" in text_of(r)
    r = client.http.post("/console/scanner/verifier", data=data)
    assert r.status_code == 400
    r = client.http.post("/console/tester", data=data)
    assert r.status_code == 400
    assert count(site, t.scans) == 0


def test_the_pages_need_a_login(site):
    client = site.client()
    for path in ("/console/tester", "/console/scanner"):
        assert client.get(path).status_code == 302
