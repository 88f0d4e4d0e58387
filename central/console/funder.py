"""A funder's pages (``/console/financeur/…``): its order requests and orders, a new request (admins only),
and what one order's carnets became (uses by month, place and service, and their CSV).

Only users with a funder membership see them (anyone else gets 404); every query is scoped to the funder they
act for (``access.funder_id``), so another funder's order is 404 too. The operator activates a submitted
request from their own « Commandes » page (``console.operator``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from central.console.access import client_ip, engine, funder_id, funder_required, now
from central.services import funders as service
from central.services.common import ServiceError, local_date
from central.services.payments import french_date

bp = Blueprint("console_funder", __name__, url_prefix="/console/financeur")


def _is_admin() -> bool:
    return bool(current_user.funders.get(funder_id()) == "admin")


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"french_date": french_date}


@bp.get("/commandes")
@funder_required
def orders() -> Any:
    with engine().connect() as conn:
        name = service.funder_name(conn, funder_id())
        requests = service.requests(conn, funder_id())
        issued = service.orders(conn, funder_id())
    return render_template("console/funder_orders.html", title="Commandes", funder=name, requests=requests,
                           orders=issued, is_admin=_is_admin())  # fmt: skip


@bp.route("/commandes/nouvelle", methods=["GET", "POST"])
@funder_required
def new() -> Any:
    if not _is_admin():
        abort(404)
    today = local_date(now())
    if request.method == "GET":
        return render_template("console/funder_new.html", title="Nouvelle commande", failed={},
                               values={"carnet_size": "10", "millesime": str(today.year)})  # fmt: skip
    try:
        new_id = service.create_request(engine(), funder_id(), request.form, current_user.id, now(), ip=client_ip())
    except ServiceError as refusal:
        return render_template("console/funder_new.html", title="Nouvelle commande", values=request.form,
                               failed={"message": refusal.message, "fields": refusal.fields}), 400  # fmt: skip
    flash(f"Brouillon de commande {new_id} enregistré : vérifiez-le, puis soumettez-le.", "success")
    return redirect(url_for(".orders", _anchor=f"request-{new_id}"))


@bp.post("/demandes/<int:request_id>/soumission")
@funder_required
def submit(request_id: int) -> Any:
    if not _is_admin():
        abort(404)
    try:
        service.submit_request(engine(), funder_id(), request_id, current_user.id, now(), ip=client_ip())
    except ServiceError as refusal:
        if refusal.status == 404:
            abort(404)
        flash(refusal.message, "error")
        return redirect(url_for(".orders"))
    flash(f"Commande {request_id} soumise : l’opérateur l’activera à réception du paiement.", "success")
    return redirect(url_for(".orders"))


@bp.get("/commandes/<int:order_id>")
@funder_required
def order(order_id: int) -> Any:
    try:
        with engine().connect() as conn:
            found = service.report(conn, funder_id(), order_id, local_date(now()))
    except ServiceError:
        abort(404)
    return render_template("console/funder_order.html", title=f"Commande {order_id}", o=found)


@bp.get("/commandes/<int:order_id>/utilisation.csv")
@funder_required
def uses_csv(order_id: int) -> Any:
    try:
        with engine().connect() as conn:
            text = service.uses_csv(conn, funder_id(), order_id)
    except ServiceError:
        abort(404)
    return Response(
        "\ufeff" + text,
        mimetype="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="commande-{order_id}-utilisation.csv"'},
    )
