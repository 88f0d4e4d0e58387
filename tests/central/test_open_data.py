"""Open data: the qualified places in LaMednum's national format, checked by the Frictionless validator.

The exports are validated against ``central/open_data/schema.json`` with ``frictionless`` (a test-only
dependency), the CSV dialect pinned to the format's (``,`` between cells): a file another tool would have to
guess about is a file the national harvester rejects.
"""

from __future__ import annotations

import doctest
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from frictionless import Report, Resource, Schema, formats, validate
from sqlalchemy import update

from aptic import referentiel
from central import cli
from central import schema as t
from central.app import create_app
from central.config import Settings
from central.db import make_engine, migrate
from central.open_data import SCHEMA_FILE, field_names, table_schema
from central.services import admin, open_data
from central.services.common import record_change

SCHEMA = Path(open_data.__file__).parents[1] / "open_data" / SCHEMA_FILE
CSV_URL = "/open-data/lieux-de-mediation-numerique.csv"
JSON_URL = "/open-data/lieux-de-mediation-numerique.json"
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
ERRORS = ["rowNumber", "fieldName", "type", "note"]


def standard() -> Schema:
    """The package's schema.json, given as its content (frictionless refuses an absolute path as unsafe)."""
    return Schema.from_descriptor(json.loads(SCHEMA.read_text("utf-8")))


def check_csv(path: Path) -> Report:
    """Validate a CSV file as the format wants it: UTF-8, ``,`` between cells (never guessed)."""
    control = formats.CsvControl(delimiter=",")
    # (frictionless refuses an absolute path as unsafe: the file is named relative to a base path)
    resource = Resource(path=path.name, basepath=str(path.parent), schema=standard(), control=control)
    return resource.validate()


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'central.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return url


@pytest.fixture
def places(db: str):
    """Two qualified organisations (one with its address, phone and a narrow catalogue) and an unqualified one."""
    engine = make_engine(db)
    media = admin.add_organisation(engine, "Médiathèque de Bègles", "21330039100015", NOW, catalogue="2.2,42-50")
    with engine.begin() as conn:
        conn.execute(
            update(t.organisations).where(t.organisations.c.id == media)
            .values(address="Place du 14 Juillet", postcode="33130", commune="Bègles", phone="05 56 00 00 00")
        )  # fmt: skip
    ids = {
        "annexe": admin.add_point(engine, media, "Annexe, « La Ruche »", "33039", ["BIB", "EPN"], NOW,
                                  latitude=44.8037, longitude=-0.5442, opening_hours="Mo-Fr 09:00-12:00",
                                  address="12 rue des Écoles", postcode="33130", commune="Bègles"),
        # No address of its own: shown at its organisation's.
        "bus": admin.add_point(engine, media, "Le bus numérique", "33039", ["ITINERANT"], NOW),
    }  # fmt: skip
    with engine.begin() as conn:  # the annexe edited later, late in the evening: a French date
        record_change(conn, "point", ids["annexe"], datetime(2026, 3, 12, 23, 30, tzinfo=UTC))
    asso = admin.add_organisation(engine, "Asso sans adresse", "44306184100047", NOW)
    ids["no_address"] = admin.add_point(engine, asso, "Point sans adresse", "44109", ["ASSO"], NOW)
    ids["asso"] = admin.add_point(engine, asso, "Local de l’asso", "44109", ["ASSO"], NOW,
                                  address="3 quai Ferdinand-Favre", postcode="44000", commune="Nantes")  # fmt: skip
    shady = admin.add_organisation(engine, "Organisation non qualifiée", "55210055400013", NOW)
    ids["unqualified"] = admin.add_point(engine, shady, "Lieu non qualifié", "33063", ["EPN"], NOW,
                                         address="1 cours Pasteur", postcode="33000", commune="Bordeaux")  # fmt: skip
    with engine.begin() as conn:
        conn.execute(update(t.organisations).where(t.organisations.c.id == shady).values(qualified=False))
    engine.dispose()
    return ids


