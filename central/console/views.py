"""The console's home and its shared pieces: the static files, the template helpers, the error pages."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, redirect, render_template, request, session, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from aptic.money import format_euros
from central import schema as t
from central.console.access import engine, home_url

bp = Blueprint("console", __name__, url_prefix="/console", static_folder="static", static_url_path="/static",
               template_folder="templates")  # fmt: skip


@bp.get("/")
def home() -> Any:
    if not current_user.is_authenticated:
        return redirect(url_for("console_auth.login"))
    return redirect(home_url())


@bp.app_template_filter("euros")
def euros(cents: int) -> str:
    """``960`` → ``9,60 €`` (French format, non-breaking space)."""
    return format_euros(cents)


@bp.app_context_processor
def _navigation() -> dict[str, Any]:
    """What the page header shows: the menu, and the organisation the user acts for (with a switch when
    they belong to several)."""
    context: dict[str, Any] = {"nav_items": nav_items, "current_nav": current_nav}
    if request.path.startswith("/console") and current_user.is_authenticated and current_user.memberships:
        ids = sorted(current_user.memberships)
        with engine().connect() as conn:
            query = select(t.organisations.c.id, t.organisations.c.name).where(t.organisations.c.id.in_(ids))
            names = {row.id: row.name for row in conn.execute(query)}
        chosen = session.get("organisation") if session.get("organisation") in names else ids[0]
        context.update(organisation_names=names, current_organisation=chosen,
                       current_organisation_name=names.get(chosen, ""))  # fmt: skip
    return context


def nav_items() -> list[tuple[str, str]]:
    """(label, endpoint) of the navigation for the logged-in user, in the order of a médiateur's day; the
    operator's pages for the operator (after the places' when they are also a member of one)."""
    if not current_user.is_authenticated:
        return []
    items = list(PLACE_ITEMS) if current_user.memberships else []
    if current_user.is_operator:
        items += OPERATOR_ITEMS
    if current_user.funders:
        # A user who is also an operator or a place's member would see two « Commandes »: say whose.
        own = not items
        items += [(label if own else f"{label} (financeur)", endpoint) for label, endpoint in FUNDER_ITEMS]
    return items


PLACE_ITEMS = [
    ("Tableau de bord", "console_dashboard.index"),
    ("Tester un pass", "console_scan.test_pass"),
    ("Scanner des pass", "console_scan.scan"),
    ("Contre-paiements", "console_payments.index"),
    ("Catalogue", "console_catalogue.index"),
    ("Points de présence", "console_points.index"),
    ("Organisation", "console_organisation.index"),
]
OPERATOR_ITEMS = [
    ("Organisations", "console_operator.organisations"),
    ("Carnets", "console_operator.carnets"),
    ("Commandes", "console_operator.orders"),
    ("Relevés", "console_operator.statements"),
    ("Parc", "console_operator.fleet"),
    ("Journal", "console_operator.journal"),
]
FUNDER_ITEMS = [("Tableau de bord", "console_funder_dashboard.index"), ("Commandes", "console_funder.orders")]


ERRORS = {
    400: "La demande n’a pas pu être comprise. Rechargez la page et recommencez.",
    404: "Cette page n’existe pas, ou vous n’y avez pas accès.",
    405: "Cette action n’est pas possible ici.",
    413: "Le fichier envoyé est trop volumineux.",
    429: "Trop de demandes : patientez un peu avant de recommencer.",
}


def current_nav() -> str | None:
    """The menu entry of this page: its own endpoint, else the entry of its area (the members page is under
    « Organisation »)."""
    endpoints = [endpoint for _, endpoint in nav_items()]
    if request.endpoint in endpoints:
        return request.endpoint
    return next((e for e in endpoints if e.split(".")[0] == request.blueprint), None)


def register_errors(app: Flask) -> None:
    """French HTML error pages under ``/console`` (the API keeps its JSON errors: its handler is the fallback)."""
    api_handler = app.error_handler_spec[None][None].get(HTTPException)

    @app.errorhandler(HTTPException)
    def on_http_error(error: HTTPException) -> Any:
        if not request.path.startswith("/console") or request.path.startswith("/console/static"):
            return api_handler(error) if api_handler else error
        code = error.code or 500
        message = ERRORS.get(code, "Une erreur est survenue.")
        if isinstance(error, CSRFError):
            message = "Le formulaire a expiré (ou vient d’un autre site). Rechargez la page et recommencez."
        return render_template("console/error.html", code=code, message=message), code
