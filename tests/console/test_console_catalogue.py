"""The catalogue page over HTTP: members read it, admins edit it; prices checked; the selection written in
canonical form, audited, and carried by the terminals' next snapshot."""

from __future__ import annotations

import doctest
import re

import pytest
from sqlalchemy import select

from aptic import referentiel
from central import schema as t
from central.services import admin
from central.services import catalogue as catalogue_service

URL = "/console/catalogue"


@pytest.fixture
def org(site):
    return site.organisation("Médiathèque de Bègles", slug="begles")


def form_of(html: str) -> dict[str, str]:
    """What a browser would post from the page as it is: the ticked boxes and the price fields."""
    data = {name: "1" for name in re.findall(r'name="((?:service|regulated)-\d+)" value="1" checked', html)}
    data.update(dict(re.findall(r'name="(price-\d+)" value="([^"]*)"', html)))
    return data


def snapshot(site, org_id):
    """The catalogue a terminal of the organisation gets, through the API as a device asks for it."""
    kit = admin.add_kit(site.engine, org_id, site.clock())
    http = site.app.test_client()
    device = {"serial": f"pi-{org_id}", "model": "Raspberry Pi 5", "software_version": "0.1.0"}
    body = {"kit_number": kit["kit_number"], "activation_code": kit["activation_code"], "device": device}
    r = http.post("/api/v1/activations", json=body)
    assert r.status_code == 201, r.get_data(as_text=True)
    token = r.get_json()["token"]
    return http, {"Authorization": f"Bearer {token}"}


def org_row(site, org_id):
    with site.engine.connect() as conn:
        return conn.execute(select(t.organisations).where(t.organisations.c.id == org_id)).one()


def test_a_member_reads_the_catalogue_and_cannot_change_it(site, org):
    client = site.client(org.member)
    r = client.get(URL)
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "propose <strong>129</strong> des 129 services" in html
    assert "Plateforme France Connect" in html and "<details" in html
    assert '<form method="post" class="catalogue"' not in html and 'name="service-1"' not in html
    r = client.post(URL, {"service-1": "1"}, form_page="/console/compte")
    assert r.status_code == 404
    assert org_row(site, org.id).catalogue is None


def test_an_admin_removes_services_and_sets_prices_and_the_snapshot_follows(site, org):
    client = site.client(org.admin)
    http, auth = snapshot(site, org.id)
    before = http.get("/api/v1/snapshot", headers=auth).get_json()
    assert len(before["organisation"]["catalogue"]) == 129

    html = client.get(URL).get_data(as_text=True)
    assert html.count('type="checkbox" id="service-') == 129
    assert 'for="price-95">Tarif<span class="visually-hidden"> de « Plateforme France Connect »</span> (€)' in html
    data = form_of(html)
    for n in (1, 2, 3, 95):
        del data[f"service-{n}"]
    data["price-10"] = "12,5"
    data["price-11"] = "0"
    del data["regulated-11"]
    r = client.post(URL, data)
    assert r.status_code == 302
    page = client.get(URL).get_data(as_text=True)
    assert "Catalogue enregistré." in page and "propose <strong>125</strong> des 129" in page
    assert 'name="price-10" value="12,50"' in page and 'name="price-11" value="0"' in page
    assert 'id="regulated-11" name="regulated-11" value="1">' in page  # unticked
    assert 'id="service-95" name="service-95" value="1">' in page

    row = org_row(site, org.id)
    assert row.catalogue == "4-94,96-129"  # canonical: ascending ranges
    with site.engine.connect() as conn:
        entries = conn.execute(select(t.catalogue_entries).order_by(t.catalogue_entries.c.service)).all()
        audit = conn.execute(select(t.audit_log).where(t.audit_log.c.action == "catalogue.update")).one()
    assert [(e.service, e.price_cents, e.regulated_price) for e in entries] == [(10, 1250, True), (11, 0, False)]
    assert audit.details == {"added": [], "removed": [1, 2, 3, 95], "prices": [10, 11]}
    assert audit.organisation_id == org.id

    member = re.sub(r"[ \n]+", " ", site.client(org.member).get(URL).get_data(as_text=True))
    assert "propose <strong>125</strong>" in member
    assert "12,50\xa0€, tarif réglementé accepté" in member
    assert "0,00\xa0€, tarif réglementé refusé" in member
    assert member.count("non proposé") == 4

    after = http.get("/api/v1/snapshot", headers=auth, query_string={"since": before["cursor"]}).get_json()
    assert after["full"] is True  # the organisation changed: the terminal gets everything again
    assert after["organisation"]["catalogue"] == [n for n in range(4, 130) if n != 95]

    # Ticking everything again goes back to "the whole référentiel", and the prices stay.
    data = form_of(page)
    data.update({f"service-{n}": "1" for n in (1, 2, 3, 95)})
    assert client.post(URL, data).status_code == 302
    assert org_row(site, org.id).catalogue is None
    # Saving without a change writes nothing.
    page = client.get(URL).get_data(as_text=True)
    assert client.post(URL, form_of(page)).status_code == 302
    assert "Aucune modification." in client.get(URL).get_data(as_text=True)
    with site.engine.connect() as conn:
        assert len(conn.execute(select(t.audit_log).where(t.audit_log.c.action == "catalogue.update")).all()) == 2


@pytest.mark.parametrize("price", ["1000,01", "-3", "douze", "12,345", "99999"])
def test_a_bad_price_is_refused_with_its_field(site, org, price):
    client = site.client(org.admin)
    data = form_of(client.get(URL).get_data(as_text=True))
    del data["service-7"]
    data["price-12"] = price
    r = client.post(URL, data)
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "Le catalogue n’a pas été enregistré" in html
    assert 'aria-invalid="true" aria-describedby="price-12-error"' in html
    assert re.search(r'<p class="error" id="price-12-error">(Le tarif va de 0 à 1 000 €\.|Écrivez un montant)', html)
    assert f'name="price-12" value="{price}"' in html  # as typed
    assert '<a href="#price-12">12. Internet : fonctionnement des emails&nbsp;: ' in html
    assert 'id="service-7" name="service-7" value="1">' in html  # the other changes are kept on the page
    assert org_row(site, org.id).catalogue is None  # nothing written


def test_a_price_of_an_unticked_service_is_ignored(site, org):
    client = site.client(org.admin)
    data = form_of(client.get(URL).get_data(as_text=True))
    del data["service-5"]
    data["price-5"] = "n’importe quoi"
    assert client.post(URL, data).status_code == 302
    assert org_row(site, org.id).catalogue == "1-4,6-129"


def test_each_organisation_edits_its_own_catalogue(site, org):
    other = site.organisation("EPN de Talence", slug="talence")
    client = site.client(org.admin)
    data = form_of(client.get(URL).get_data(as_text=True))
    data = {k: v for k, v in data.items() if not k.startswith("service-") or k == "service-84"}
    assert client.post(URL, data).status_code == 302
    assert org_row(site, org.id).catalogue == "84"
    assert org_row(site, other.id).catalogue is None
    page = site.client(other.member).get(URL).get_data(as_text=True)
    assert "propose <strong>129</strong>" in page


def test_the_categories_are_grouped_by_level():
    by_level = catalogue_service.sections({n: catalogue_service.Choice(True) for n in referentiel.SERVICES})
    assert list(by_level) == [1, 2, 3]
    assert sum(len(s.lines) for secs in by_level.values() for s in secs) == 129
    assert sum(len(secs) for secs in by_level.values()) == 9


def test_doctests():
    failures, tried = doctest.testmod(catalogue_service)
    assert tried > 0 and failures == 0