@pytest.fixture
def client(db: str, tmp_path: Path, places):
    app = create_app(Settings(tmp_path, db, b"open-data-test-secret"), now=lambda: NOW)
    return app.test_client()


def export(client, url: str, path: Path) -> Path:
    response = client.get(url)
    assert response.status_code == 200
    path.write_bytes(response.data)
    return path


def test_the_schema_is_the_standard_s_32_fields_with_id_as_primary_key():
    schema = table_schema()
    assert Schema.validate_descriptor(str(SCHEMA)).valid
    assert schema["version"] == "v1.0.2" and schema["licenses"][0]["name"] == "etalab-2.0"
    assert len(field_names()) == 32 and field_names()[:5] == ("id", "pivot", "nom", "commune", "code_postal")
    assert schema["primaryKey"] == ["id"]
    required = {f["name"] for f in schema["fields"] if f.get("constraints", {}).get("required")}
    assert required == {"id", "pivot", "nom", "commune", "adresse", "code_postal", "date_maj"}


def test_every_category_of_the_referentiel_maps_to_a_service_of_the_standard():
    assert set(open_data.CATEGORY_SERVICES) == set(referentiel.CATEGORIES)
    assert set(open_data.CATEGORY_SERVICES.values()) <= set(open_data.STANDARD_SERVICES)
    services = next(f for f in table_schema()["fields"] if f["name"] == "services")
    pattern = re.compile(services["constraints"]["pattern"])
    assert all(pattern.fullmatch(value) for value in open_data.STANDARD_SERVICES)
    assert pattern.fullmatch("|".join(open_data.STANDARD_SERVICES))
    assert not pattern.fullmatch(";".join(open_data.STANDARD_SERVICES[:2]))


@pytest.mark.parametrize(
    ("phone", "expected"),
    [("05 56 00 00 00", "+33556000000"), ("+33 6 12 34 56 78", "+33612345678"), ("0033556000000", "+33556000000"),
     ("0262 12 34 56", "+262262123456"), ("12 34", None), ("", None), (None, None)],
)  # fmt: skip
def test_phones_are_written_in_international_form(phone, expected):
    assert open_data.international_phone(phone) == expected


def test_the_csv_export_is_valid_and_holds_the_qualified_places(client, places, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="central.services.open_data"):
        path = export(client, CSV_URL, tmp_path / "lieux.csv")
    report = check_csv(path)
    assert report.valid, report.flatten(ERRORS)
    text = path.read_text("utf-8")
    assert text.splitlines()[0] == ",".join(field_names())
    read = Resource(path=path.name, basepath=str(path.parent), schema=standard())
    rows = {row["id"]: row for row in read.read_rows()}
    # The unqualified organisation's point is not published; nor is the point without any address.
    assert set(rows) == {f"aptic-lieu-{places[k]}" for k in ("annexe", "bus", "asso")}
    assert "1 point(s)" in caplog.text and "adresse: 1" in caplog.text
    annexe = rows[f"aptic-lieu-{places['annexe']}"]
    assert annexe["nom"] == "Annexe, « La Ruche »" and annexe["adresse"] == "12 rue des Écoles"
    assert annexe["pivot"] == "21330039100015" and annexe["code_insee"] == "33039"
    assert float(annexe["latitude"]) == pytest.approx(44.8037) and annexe["typologie"] == "BIB|EPN"
    assert annexe["services"] == "Aide aux démarches administratives|Maîtrise des outils numériques du quotidien"
    assert annexe["telephone"] == "+33556000000" and annexe["horaires"] == "Mo-Fr 09:00-12:00"
    assert annexe["frais_a_charge"] == "Gratuit sous condition" and annexe["source"] == "Pass numérique #APTIC"
    assert annexe["itinerance"] == "Fixe" and str(annexe["date_maj"]) == "2026-03-13"
    bus = rows[f"aptic-lieu-{places['bus']}"]
    assert (bus["adresse"], bus["code_postal"], bus["commune"]) == ("Place du 14 Juillet", "33130", "Bègles")
    assert str(bus["date_maj"]) == "2026-03-10"
    asso = rows[f"aptic-lieu-{places['asso']}"]
    assert asso["telephone"] is None  # the organisation gave none
    assert len(asso["services"].split("|")) == len(set(open_data.CATEGORY_SERVICES.values()))  # the whole référentiel


