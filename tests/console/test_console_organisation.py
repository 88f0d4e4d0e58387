"""The organisation page over HTTP (Flask's test client, CSRF on, real SQLite): details that admins edit and
members read, bank details always masked and changed only after re-authentication, the kiosks' médiateur PIN,
and the organisation's audit log."""

from __future__ import annotations

import re

import pytest
from console_fixtures import PASSWORD
from sqlalchemy import select

from aptic.pin import verify_pin
from central import schema as t
from central.services import organisation as service

IBAN = "FR7630006000011234567890189"  # a valid French IBAN (mod-97 checked)
IBAN_SPACED = "fr76 3000 6000 0112 3456 7890 189"
MASKED = "FR76 •••• •••• •••• •••• ••90 189"
PAGES = (
    "/console/organisation",
    "/console/organisation/banque",
    "/console/organisation/code-mediateur",
    "/console/organisation/membres",
    "/console/organisation/membres/inviter",
    "/console/organisation/journal",
)


@pytest.fixture
def org(site):
    return site.organisation("Médiathèque de Bègles", slug="begles")


def audit(site, action):
    with site.engine.connect() as conn:
        return conn.execute(select(t.audit_log).where(t.audit_log.c.action == action)).all()


def organisation_row(site, org):
    with site.engine.connect() as conn:
        return conn.execute(select(t.organisations).where(t.organisations.c.id == org.id)).one()


def set_bank(client, iban=IBAN, bic="AGRIFRPP882", holder="Ville de Bègles", form_page=None):
    return client.post(
        "/console/organisation/banque", {"iban": iban, "bic": bic, "holder": holder}, form_page=form_page
    )


def test_a_member_reads_the_details_but_cannot_change_anything(site, org):
    admin = site.client(org.admin)
    admin.post("/console/organisation", {"address": "12 rue Carnot", "postcode": "33130", "commune": "Bègles"})
    member = site.client(org.member)
    page = member.get("/console/organisation").get_data(as_text=True)
    assert "12 rue Carnot" in page and "33130" in page and "Médiathèque de Bègles" in page
    assert 'name="address"' not in page and "Modifier les coordonnées bancaires" not in page
    token = member.token("/console/compte")  # any console page's form carries the session's token
    r = member.http.post("/console/organisation", data={"csrf_token": token, "address": "Piraté"})
    assert r.status_code == 404
    for path in PAGES[1:]:
        assert member.get(path).status_code == 404, path
    assert organisation_row(site, org).address == "12 rue Carnot"


def test_an_admin_edits_the_details_and_the_change_is_audited(site, org):
    admin = site.client(org.admin)
    details = {"address": " 12  rue Carnot ", "postcode": "33130", "commune": "Bègles",
               "contact_email": "Contact@Begles.fr", "phone": "05 56 00 00 00"}  # fmt: skip
    r = admin.post("/console/organisation", details)
    assert r.status_code == 302 and r.headers["Location"] == "/console/organisation"
    row = organisation_row(site, org)
    assert (row.address, row.postcode, row.contact_email, row.phone) == (
        "12 rue Carnot", "33130", "contact@begles.fr", "05 56 00 00 00")  # fmt: skip
    assert "Coordonnées enregistrées" in admin.get("/console/organisation").get_data(as_text=True)
    [entry] = audit(site, "organisation.details")
    assert entry.organisation_id == org.id and entry.details["postcode"] == "33130"
    # Name and SIRET are not the admins' to change: a forged field is ignored.
    admin.post("/console/organisation", {"name": "Autre nom", "siret": "12345678901234"})
    assert organisation_row(site, org).name == "Médiathèque de Bègles"


def test_bad_details_are_refused_with_each_fields_message(site, org):
    admin = site.client(org.admin)
    r = admin.post("/console/organisation", {"postcode": "3313", "contact_email": "pas-une-adresse"})
    assert r.status_code == 400
    page = r.get_data(as_text=True)
    assert 'id="f-postcode-error"' in page and "5 chiffres" in page
    assert 'id="f-contact_email-error"' in page
    assert 'value="3313"' in page  # what was typed comes back to be corrected
    assert organisation_row(site, org).postcode is None


def test_bank_details_ask_for_the_password_again_then_are_saved_and_shown_masked(site, org):
    admin = site.client(org.admin)
    site.clock.advance(minutes=11)
    r = admin.get("/console/organisation/banque")
    assert r.status_code == 302 and r.headers["Location"].startswith("/console/confirmer")
    r = set_bank(admin, form_page="/console/compte")  # a POST (with a good token) is sent to confirm as well
    assert r.status_code == 302 and r.headers["Location"].startswith("/console/confirmer")
    assert organisation_row(site, org).iban is None
    r = admin.post(r.headers["Location"], {"password": PASSWORD})
    assert r.headers["Location"] == "/console/organisation/banque"
    r = set_bank(admin, iban=IBAN_SPACED, bic="agrifrpp882")
    assert r.status_code == 302
    row = organisation_row(site, org)
    assert (row.iban, row.bic, row.bank_holder) == (IBAN, "AGRIFRPP882", "Ville de Bègles")
    page = admin.get("/console/organisation").get_data(as_text=True)
    assert MASKED in page and "AGRIFRPP882" in page
    [entry] = audit(site, "organisation.bank")
    assert entry.details["iban"] == MASKED and IBAN[4:-5] not in str(entry.details)


