"""Catalogue: the services of the national référentiel the organisation offers, and their prices.

Members read it; admins edit it in one form (a checkbox per service, its price, whether it accepts the
regulated price), grouped by level and by category in ``<details>`` so that 129 rows stay usable on a
phone. The logic lives in ``services.catalogue``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from aptic import referentiel
from central.console.access import admin_required, client_ip, engine, member_required, now, organisation_id, role
from central.services import catalogue
from central.services.common import ServiceError

bp = Blueprint("console_catalogue", __name__, url_prefix="/console")


def _page(choices: dict[int, catalogue.Choice], errors: dict[str, str] | None = None,
          prices: dict[str, str] | None = None) -> str:  # fmt: skip
    """The page, with the prices as typed when a form comes back with errors."""
    return render_template(
        "console/catalogue.html",
        levels=referentiel.LEVELS,
        services=referentiel.SERVICES,
        sections=catalogue.sections(choices),
        selected=sum(1 for c in choices.values() if c.selected),
        total=len(choices),
        editable=role() == "admin",
        errors=errors or {},
        prices=prices or {f"price-{n}": catalogue.format_price(c.price_cents) for n, c in choices.items()},
    )


@bp.get("/catalogue")
@member_required
def index() -> Any:
    with engine().connect() as conn:
        choices = catalogue.load(conn, organisation_id())
    return _page(choices)


@bp.post("/catalogue")
@admin_required
def save() -> Any:
    choices, errors = catalogue.read_form(request.form)
    if not errors:
        try:
            changes = catalogue.save(engine(), organisation_id(), choices, now(), user_id=current_user.id,
                                     ip=client_ip())  # fmt: skip
        except ServiceError as refusal:
            errors = refusal.fields or {"form": refusal.message}
        else:
            flash("Catalogue enregistré." if any(changes.values()) else "Aucune modification.", "success")
            return redirect(url_for("console_catalogue.index"))
    typed = {f"price-{n}": request.form.get(f"price-{n}", "") for n in referentiel.SERVICES}
    return _page(choices, errors, typed), 400
