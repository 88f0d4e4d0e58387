"""The organisation's pages: its details (admins edit, members read), its bank details (masked, changed after
re-authentication), the médiateur PIN of its kiosks, and its audit log. The members' pages are in
``console.members``, on the same blueprint.

The views are thin: ``services.organisation`` validates, writes and audits; a refusal re-renders the form
with status 400 and each field's French message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from central.console.access import (
    admin_required,
    client_ip,
    engine,
    member_required,
    now,
    organisation_id,
    recent_login_required,
    role,
)
from central.services import organisation as service
from central.services.common import PARIS, ServiceError

bp = Blueprint("console_organisation", __name__, url_prefix="/console")

JOURNAL_PAGE = 50

ROLE_LABELS = {"admin": "Administrateur", "member": "Membre"}

# The audit log's actions in French, for every journal of the console (the organisation's, the operator's).
ACTIONS = {
    "operator.qualified": "Organisation qualifiée par l’opérateur",
    "operator.refused": "Qualification refusée par l’opérateur",
    "operator.carnet_blocked": "Carnet bloqué",
    "operator.carnet_unblocked": "Carnet débloqué",
    "operator.order_activated": "Commande activée",
    "operator.carnets_printed": "Carnets d’une commande imprimés (PDF)",
    "operator.request_paid": "Paiement d’une demande de financeur enregistré",
    "operator.request_activated": "Demande de financeur activée",
    "operator.month_closed": "Mois clos",
    "operator.statement_paid": "Relevé payé",
    "operator.command": "Commande envoyée à une borne",
    "operator.setting": "Réglage du parc changé",
    "operator.code_reissued": "Code d’activation d’un kit renouvelé",
    "operator.rollout_pause": "Déploiement suspendu",
    "operator.rollout_resume": "Déploiement repris",
    "operator.rollout_widen": "Déploiement élargi",
    "organisation.details": "Coordonnées modifiées",
    "organisation.bank": "Coordonnées bancaires modifiées",
    "organisation.pin": "Code médiateur des bornes changé",
    "invitation.sent": "Invitation envoyée",
    "invitation.used": "Invitation acceptée",
    "member.role": "Rôle modifié",
    "member.removed": "Membre retiré",
    "user.created": "Compte créé",
    "funder.user_added": "Compte de financeur créé",
    "funder.request_created": "Demande de carnets créée (brouillon)",
    "funder.request_changed": "Brouillon de demande modifié",
    "funder.request_submitted": "Demande de carnets soumise",
    "funder.request_withdrawn": "Demande de carnets retirée",
    "funder.carnets_distributed": "Carnets remis à un distributeur",
}

DETAIL_LABELS = {
    "address": "adresse", "postcode": "code postal", "commune": "commune", "contact_email": "e-mail de contact",
    "phone": "téléphone", "iban": "IBAN", "bic": "BIC", "holder": "titulaire", "role": "rôle",
    "operator": "opérateur", "reason": "motif", "command": "commande", "statements": "relevés",
    "percent": "pourcentage", "status": "état", "id": "identifiant", "reference": "référence",
    "financeur": "financeur", "carnets": "carnets", "taille": "pass par carnet", "premier": "premier carnet",
    "dernier": "dernier carnet", "distributeur": "remis à", "setting": "réglage", "value": "valeur",
}  # fmt: skip


def paris(moment: datetime) -> str:
    """``10/03/2026 à 11 h 00`` in Paris time (the times of the console are French times)."""
    return moment.astimezone(PARIS).strftime("%d/%m/%Y à %H h %M")


def paris_date(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%d/%m/%Y")


def describe(details: dict[str, Any]) -> str:
    """An audit entry's details in a few French words: ``rôle : Administrateur ; BIC : AGRIFRPP``. A false
    flag says nothing and is left out."""
    parts = []
    for key, value in details.items():
        if value is False:
            continue
        if value is True:
            shown = "oui"
        elif key == "role":
            shown = ROLE_LABELS.get(value, value)
        else:
            shown = value if value not in ("", None) else "(vide)"
        parts.append(f"{DETAIL_LABELS.get(key, key)}\u00a0: {shown}")
    return "\u00a0; ".join(parts)


@bp.context_processor
def _helpers() -> dict[str, Any]:
    """For this blueprint's pages only: French times and role names."""
    return {"paris": paris, "paris_date": paris_date, "role_labels": ROLE_LABELS}


