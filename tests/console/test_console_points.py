"""Points de présence over HTTP: members read, admins create and edit; every field checked with a French
error on the field (400); another organisation's point is 404; writes audited and recorded for the
terminals; the ``add-point`` command's address flags."""

from __future__ import annotations

import doctest
import json

import pytest
from sqlalchemy import select

from aptic import opening_hours
from central import cli
from central import schema as t
from central.services import points as points_service

LIST = "/console/points-de-presence"
NEW = "/console/points-de-presence/nouveau"

GOOD = {
    "name": "Médiathèque Jean Degoul",
    "address": "12 rue des Écoles",
    "postcode": "33130",
    "commune": "Bègles",
    "insee": "33039",
    "latitude": "44,8085",
    "longitude": "-0,5480",
    "hours": "Tu-Sa 10h-12h,14:00-18:00 ; PH off",
    "typologies": ["BIB", "EPN"],
    "stop-rows": "3",
}


@pytest.fixture
def org(site):
    return site.organisation("Médiathèque de Bègles", slug="begles")


def point_row(site, point_id):
    with site.engine.connect() as conn:
        return conn.execute(select(t.points).where(t.points.c.id == point_id)).one()


def changes(site, kind="point"):
    with site.engine.connect() as conn:
        return [r.ref for r in conn.execute(select(t.changes).where(t.changes.c.kind == kind))]


def test_an_admin_creates_a_point_with_its_hours_and_its_bus_stops(site, org):
    client = site.client(org.admin)
    page = client.get(NEW).get_data(as_text=True)
    assert '<label for="f-hours">Horaires</label>' in page and 'id="typo-BIB"' in page
    assert "Bibliothèque ou médiathèque" in page
    data = {**GOOD, "itinerant": "1", "stop-0-place": "Place du marché", "stop-0-insee": "33318",
            "stop-0-hours": "We 9:00-12:00", "stop-2-place": "Salle des fêtes", "stop-2-insee": "33522",
            "stop-2-hours": "Fr 14:00-17:00"}  # fmt: skip
    r = client.post(NEW, data)
    assert r.status_code == 302
    new_id = int(r.headers["Location"].rsplit("/", 1)[1])
    row = point_row(site, new_id)
    assert row.organisation_id == org.id and row.departement == "33"
    assert (row.address, row.postcode, row.commune) == ("12 rue des Écoles", "33130", "Bègles")
    assert (row.latitude, row.longitude) == (44.8085, -0.548)  # the decimal comma read
    assert row.opening_hours == "Tu-Sa 10:00-12:00,14:00-18:00; PH off"  # normalised
    assert row.typologies == "BIB,EPN" and row.itinerant
    assert row.stops == [{"place": "Place du marché", "insee": "33318", "hours": "We 09:00-12:00"},
                         {"place": "Salle des fêtes", "insee": "33522", "hours": "Fr 14:00-17:00"}]  # fmt: skip
    assert str(new_id) in changes(site)
    with site.engine.connect() as conn:
        audit = conn.execute(select(t.audit_log).where(t.audit_log.c.action == "point.create")).one()
    assert audit.target == f"point:{new_id}" and audit.organisation_id == org.id

    shown = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Point de présence « Médiathèque Jean Degoul » créé." in shown
    assert "Tu-Sa 10:00-12:00,14:00-18:00; PH off" in shown and "Place du marché" in shown
    assert "44,8085 ; -0,548" in shown
    listing = client.get(LIST).get_data(as_text=True)
    assert "Médiathèque Jean Degoul" in listing and "itinérant, 2 arrêts" in listing


