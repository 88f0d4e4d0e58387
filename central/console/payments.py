"""Contre-paiements: what the organisation is paid each month for the passes it accepted.

The current month and the past months not closed yet are *provisional* (computed live); closed months show the
frozen statement and whether it was paid. Each month downloads as CSV (plain or for spreadsheets) and PDF
(``services.statement_files``). Members and admins alike see them; every query is scoped to the organisation
the user acts for, and a month that is not one of its statements is a 404.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, render_template

from central.console.access import engine, member_required, now, organisation_id
from central.services import payments, statement_files
from central.services.common import ServiceError, month_of

bp = Blueprint("console_payments", __name__, url_prefix="/console")

DOWNLOADS = {
    "releve.csv": ("text/csv; charset=utf-8", "csv"),
    "releve-tableur.csv": ("text/csv; charset=utf-8", "tableur.csv"),
    "releve.pdf": ("application/pdf", "pdf"),
}


def _statement(month: str, history: list[payments.MonthSummary] | None = None) -> dict[str, Any]:
    try:
        with engine().connect() as conn:
            return payments.month_statement(conn, organisation_id(), month, now(), history)
    except ServiceError as error:
        abort(error.status if error.status in (400, 404) else 500)


@bp.get("/contre-paiements")
@member_required
def index() -> Any:
    with engine().connect() as conn:
        history = payments.months(conn, organisation_id(), now())
    current = month_of(now())
    document = _statement(current, history) if any(m.month == current for m in history) else None
    return render_template("console/payments.html", title="Contre-paiements", history=history, current=document,
                           french_date=payments.french_date)  # fmt: skip


@bp.get("/contre-paiements/<month>")
@member_required
def month(month: str) -> Any:
    document = _statement(month)
    return render_template("console/payment_month.html", title=f"Relevé de {document['label']}", document=document,
                           french_date=payments.french_date)  # fmt: skip


@bp.get("/contre-paiements/<month>/<any('releve.csv', 'releve-tableur.csv', 'releve.pdf'):name>")
@member_required
def download(month: str, name: str) -> Response:
    document = _statement(month)
    content_type, extension = DOWNLOADS[name]
    if extension == "pdf":
        body = statement_files.to_pdf(document)
    else:
        body = statement_files.to_csv(document, spreadsheet=extension == "tableur.csv")
    response = Response(body, content_type=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{statement_files.filename(document, extension)}"'
    return response