@bp.get("/organisation")
@member_required
def index() -> Any:
    return _details_page({}, {})


@bp.post("/organisation")
@admin_required
def save_details() -> Any:
    try:
        changed = service.update_details(engine(), organisation_id(), request.form, current_user.id, now(),
                                         ip=client_ip())  # fmt: skip
    except ServiceError as refusal:
        return _details_page(request.form, refusal.fields, refusal.message), refusal.status
    flash("Coordonnées enregistrées." if changed else "Aucune modification.", "success")
    return redirect(url_for(".index"))


def _details_page(form: Any, errors: dict[str, str], error: str | None = None) -> str:
    details = service.details(engine(), organisation_id())
    values = {name: form.get(name, details.value(name)) for name in service.DETAIL_FIELDS}
    return render_template("console/organisation.html", details=details, values=values, errors=errors, error=error,
                           is_admin=role() == "admin")  # fmt: skip


@bp.route("/organisation/banque", methods=["GET", "POST"])
@admin_required
@recent_login_required
def bank() -> Any:
    details = service.details(engine(), organisation_id())
    errors: dict[str, str] = {}
    error = None
    form = {"iban": "", "bic": details.bic, "holder": details.bank_holder or details.name}
    if request.method == "POST":
        form = {name: request.form.get(name, "") for name in ("iban", "bic", "holder")}
        try:
            masked = service.update_bank(engine(), organisation_id(), form["iban"], form["bic"], form["holder"],
                                         current_user.id, now(), ip=client_ip())  # fmt: skip
        except ServiceError as refusal:
            errors, error = refusal.fields, refusal.message
        else:
            flash(f"Coordonnées bancaires enregistrées (IBAN {masked}).", "success")
            return redirect(url_for(".index"))
    page = render_template("console/organisation_bank.html", details=details, form=form, errors=errors, error=error)
    return page, 400 if errors else 200


@bp.route("/organisation/code-mediateur", methods=["GET", "POST"])
@admin_required
@recent_login_required
def pin() -> Any:
    errors: dict[str, str] = {}
    if request.method == "POST":
        code, again = request.form.get("pin", "").strip(), request.form.get("confirm", "").strip()
        if code != again:
            errors["confirm"] = "Les deux codes ne sont pas identiques."
        else:
            try:
                service.set_pin(engine(), organisation_id(), code, current_user.id, now(), ip=client_ip())
            except ServiceError as refusal:
                errors["pin"] = refusal.message
            else:
                flash("Code médiateur enregistré : les bornes le recevront à leur prochaine synchronisation.",
                      "success")  # fmt: skip
                return redirect(url_for(".index"))
    details = service.details(engine(), organisation_id())
    page = render_template("console/organisation_pin.html", details=details, errors=errors)
    return page, 400 if errors else 200


@bp.get("/organisation/journal")
@admin_required
def journal() -> Any:
    try:
        page = max(int(request.args.get("page", "1")), 1)
    except ValueError:
        page = 1
    entries, total = service.journal(engine(), organisation_id(), page=page, per_page=JOURNAL_PAGE)
    pages = max((total + JOURNAL_PAGE - 1) // JOURNAL_PAGE, 1)
    return render_template("console/organisation_journal.html", entries=entries, total=total, page=page,
                           pages=pages, actions=ACTIONS, describe=describe)  # fmt: skip


from central.console import members as _members  # noqa: E402,F401  (its views live on this blueprint)