def test_an_admin_edits_a_point_and_removes_a_stop(site, org):
    client = site.client(org.admin)
    stop = {"stop-0-place": "Marché", "stop-0-insee": "33318", "stop-0-hours": "We 09:00-12:00"}
    new_id = int(client.post(NEW, {**GOOD, "itinerant": "1", **stop}).headers["Location"].rsplit("/", 1)[1])
    edit = f"{LIST}/{new_id}/modifier"
    form = client.get(edit).get_data(as_text=True)
    assert 'name="stop-rows" value="4"' in form  # the stop and three empty rows
    assert 'id="f-latitude" name="latitude" type="text" value="44,8085"' in form
    before = len(changes(site))
    r = client.post(edit, {**GOOD, "name": "Médiathèque (annexe)", "itinerant": "1", "stop-rows": "4",
                           "stop-0-place": "Marché", "stop-0-insee": "33318", "stop-0-hours": "We 09:00-12:00",
                           "stop-0-remove": "1", "typologies": ["BIB"]})  # fmt: skip
    assert r.status_code == 302
    row = point_row(site, new_id)
    assert row.name == "Médiathèque (annexe)" and row.stops == [] and row.typologies == "BIB"
    assert len(changes(site)) == before + 1
    with site.engine.connect() as conn:
        audit = conn.execute(select(t.audit_log).where(t.audit_log.c.action == "point.update")).one()
    assert audit.details == {"fields": ["name", "stops", "typologies"]}
    # The same form again: nothing written.
    r = client.post(edit, {**GOOD, "name": "Médiathèque (annexe)", "itinerant": "1", "typologies": ["BIB"]})
    assert r.status_code == 302 and len(changes(site)) == before + 1
    assert "Aucune modification." in client.get(r.headers["Location"]).get_data(as_text=True)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("postcode", "3313", "Le code postal compte 5 chiffres"),
        ("insee", "3303", "Le code INSEE d’une commune compte 5 caractères"),
        ("insee", "", "Le code INSEE d’une commune compte 5 caractères"),
        ("name", "  ", "Indiquez le nom du point de présence."),
        ("hours", "Lu-Ve 09:00-12:00", "« Lu » n’est pas un jour"),
        ("hours", "Mo 18:00-09:00", "l’heure de fin doit suivre l’heure de début"),
        ("hours", "Mo-Fr", "indiquez des horaires"),
        ("latitude", "95", "La latitude doit être un nombre entre -90 et 90."),
        ("longitude", "ouest", "La longitude doit être un nombre décimal"),
    ],
)
def test_a_bad_field_is_refused_on_the_field(site, org, field, value, message):
    client = site.client(org.admin)
    r = client.post(NEW, {**GOOD, field: value})
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "Le point de présence n’a pas été enregistré" in html
    assert 'aria-invalid="true"' in html and f'id="f-{field}-error">' in html
    error = html.split(f'id="f-{field}-error">', 1)[1].split("</p>", 1)[0]
    assert message in error.replace("&#39;", "'").replace("&amp;", "&")
    assert 'value="Médiathèque Jean Degoul"' in html or field == "name"  # what was typed stays
    with site.engine.connect() as conn:
        assert conn.execute(select(t.points.c.id).where(t.points.c.organisation_id == org.id)).all() == [
            (org.points[0],)
        ]


def test_coordinates_come_in_pairs_and_stops_need_the_itinerant_box(site, org):
    client = site.client(org.admin)
    r = client.post(NEW, {**GOOD, "longitude": ""})
    assert r.status_code == 400 and 'id="f-longitude-error">Indiquez la latitude et la longitude' in r.get_data(
        as_text=True
    )
    r = client.post(NEW, {**GOOD, "stop-1-place": "Marché", "stop-1-insee": "33318", "stop-1-hours": "We 09:00-12:00"})
    assert r.status_code == 400 and 'id="f-itinerant-error">Cochez « Ce lieu se déplace »' in r.get_data(as_text=True)
    r = client.post(NEW, {**GOOD, "itinerant": "1", "stop-1-place": "Marché", "stop-1-insee": "333",
                          "stop-1-hours": "mercredi"})  # fmt: skip
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert 'id="f-stop-1-insee-error">Le code INSEE de la commune de l’arrêt' in html
    assert 'id="f-stop-1-hours-error">' in html and "<legend>Arrêt 2</legend>" in html


