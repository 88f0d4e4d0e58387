"""Contre-paiements (issue 13, item 5): the statements of the organisation, their history and their files.

Scans are real (ingest service, device from the activation service); a month is closed with the statements
service, as the operator's ``close-month`` does; the files are read back as a program would (``csv``,
``pypdf``)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from console_fixtures import Org, Site
from money_fixtures import device, scan
from pypdf import PdfReader
from sqlalchemy import update

from central import schema as t
from central.services import statement_files, statements

FEB = datetime(2026, 2, 16, 10, 0, tzinfo=UTC)
MAR = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)


def euros(text: str) -> str:
    return text.replace("\xa0", " ").replace("\u202f", " ")


def pdf_text(data: bytes) -> str:
    """The PDF's text with every run of spaces (no-break ones included) and line ends made one space."""
    return " ".join(euros("\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)).split())


@pytest.fixture
def scene(site: Site) -> tuple[Org, Org]:
    """Organisation A: 10 passes in February (closed, paid), 4 passes in March (open) of two funders;
    organisation B: 2 passes in January, closed. Names that look like formulas, to check the CSV."""
    a = site.organisation('=HYPERLINK("http://evil")', slug="a")
    b = site.organisation("Centre social B", slug="b")
    dev_a, dev_b = device(site, a), device(site, b)
    scan(site, a, dev_a, site.carnets(1, 10), FEB)
    scan(site, a, dev_a, site.carnets(1, 5, commanditaire="@Région Nouvelle-Aquitaine")[:3], MAR)
    scan(site, a, dev_a, site.carnets(1, 5)[:1], MAR)
    scan(site, b, dev_b, site.carnets(1, 5)[:2], datetime(2026, 1, 20, 10, tzinfo=UTC))
    statements.close_month(site.engine, "2026-01", site.clock())
    statements.close_month(site.engine, "2026-02", site.clock())
    with site.engine.begin() as conn:
        conn.execute(update(t.statements).where(t.statements.c.organisation_id == a.id,
                                                t.statements.c.month == "2026-02")
                     .values(paid_at=datetime(2026, 3, 5, 9, tzinfo=UTC)))  # fmt: skip
    return a, b


def test_the_page_shows_the_current_month_as_provisional_and_the_history_with_payment_status(site, scene):
    a, _ = scene
    html = site.client(a.member).get("/console/contre-paiements").get_data(as_text=True)
    text = euros(html)
    assert "Mois en cours : mars 2026" in html
    assert "Provisoire" in html
    assert "38,40 €" in text  # 4 × 9,60 €: the current month
    assert "96,00 €" in text  # 10 × 9,60 €: February, closed
    assert "Payé le 5 mars 2026" in html
    assert "@Région Nouvelle-Aquitaine" in html and "Département de la Gironde" in html
    assert "janvier 2026" not in html  # B's month: nothing of A's there


def test_a_closed_month_unpaid_says_it_waits_for_payment(site, scene):
    _, b = scene
    client = site.client(b.admin)
    html = client.get("/console/contre-paiements").get_data(as_text=True)
    assert "En attente de paiement" in html
    page = client.get("/console/contre-paiements/2026-01")
    assert page.status_code == 200
    assert "Mois clos, en attente de paiement" in page.get_data(as_text=True)
    assert "19,20 €" in euros(page.get_data(as_text=True))


def test_another_organisations_statement_is_not_reachable(site, scene):
    a, b = scene
    client = site.client(b.member)
    assert client.get("/console/contre-paiements/2026-02").status_code == 404  # A's closed month
    assert client.get("/console/contre-paiements/2026-02/releve.csv").status_code == 404
    assert client.get("/console/contre-paiements/2026-02/releve.pdf").status_code == 404
    assert client.get("/console/contre-paiements/2026-13").status_code == 404
    assert client.get("/console/contre-paiements/pas-un-mois/releve.csv").status_code == 404
    assert site.client(a.member).get("/console/contre-paiements/2026-01").status_code == 404  # B's
    assert site.client().get("/console/contre-paiements/2026-02/releve.csv").status_code == 302  # to the login


@pytest.mark.parametrize("name", ["releve.csv", "releve-tableur.csv"])
def test_csv_reads_back_with_totals_and_neutralised_formulas(site, scene, name):
    a, _ = scene
    r = site.client(a.member).get(f"/console/contre-paiements/2026-03/{name}")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"] and "2026-03" in r.headers["Content-Disposition"]
    spreadsheet = name == "releve-tableur.csv"
    assert r.data.startswith(b"\xef\xbb\xbf") == spreadsheet  # BOM for spreadsheets only
    rows = list(csv.DictReader(io.StringIO(r.data.decode("utf-8-sig")), delimiter=";" if spreadsheet else ","))

    def amount(text: str) -> float:
        return float(text.replace(",", ".")) if spreadsheet else float(text)

    services = [row for row in rows if row["rubrique"] == "service"]
    funders = [row for row in rows if row["rubrique"] == "commanditaire"]
    (total,) = [row for row in rows if row["rubrique"] == "total"]
    assert {row["code"]: int(row["pass"]) for row in services} == {"1": 2, "2": 1, "3": 1}
    assert {row["libelle"]: int(row["pass"]) for row in funders} == {
        "'@Région Nouvelle-Aquitaine": 3,  # neutralised: a spreadsheet shows it as text, never runs it
        "Département de la Gironde": 1,
    }
    assert int(total["pass"]) == 4
    assert amount(total["net"]) == pytest.approx(4 * 9.60)
    assert amount(total["brut"]) == pytest.approx(40.0) and amount(total["frais"]) == pytest.approx(1.60)
    assert sum(amount(row["net"]) for row in services) == pytest.approx(38.40)
    assert all(row["organisation"] == '\'=HYPERLINK("http://evil")' for row in rows)
    assert all(row["mois"] == "2026-03" and row["statut"] == "provisoire" for row in rows)
    if spreadsheet:
        assert total["net"] == "38,40"


def test_the_closed_months_csv_says_so(site, scene):
    a, _ = scene
    r = site.client(a.admin).get("/console/contre-paiements/2026-02/releve.csv")
    rows = list(csv.DictReader(io.StringIO(r.data.decode("utf-8"))))
    assert {row["statut"] for row in rows} == {"clos"}
    assert rows[-1]["rubrique"] == "total" and rows[-1]["pass"] == "10" and rows[-1]["net"] == "96.00"


def test_pdf_reads_back_with_organisation_month_lines_and_totals(site, scene):
    a, _ = scene
    r = site.client(a.member).get("/console/contre-paiements/2026-02/releve.pdf")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/pdf"
    text = pdf_text(r.data)
    assert "=HYPERLINK" in text and "février 2026" in text
    assert "Payé le 5 mars 2026" in text
    assert "Total du mois 10 100,00 € 4,00 € 96,00 €" in text
    assert "Département de la Gironde 10 100,00 € 4,00 € 96,00 €" in text
    assert "9,60 €" in text


def test_pdf_falls_back_to_helvetica_without_the_dejavu_font(site, scene, monkeypatch, tmp_path):
    a, _ = scene
    monkeypatch.setattr(statement_files, "FONT_DIR", tmp_path / "nowhere")
    r = site.client(a.member).get("/console/contre-paiements/2026-03/releve.pdf")
    text = pdf_text(r.data)
    assert "Total du mois 4 40,00 € 1,60 € 38,40 €" in text
    assert "Relevé provisoire" in text


def test_a_month_without_passes_is_the_current_one_only(site):
    org = site.organisation("Tiers-lieu vide", slug="vide")
    client = site.client(org.member)
    html = client.get("/console/contre-paiements").get_data(as_text=True)
    assert "Mois en cours : mars 2026" in html and "Aucun pass accepté ce mois-ci." in html
    r = client.get("/console/contre-paiements/2026-03/releve.csv")
    rows = list(csv.DictReader(io.StringIO(r.data.decode("utf-8"))))
    assert [row["rubrique"] for row in rows] == ["total"] and rows[0]["net"] == "0.00"
    assert client.get("/console/contre-paiements/2026-02").status_code == 404