def test_the_json_export_is_valid_with_the_same_rows(client, places, tmp_path):
    path = export(client, JSON_URL, tmp_path / "lieux.json")
    report = validate(path.name, basepath=str(path.parent), schema=standard())
    assert report.valid, report.flatten(ERRORS)
    data = json.loads(path.read_text("utf-8"))
    assert [list(row) for row in data] == [list(field_names())] * 3
    assert [row["id"] for row in data] == [f"aptic-lieu-{places[k]}" for k in ("annexe", "bus", "asso")]
    assert data[0]["latitude"] == pytest.approx(44.8037) and data[0]["complement_adresse"] is None


def test_a_bad_postcode_a_semicolon_or_a_duplicate_id_fails_validation(client, tmp_path):
    good = export(client, CSV_URL, tmp_path / "good.csv").read_text("utf-8")
    assert check_csv(tmp_path / "good.csv").valid

    bad_postcode = tmp_path / "postcode.csv"
    bad_postcode.write_text(good.replace(",33130,", ",3313,", 1), "utf-8")
    report = check_csv(bad_postcode)
    assert not report.valid and report.flatten(["fieldName"]) == [["code_postal"]]

    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text(good.replace(",", ";"), "utf-8")
    assert not check_csv(semicolons).valid

    services_with_semicolons = tmp_path / "services.csv"
    services_with_semicolons.write_text(good.replace("administratives|Maîtrise", "administratives;Maîtrise"), "utf-8")
    report = check_csv(services_with_semicolons)
    assert not report.valid and {e[0] for e in report.flatten(["fieldName"])} == {"services"}

    lines = good.splitlines(keepends=True)
    duplicate = tmp_path / "duplicate.csv"
    duplicate.write_text("".join([*lines, lines[1]]), "utf-8")
    report = check_csv(duplicate)
    assert not report.valid and "primary-key" in {e[0] for e in report.flatten(["type"])}


def test_the_urls_are_public_and_say_what_they_send(client):
    for url, media, name in (
        (CSV_URL, "text/csv; charset=utf-8", "lieux-de-mediation-numerique.csv"),
        (JSON_URL, "application/json; charset=utf-8", "lieux-de-mediation-numerique.json"),
    ):
        response = client.get(url)  # no session, no login
        assert response.status_code == 200
        assert response.headers["Content-Type"] == media
        assert f'filename="{name}"' in response.headers["Content-Disposition"]
        assert response.headers["Cache-Control"] == "public, max-age=300"
    assert client.get("/open-data/lieux-de-mediation-numerique.xml").status_code == 404


@pytest.mark.parametrize(("fmt", "url"), [("csv", CSV_URL), ("json", JSON_URL)])
def test_the_command_prints_what_the_url_sends(client, db, tmp_path, capsys, fmt, url):
    served = client.get(url).data.decode("utf-8")
    capsys.readouterr()
    assert cli.main(["export-places", "--format", fmt, "--db", db, "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == served


def test_the_live_server_serves_the_open_data_without_login(central):
    org, points = central.organisation("Médiathèque", points=2)
    with central.engine.begin() as conn:
        conn.execute(
            update(t.organisations)
            .where(t.organisations.c.id == org)
            .values(address="1 place Pey-Berland", postcode="33000", commune="Bordeaux")
        )
    response = requests.get(central.url(JSON_URL), timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert [row["id"] for row in response.json()] == [f"aptic-lieu-{p}" for p in points]


def test_the_service_s_examples_hold():
    assert doctest.testmod(open_data).failed == 0