def test_a_member_reads_the_points_but_cannot_create_or_edit(site, org):
    client = site.client(org.member)
    listing = client.get(LIST).get_data(as_text=True)
    assert "Médiathèque de Bègles 1" in listing and "Ajouter un point de présence" not in listing
    shown = client.get(f"{LIST}/{org.points[0]}")
    assert shown.status_code == 200 and "/modifier" not in shown.get_data(as_text=True)
    assert client.get(NEW).status_code == 404
    assert client.get(f"{LIST}/{org.points[0]}/modifier").status_code == 404
    assert client.post(NEW, GOOD, form_page=LIST).status_code == 404
    r = client.post(f"{LIST}/{org.points[0]}/modifier", {**GOOD, "name": "Piraté"}, form_page=LIST)
    assert r.status_code == 404
    assert point_row(site, org.points[0]).name == "Médiathèque de Bègles 1"


def test_another_organisations_point_is_404(site, org):
    other = site.organisation("EPN de Talence", slug="talence", insee="33522")
    client = site.client(org.admin)
    theirs = other.points[0]
    assert client.get(f"{LIST}/{theirs}").status_code == 404
    assert client.get(f"{LIST}/{theirs}/modifier").status_code == 404
    r = client.post(f"{LIST}/{theirs}/modifier", {**GOOD, "name": "Piraté"}, form_page=LIST)
    assert r.status_code == 404
    assert point_row(site, theirs).name == "EPN de Talence 1"
    assert "EPN de Talence" not in client.get(LIST).get_data(as_text=True)
    assert client.get(f"{LIST}/99999").status_code == 404


def test_add_point_takes_the_address(site, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("APTIC_CENTRAL_SECRET", "cli-secret")
    db = str(site.engine.url)
    org = site.organisation("Centre social", slug="cs")

    def run(*args: str) -> tuple[int, dict]:
        code = cli.main(["add-point", "--db", db, "--data-dir", str(tmp_path), "--organisation", str(org.id), *args,
                         "--json"])  # fmt: skip
        return code, json.loads(capsys.readouterr().out)

    code, out = run("--name", "Bus numérique", "--insee", "33318", "--typologie", "ITINERANT,CAF",
                     "--address", "Place de la République", "--postcode", "33150", "--commune", "Cenon",
                     "--latitude", "44.857", "--longitude", "-0.5317", "--opening-hours", "We 9h-12h")  # fmt: skip
    assert code == 0
    row = point_row(site, out["id"])
    assert (row.address, row.postcode, row.commune) == ("Place de la République", "33150", "Cenon")
    assert row.typologies == "CAF,ITINERANT"  # data·inclusion codes the console does not list are kept
    assert (row.latitude, row.longitude, row.opening_hours) == (44.857, -0.5317, "We 09:00-12:00")
    code, out = run("--name", "X", "--insee", "33318", "--postcode", "331", "--opening-hours", "Lu 9h-12h")
    assert code == 1 and out["error"] == "invalid_point"
    assert set(out["fields"]) == {"postcode", "hours"}


def test_the_cli_names_the_option_at_fault(site, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("APTIC_CENTRAL_SECRET", "cli-secret")
    org = site.organisation("Centre social", slug="cs")
    code = cli.main(["add-point", "--db", str(site.engine.url), "--data-dir", str(tmp_path), "--organisation",
                     str(org.id), "--name", "X", "--insee", "33318", "--opening-hours", "Lu 9h-12h"])  # fmt: skip
    assert code == 1
    assert "--opening-hours : « Lu » n’est pas un jour" in capsys.readouterr().err


@pytest.mark.parametrize("module", [opening_hours, points_service], ids=lambda m: m.__name__)
def test_doctests(module):
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0