def test_no_page_ever_holds_the_whole_iban(site, org):
    admin = site.client(org.admin)
    assert set_bank(admin).status_code == 302
    member = site.client(org.member)
    hidden = IBAN[4:-5]  # the digits a masked IBAN hides
    for client in (admin, member):
        for path in PAGES:
            html = client.get(path).get_data(as_text=True)
            assert IBAN not in html and hidden not in html, path
            assert not re.search(r"3000\s?6000", html), path


def test_a_wrong_iban_or_bic_is_refused_with_400(site, org):
    admin = site.client(org.admin)
    r = set_bank(admin, iban=IBAN[:-1] + "8")  # one digit off: the mod-97 check fails
    assert r.status_code == 400
    page = r.get_data(as_text=True)
    assert 'id="f-iban-error"' in page and "clé de contrôle" in page
    r = set_bank(admin, iban=IBAN[:-1])  # a French IBAN is 27 characters
    assert r.status_code == 400 and "27 caractères" in r.get_data(as_text=True)
    r = set_bank(admin, bic="AGRIFRP")
    assert r.status_code == 400 and 'id="f-bic-error"' in r.get_data(as_text=True)
    assert organisation_row(site, org).iban is None
    assert not audit(site, "organisation.bank")


def test_the_iban_check_follows_iso_13616():
    for good in (IBAN, "FR1420041010050500013M02606", "DE89370400440532013000", "GB82WEST12345698765432"):
        assert service.iban_problem(good) is None, good
    for bad in ("FR1420041010050500013M02607", "XX", "FR76300060000112345678901890", "1234567890123456"):
        assert service.iban_problem(bad), bad
    assert service.mask_iban(IBAN) == MASKED


def test_the_mediateur_pin_is_typed_twice_after_reauthentication_and_reaches_the_terminals(site, org):
    admin = site.client(org.admin)
    page = admin.get("/console/organisation/code-mediateur").get_data(as_text=True)
    assert "prochaine synchronisation" in page
    r = admin.post("/console/organisation/code-mediateur", {"pin": "2468", "confirm": "2469"})
    assert r.status_code == 400 and "pas identiques" in r.get_data(as_text=True)
    r = admin.post("/console/organisation/code-mediateur", {"pin": "24a", "confirm": "24a"})
    assert r.status_code == 400 and "de 4 à 8 chiffres" in r.get_data(as_text=True)
    assert organisation_row(site, org).mediateur_pin_hash is None
    with site.engine.connect() as conn:
        before = conn.execute(select(t.changes)).all()
    r = admin.post("/console/organisation/code-mediateur", {"pin": "2468", "confirm": "2468"})
    assert r.status_code == 302
    assert verify_pin("2468", organisation_row(site, org).mediateur_pin_hash)
    with site.engine.connect() as conn:
        after = conn.execute(select(t.changes)).all()
    assert [(c.kind, c.ref) for c in after[len(before) :]] == [("organisation", str(org.id))]
    [entry] = audit(site, "organisation.pin")
    assert "2468" not in str(entry.details)
    assert "Un code est défini" in admin.get("/console/organisation").get_data(as_text=True)
    site.clock.advance(minutes=11)
    r = admin.post(
        "/console/organisation/code-mediateur", {"pin": "1357", "confirm": "1357"}, form_page="/console/compte"
    )
    assert r.status_code == 302 and r.headers["Location"].startswith("/console/confirmer")
    assert verify_pin("2468", organisation_row(site, org).mediateur_pin_hash)


def test_the_journal_lists_this_organisations_entries_newest_first_in_paris_time(site, org):
    other = site.organisation("Espace numérique de Talence", slug="talence")
    admin = site.client(org.admin)
    admin.post("/console/organisation", {"commune": "Bègles"})  # 10:00 UTC = 11 h 00 in Paris (winter time)
    site.clock.advance(minutes=5)
    set_bank(admin)
    site.client(other.admin).post("/console/organisation", {"commune": "Talence"})
    html = admin.get("/console/organisation/journal").get_data(as_text=True)
    bank, details = html.index("Coordonnées bancaires modifiées"), html.index("Coordonnées modifiées")
    assert bank < details  # newest first
    assert "10/03/2026 à 11\u00a0h\u00a000" in html and "10/03/2026 à 11\u00a0h\u00a005" in html
    assert org.admin in html and MASKED in html
    assert "Talence" not in html and IBAN not in html


def test_the_journal_is_paginated(site, org):
    admin = site.client(org.admin)
    for n in range(55):
        site.clock.advance(minutes=1)
        admin.post("/console/organisation", {"address": f"{n} rue Carnot"})
    first = admin.get("/console/organisation/journal").get_data(as_text=True)
    assert "adresse\u00a0: 54 rue Carnot" in first and "adresse\u00a0: 5 rue Carnot" in first
    assert "adresse\u00a0: 4 rue Carnot" not in first and "page 1 sur 2" in first
    second = admin.get("/console/organisation/journal?page=2").get_data(as_text=True)
    assert "adresse\u00a0: 4 rue Carnot" in second and "adresse\u00a0: 0 rue Carnot" in second
    assert "adresse\u00a0: 54 rue Carnot" not in second
    assert admin.get("/console/organisation/journal?page=abc").status_code == 200
