"""The operator's pages (``/console/operateur/…``): organisations and their qualification, carnets to block or
unblock, orders to activate, months to close and statements to mark paid, the fleet, and the whole audit log.

Only users with ``users.is_operator`` see them (anyone else gets 404). Every action is a plain form with the
operator's reason, asks for the password again when the last one is older than ``access.REAUTH_FOR``, and is
audited with its reason by ``services.operator``. The confirmation step sends the browser back to the action's
URL with a GET: that answers with the action's page, where the operator submits again.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user

from central.console.access import client_ip, engine, now, operator_required, recent_login_required
from central.console.organisation import ACTIONS, describe, paris
from central.services import funders
from central.services import operator as service
from central.services.common import ServiceError
from central.services.payments import french_date

bp = Blueprint("console_operator", __name__, url_prefix="/console/operateur")

JOURNAL_PAGE = 50


def paris_iso(moment: str) -> str:
    """An ISO timestamp (as ``services.fleet`` gives them) in Paris time."""
    return paris(datetime.fromisoformat(moment))


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"paris": paris, "paris_iso": paris_iso, "french_date": french_date,
            "command_labels": service.COMMAND_LABELS, "status_labels": service.STATUS_LABELS}  # fmt: skip


def _who() -> dict[str, Any]:
    return {"by": current_user.id, "now": now(), "ip": client_ip()}


def _refused(page: Any, refusal: ServiceError, form: str) -> Any:
    """Re-render ``page`` with the refusal shown in the form ``form`` (its fields' messages next to them)."""
    failed = {"form": form, "message": refusal.message, "fields": refusal.fields, "values": request.form}
    status = refusal.status if refusal.status in (400, 404, 409) else 400
    return page(failed), status


@bp.get("/")
@operator_required
def index() -> Any:
    return redirect(url_for(".organisations"))


# --- Organisations ------------------------------------------------------------------------------------------


def _organisations_page(failed: dict[str, Any] | None = None) -> str:
    with engine().connect() as conn:
        rows = service.organisations(conn)
    return render_template("console/operator_organisations.html", title="Organisations", rows=rows,
                           failed=failed or {})  # fmt: skip


@bp.get("/organisations")
@operator_required
def organisations() -> Any:
    return _organisations_page()


@bp.route("/organisations/<int:organisation_id>/qualification", methods=["GET", "POST"])
@operator_required
@recent_login_required
def qualify(organisation_id: int) -> Any:
    if request.method == "GET":
        return redirect(url_for(".organisations", _anchor=f"org-{organisation_id}"))
    qualified = request.form.get("decision") == "qualify"
    try:
        name = service.set_qualification(engine(), organisation_id, qualified, request.form.get("reason", ""),
                                         **_who())  # fmt: skip
    except ServiceError as refusal:
        return _refused(_organisations_page, refusal, f"org-{organisation_id}")
    flash(f"{name} : {'qualifiée' if qualified else 'qualification refusée'}.", "success")
    return redirect(url_for(".organisations"))


# --- Carnets ------------------------------------------------------------------------------------------------


def _carnets_page(failed: dict[str, Any] | None = None, query: str | None = None) -> Any:
    query = request.args.get("carnet", "") if query is None else query
    found, error = None, None
    if query.strip():
        try:
            with engine().connect() as conn:
                found = service.find_carnet(conn, query)
        except ServiceError as refusal:
            error = refusal.message
    page = render_template("console/operator_carnets.html", title="Carnets", query=query, found=found, error=error,
                           failed=failed or {})  # fmt: skip
    return page, 400 if error else 200


@bp.get("/carnets")
@operator_required
def carnets() -> Any:
    return _carnets_page()


@bp.route("/carnets/<carnet>/blocage", methods=["GET", "POST"])
@operator_required
@recent_login_required
def block(carnet: str) -> Any:
    if request.method == "GET":
        return redirect(url_for(".carnets", carnet=carnet))
    blocked = request.form.get("action") == "block"
    try:
        found = service.set_blocked(engine(), carnet, blocked, request.form.get("reason", ""), **_who())
    except ServiceError as refusal:
        failed = {"form": "carnet", "message": refusal.message, "fields": refusal.fields, "values": request.form}
        return _carnets_page(failed, carnet)[0], refusal.status if refusal.status in (400, 404, 409) else 400
    flash(f"Carnet {found.carnet} {'bloqué' if blocked else 'débloqué'}.", "success")
    return redirect(url_for(".carnets", carnet=found.carnet))


# --- Orders -------------------------------------------------------------------------------------------------


def _orders_page(failed: dict[str, Any] | None = None) -> str:
    with engine().connect() as conn:
        rows = service.orders(conn)
        pending = [r for r in funders.requests(conn) if r.status in ("submitted", "paid")]
        names = funders.point_names(conn, {p for r in pending for p in r.points})
    return render_template("console/operator_orders.html", title="Commandes", rows=rows, submitted=pending,
                           failed=failed or {}, restrictions=funders.restrictions, point_names=names)  # fmt: skip


@bp.get("/commandes")
@operator_required
def orders() -> Any:
    return _orders_page()


@bp.route("/commandes/<int:order_id>/activation", methods=["GET", "POST"])
@operator_required
@recent_login_required
def activate(order_id: int) -> Any:
    if request.method == "GET":
        return redirect(url_for(".orders", _anchor=f"order-{order_id}"))
    try:
        service.activate_order(engine(), order_id, request.form.get("reason", ""), **_who())
    except ServiceError as refusal:
        return _refused(_orders_page, refusal, f"order-{order_id}")
    flash(f"Commande {order_id} activée : ses pass sont utilisables.", "success")
    return redirect(url_for(".orders"))


@bp.route("/commandes/<int:order_id>/carnets.pdf", methods=["GET", "POST"])
@operator_required
@recent_login_required
def print_carnets(order_id: int) -> Any:
    """The order's carnets to print (the lettre d'orientation first), as a PDF download; with a reason, audited."""
    if request.method == "GET":
        return redirect(url_for(".orders", _anchor=f"order-{order_id}"))
    # Written in parts, then sent: a big order is never held in memory; send_file closes it once sent.
    pdf = tempfile.TemporaryFile()  # noqa: SIM115
    try:
        service.print_order(engine(), current_app.extensions["aptic_central"].auth, order_id,
                            request.form.get("reason", ""), pdf, **_who())  # fmt: skip
    except ServiceError as refusal:
        pdf.close()
        return _refused(_orders_page, refusal, f"print-{order_id}")
    pdf.seek(0)
    return send_file(pdf, mimetype="application/pdf", as_attachment=True,
                     download_name=f"carnets-commande-{order_id}.pdf")  # fmt: skip


@bp.route("/demandes/<int:request_id>/paiement", methods=["GET", "POST"])
@operator_required
@recent_login_required
def request_paid(request_id: int) -> Any:
    """A funder's submitted request is paid: its reference (transfer, or a public buyer's mandat) is kept."""
    if request.method == "GET":
        return redirect(url_for(".orders", _anchor=f"request-{request_id}"))
    try:
        funders.record_payment(engine(), request_id, request.form.get("reference", ""), **_who())
    except ServiceError as refusal:
        return _refused(_orders_page, refusal, f"request-{request_id}")
    flash(f"Paiement de la demande {request_id} enregistré : vous pouvez l’activer.", "success")
    return redirect(url_for(".orders", _anchor=f"request-{request_id}"))


@bp.route("/demandes/<int:request_id>/activation", methods=["GET", "POST"])
@operator_required
@recent_login_required
def activate_request(request_id: int) -> Any:
    """A funder's paid request: issue its carnets, activated, with the restrictions it asked for."""
    if request.method == "GET":
        return redirect(url_for(".orders", _anchor=f"request-{request_id}"))
    secret = current_app.extensions["aptic_central"].settings.secret
    try:
        order_id = funders.activate_request(engine(), secret, request_id, request.form.get("reason", ""), **_who())
    except ServiceError as refusal:
        return _refused(_orders_page, refusal, f"request-{request_id}")
    flash(f"Demande {request_id} activée : commande {order_id} émise, ses pass sont utilisables.", "success")
    return redirect(url_for(".orders"))


# --- Statements ---------------------------------------------------------------------------------------------


def _statements_page(failed: dict[str, Any] | None = None) -> str:
    with engine().connect() as conn:
        rows = service.closed_statements(conn)
        months = service.closed_months(conn)
    return render_template("console/operator_statements.html", title="Relevés", rows=rows, months=months,
                           suggested=service.closable_month(now()), failed=failed or {})  # fmt: skip


@bp.get("/releves")
@operator_required
def statements() -> Any:
    return _statements_page()


@bp.route("/releves/cloture", methods=["GET", "POST"])
@operator_required
@recent_login_required
def close_month() -> Any:
    if request.method == "GET":
        return redirect(url_for(".statements"))
    month = request.form.get("month", "")
    try:
        result = service.close_month(engine(), month, request.form.get("reason", ""), **_who())
    except ServiceError as refusal:
        return _refused(_statements_page, refusal, "close")
    flash(f"Mois {result['month']} clos : {len(result['statements'])} relevé(s) figé(s).", "success")
    return redirect(url_for(".statements"))


@bp.route("/releves/<int:organisation_id>/<month>/paiement", methods=["GET", "POST"])
@operator_required
@recent_login_required
def mark_paid(organisation_id: int, month: str) -> Any:
    if request.method == "GET":
        return redirect(url_for(".statements"))
    try:
        service.mark_paid(engine(), organisation_id, month, request.form.get("reason", ""), **_who())
    except ServiceError as refusal:
        return _refused(_statements_page, refusal, f"paid-{organisation_id}-{month}")
    flash(f"Relevé {month} marqué payé.", "success")
    return redirect(url_for(".statements"))


# --- The fleet ----------------------------------------------------------------------------------------------


def _fleet_page(failed: dict[str, Any] | None = None, code: dict[str, str] | None = None) -> str:
    with engine().connect() as conn:
        devices = service.fleet_view(conn, now())
        levels = service.setting_levels(conn)
    return render_template("console/operator_fleet.html", title="Parc", devices=devices, levels=levels,
                           rollouts=service.rollouts(engine()), failed=failed or {}, code=code,
                           setting_labels=service.SETTING_LABELS, scope_labels=service.SCOPE_LABELS)  # fmt: skip


@bp.get("/parc")
@operator_required
def fleet() -> Any:
    return _fleet_page()


@bp.route("/parc/<int:device_id>/commande", methods=["GET", "POST"])
@operator_required
@recent_login_required
def command(device_id: int) -> Any:
    if request.method == "GET":
        return redirect(url_for(".fleet", _anchor=f"device-{device_id}"))
    kind = request.form.get("kind", "")
    try:
        service.send_command(engine(), device_id, kind, request.form.get("reason", ""), **_who())
    except ServiceError as refusal:
        return _refused(_fleet_page, refusal, f"device-{device_id}")
    flash(f"Commande « {service.COMMAND_LABELS.get(kind, kind)} » envoyée à la borne {device_id} : elle partira "
          "à sa prochaine synchronisation.", "success")  # fmt: skip
    return redirect(url_for(".fleet"))


@bp.route("/parc/reglages", methods=["GET", "POST"])
@operator_required
@recent_login_required
def setting() -> Any:
    """A fleet setting at one level (the whole fleet, an organisation, a device), or removed from it."""
    if request.method == "GET":
        return redirect(url_for(".fleet", _anchor="settings-title"))
    try:
        service.change_setting(engine(), request.form, **_who())
    except ServiceError as refusal:
        return _refused(_fleet_page, refusal, "settings")
    name = service.SETTING_LABELS.get(request.form.get("name", ""), "")
    flash(f"Réglage « {name} » enregistré : les bornes concernées l’appliqueront à leur prochaine lecture de leurs "
          "consignes.", "success")  # fmt: skip
    return redirect(url_for(".fleet", _anchor="settings-title"))


@bp.route("/parc/code", methods=["GET", "POST"])
@operator_required
@recent_login_required
def reissue() -> Any:
    if request.method == "GET":
        return redirect(url_for(".fleet"))
    try:
        result = service.reissue_code(engine(), request.form.get("kit", ""), request.form.get("reason", ""), **_who())
    except ServiceError as refusal:
        return _refused(_fleet_page, refusal, "reissue")
    return _fleet_page(code=result)  # shown once, on this answer only (never stored in clear, never logged)


@bp.route("/parc/deploiements/<int:rollout_id>", methods=["GET", "POST"])
@operator_required
@recent_login_required
def rollout(rollout_id: int) -> Any:
    if request.method == "GET":
        return redirect(url_for(".fleet", _anchor=f"rollout-{rollout_id}"))
    try:
        result = service.change_rollout(engine(), rollout_id, request.form.get("action", ""),
                                        request.form.get("reason", ""), percent=request.form.get("percent", ""),
                                        **_who())  # fmt: skip
    except ServiceError as refusal:
        return _refused(_fleet_page, refusal, f"rollout-{rollout_id}")
    state = "actif" if result["status"] == "active" else "suspendu"
    flash(f"Déploiement {rollout_id} ({result['version']}) : {result['percent']} % du parc, {state}.", "success")
    return redirect(url_for(".fleet"))


# --- The audit log ------------------------------------------------------------------------------------------


@bp.get("/journal")
@operator_required
def journal() -> Any:
    try:
        page = max(int(request.args.get("page", "1")), 1)
    except ValueError:
        page = 1
    with engine().connect() as conn:
        entries, total = service.journal(conn, page=page, per_page=JOURNAL_PAGE)
    pages = max((total + JOURNAL_PAGE - 1) // JOURNAL_PAGE, 1)
    return render_template("console/operator_journal.html", title="Journal", entries=entries, total=total, page=page,
                           pages=pages, actions=ACTIONS, describe=describe)  # fmt: skip
