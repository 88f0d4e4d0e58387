"""The members of an organisation (its admins only; a plain member gets 404): the list with the pending
invitations, inviting someone by e-mail with a role, changing a member's role, removing a member.

Every change asks for the password again when it was typed more than ten minutes ago (``recent_login_required``
on the form's GET and POST) and is audited by ``services.accounts``. An organisation keeps at least one admin.
A removed member loses access at their next request: the console loads memberships afresh each time.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from central.console import mail
from central.console.access import admin_required, engine, now, organisation_id, recent_login_required
from central.console.organisation import ROLE_LABELS, bp
from central.services import accounts
from central.services import organisation as service
from central.services.common import ServiceError


@bp.get("/organisation/membres")
@admin_required
def members() -> Any:
    org = organisation_id()
    return render_template("console/members.html", members=service.members(engine(), org),
                           invitations=service.pending_invitations(engine(), org, now()))  # fmt: skip


@bp.route("/organisation/membres/inviter", methods=["GET", "POST"])
@admin_required
@recent_login_required
def invite() -> Any:
    form = {"email": "", "role": "member"}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        form = {"email": request.form.get("email", ""), "role": request.form.get("role", "")}
        org = organisation_id()
        try:
            token = service.invite(engine(), org, form["email"], form["role"], current_user.id, now())
        except ServiceError as refusal:
            errors, status = refusal.fields, 400
        else:
            email = accounts.normalise_email(form["email"])
            _send_invitation(email, service.organisation_name(engine(), org), form["role"], token)
            flash(f"Invitation envoyée à {email}.", "success")
            return redirect(url_for(".members"))
    return render_template("console/members_invite.html", form=form, errors=errors), status


def _send_invitation(email: str, organisation: str, role: str, token: str) -> None:
    link = url_for("console_auth.invitation", token=token, _external=True)
    mail.send(
        email,
        f"Console #APTIC : invitation à rejoindre {organisation}",
        f"Bonjour,\n\n{current_user.name or current_user.email} vous invite à rejoindre « {organisation} » sur la "
        f"console du Pass numérique #APTIC, avec le rôle « {ROLE_LABELS[role]} ».\n\nPour créer votre accès, "
        f"ouvrez ce lien (valable sept jours, une seule fois) :\n{link}\n\n"
        "Si vous ne vous attendiez pas à cette invitation, ignorez ce message.\n",
    )


@bp.route("/organisation/membres/<int:user_id>", methods=["GET", "POST"])
@admin_required
@recent_login_required
def member(user_id: int) -> Any:
    org = organisation_id()
    try:
        person = service.member(engine(), org, user_id)
    except ServiceError:
        abort(404)
    error = None
    if request.method == "POST":
        removing = request.form.get("action") == "remove"
        new_role = None if removing else request.form.get("role", "")
        if not removing and new_role not in accounts.ROLES:
            abort(400)
        try:
            accounts.set_role(engine(), current_user.id, org, user_id, new_role, now())
        except ServiceError as refusal:
            if refusal.status == 404:
                abort(404)
            error = refusal.message
        else:
            if removing:
                flash(f"{person.email} ne fait plus partie de l’organisation.", "success")
            else:
                flash(f"{person.email} est maintenant {ROLE_LABELS[new_role].lower()}.", "success")  # type: ignore[index]
            if user_id == current_user.id and new_role != "admin":
                return redirect(url_for("console.home"))  # no longer an admin here: the members' page is gone
            return redirect(url_for(".members"))
    return render_template("console/members_edit.html", person=person, error=error), 409 if error else 200
