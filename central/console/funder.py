"""A funder's pages (``/console/financeur/…``): its order requests and orders, a new request or a draft changed
or withdrawn (admins only), and what one order's carnets became (distributions, uses by month, place and
service, and their CSV). A user of several funders chooses the one they act for, as a member of several
places does.

Only users with a funder membership see them (anyone else gets 404); every query is scoped to the funder they
act for (``access.funder_id``), so another funder's order is 404 too. The operator activates a submitted
request from their own « Commandes » page (``console.operator``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from aptic import referentiel
from aptic.places import TYPOLOGIES
from central.console.access import client_ip, engine, funder_id, funder_required, now
from central.services import funders as service
from central.services.common import ServiceError, local_date
from central.services.payments import french_date

bp = Blueprint("console_funder", __name__, url_prefix="/console/financeur")


def _is_admin() -> bool:
    return bool(current_user.funders.get(funder_id()) == "admin")


def fmt_carnet(carnet: str) -> str:
    """A carnet's 10 digits as printed on its page: ``1 26 0001234``."""
    return f"{carnet[0]} {carnet[1:3]} {carnet[3:]}"


@bp.app_context_processor  # the dashboard (its own blueprint) shows the funder's choice too
def _helpers() -> dict[str, Any]:
    helpers = {"french_date": french_date, "fmt_carnet": fmt_carnet, "funder_names": {}}
    if current_user.is_authenticated and len(current_user.funders) > 1:
        with engine().connect() as conn:
            helpers["funder_names"] = {i: service.funder_name(conn, i) for i in sorted(current_user.funders)}
        helpers["current_funder"] = funder_id()
    return helpers


@bp.post("/choisir")
@funder_required
def choose() -> Any:
    """A user of several funders changes the one they act for."""
    try:
        chosen = int(request.form.get("funder", ""))
    except ValueError:
        abort(400)
    if chosen not in current_user.funders:
        abort(404)
    session["funder"] = chosen
    return redirect(url_for("console_funder_dashboard.index"))


@bp.get("/commandes")
@funder_required
def orders() -> Any:
    with engine().connect() as conn:
        name = service.funder_name(conn, funder_id())
        requests = service.requests(conn, funder_id())
        issued = service.orders(conn, funder_id())
        names = service.point_names(conn, {p for r in requests for p in r.points})
    return render_template("console/funder_orders.html", title="Commandes", funder=name, requests=requests,
                           orders=issued, is_admin=_is_admin(), restrictions=service.restrictions,
                           point_names=names)  # fmt: skip


def _form(title: str, action: str, values: Any, failed: dict[str, Any] | None = None) -> str:
    """The request form: new or a draft changed; ``values`` a request's form (lists for the checkboxes)."""
    if hasattr(values, "getlist"):  # a posted form shown again: every checked box, not only the first
        values = {**values.to_dict(), **{k: values.getlist(k) for k in ("place_types", "categories", "points")}}
    with engine().connect() as conn:
        points = service.designatable_points(conn)
    return render_template("console/funder_new.html", title=title, action=action, values=values, failed=failed or {},
                           typologies=TYPOLOGIES, categories=referentiel.CATEGORIES, points=points)  # fmt: skip


@bp.route("/commandes/nouvelle", methods=["GET", "POST"])
@funder_required
def new() -> Any:
    if not _is_admin():
        abort(404)
    action = url_for(".new")
    if request.method == "GET":
        return _form("Nouvelle commande", action, {"carnet_size": "10", "millesime": str(local_date(now()).year)})
    try:
        new_id = service.create_request(engine(), funder_id(), request.form, current_user.id, now(), ip=client_ip())
    except ServiceError as refusal:
        failed = {"message": refusal.message, "fields": refusal.fields}
        return _form("Nouvelle commande", action, request.form, failed), 400
    flash(f"Brouillon de commande {new_id} enregistré : vérifiez-le, puis soumettez-le.", "success")
    return redirect(url_for(".orders", _anchor=f"request-{new_id}"))


@bp.route("/demandes/<int:request_id>/modifier", methods=["GET", "POST"])
@funder_required
def edit(request_id: int) -> Any:
    """A draft changed (a submitted request is the operator's now: back to the list with a message)."""
    if not _is_admin():
        abort(404)
    title, action = f"Brouillon de commande {request_id}", url_for(".edit", request_id=request_id)
    if request.method == "GET":
        with engine().connect() as conn:
            found = next((r for r in service.requests(conn, funder_id()) if r.id == request_id), None)
        if found is None:
            abort(404)
        if found.status != "draft":
            flash("Seul un brouillon se modifie : cette commande a été soumise.", "error")
            return redirect(url_for(".orders", _anchor=f"request-{request_id}"))
        return _form(title, action, found.form_values)
    try:
        service.update_request(engine(), funder_id(), request_id, request.form, current_user.id, now(), ip=client_ip())
    except ServiceError as refusal:
        if refusal.status == 404:
            abort(404)
        if refusal.status == 409:
            flash(refusal.message, "error")
            return redirect(url_for(".orders", _anchor=f"request-{request_id}"))
        return _form(title, action, request.form, {"message": refusal.message, "fields": refusal.fields}), 400
    flash(f"Brouillon de commande {request_id} modifié.", "success")
    return redirect(url_for(".orders", _anchor=f"request-{request_id}"))


@bp.post("/demandes/<int:request_id>/retrait")
@funder_required
def withdraw(request_id: int) -> Any:
    if not _is_admin():
        abort(404)
    try:
        service.withdraw_request(engine(), funder_id(), request_id, current_user.id, now(), ip=client_ip())
    except ServiceError as refusal:
        if refusal.status == 404:
            abort(404)
        flash(refusal.message, "error")
        return redirect(url_for(".orders", _anchor=f"request-{request_id}"))
    flash(f"Commande {request_id} retirée.", "success")
    return redirect(url_for(".orders", _anchor=f"request-{request_id}"))


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


def _order_page(order_id: int, failed: dict[str, Any] | None = None) -> str:
    try:
        with engine().connect() as conn:
            found = service.report(conn, funder_id(), order_id, local_date(now()))
    except ServiceError:
        abort(404)
    return render_template("console/funder_order.html", title=f"Commande {order_id}", o=found,
                           is_admin=_is_admin(), failed=failed or {})  # fmt: skip


@bp.get("/commandes/<int:order_id>")
@funder_required
def order(order_id: int) -> Any:
    return _order_page(order_id)


@bp.post("/commandes/<int:order_id>/distribution")
@funder_required
def distribute(order_id: int) -> Any:
    """Carnets handed to a distributor: the « distribués » count of the order and of the end-of-validity alert."""
    if not _is_admin():
        abort(404)
    try:
        count = service.distribute(engine(), funder_id(), order_id, request.form, current_user.id, now(),
                                   ip=client_ip())  # fmt: skip
    except ServiceError as refusal:
        if refusal.status == 404:
            abort(404)
        failed = {"message": refusal.message, "fields": refusal.fields, "values": request.form}
        return _order_page(order_id, failed), 400
    flash(f"{count} carnet{'s' if count > 1 else ''} enregistré{'s' if count > 1 else ''} comme remis à "
          f"{' '.join(request.form.get('distributor', '').split())}.", "success")  # fmt: skip
    return redirect(url_for(".order", order_id=order_id, _anchor="distribution"))


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
