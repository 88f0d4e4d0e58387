"""Logging in and out, password reset, invitations, the user's own account, and re-authentication.

Every refusal is one French sentence on the form; the same message for an unknown e-mail and a wrong
password, and the same page after "mot de passe oublié" whether the address exists or not, so the console
never tells who has an account.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from central.console import mail
from central.console.access import (
    ConsoleUser,
    client_ip,
    engine,
    home_url,
    mark_recent_login,
    now,
    safe_next,
)
from central.services import accounts
from central.services.common import ServiceError

bp = Blueprint("console_auth", __name__, url_prefix="/console", template_folder="templates")


def _home() -> str:
    return home_url()


@bp.route("/connexion", methods=["GET", "POST"])
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(_home())
    error = None
    status = 200
    email = request.form.get("email", "")
    if request.method == "POST":
        try:
            user = accounts.authenticate(engine(), email, request.form.get("password", ""), client_ip(), now())
        except ServiceError as refusal:
            error, status = refusal.message, refusal.status
        else:
            session.clear()  # a fresh session (and CSRF token) for the logged-in user: no fixation
            login_user(ConsoleUser(user))
            session.permanent = True
            mark_recent_login()
            return redirect(safe_next(request.args.get("next"), _home()))
    return render_template("console/login.html", error=error, email=email), status


@bp.post("/deconnexion")
def logout() -> Any:
    logout_user()
    session.clear()
    flash("Vous êtes déconnecté.", "info")
    return redirect(url_for("console_auth.login"))


@bp.route("/mot-de-passe/oubli", methods=["GET", "POST"])
def forgotten() -> Any:
    if request.method == "POST":
        email = request.form.get("email", "")
        token = accounts.new_link(engine(), "reset", email, now())
        if token is not None:
            link = url_for("console_auth.reset", token=token, _external=True)
            mail.send(
                accounts.normalise_email(email),
                "Console #APTIC : réinitialiser votre mot de passe",
                "Bonjour,\n\nPour choisir un nouveau mot de passe, ouvrez ce lien (valable une heure, une seule "
                f"fois) :\n{link}\n\nSi vous n’avez rien demandé, ignorez ce message.\n",
            )
        return render_template("console/forgotten_sent.html")
    return render_template("console/forgotten.html")


def _set_password_page(kind: str, token: str, template: str) -> Any:
    try:
        link = accounts.peek_link(engine(), kind, token, now())
    except ServiceError as refusal:
        return render_template("console/link_invalid.html", message=refusal.message), 404
    error = None
    if request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            error = "Les deux mots de passe ne sont pas identiques."
        else:
            try:
                user = accounts.use_link(engine(), kind, token, password, now(), name=request.form.get("name", ""))
            except ServiceError as refusal:
                if refusal.status == 404:
                    return render_template("console/link_invalid.html", message=refusal.message), 404
                error = refusal.message
            else:
                session.clear()
                login_user(ConsoleUser(user))
                session.permanent = True
                mark_recent_login()
                if link.organisation_id is not None:
                    session["organisation"] = link.organisation_id
                flash("Votre mot de passe est enregistré.", "success")
                return redirect(_home())
    return render_template(template, link=link, error=error), 400 if error else 200


@bp.route("/mot-de-passe/<token>", methods=["GET", "POST"])
def reset(token: str) -> Any:
    return _set_password_page("reset", token, "console/reset.html")


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def invitation(token: str) -> Any:
    return _set_password_page("invitation", token, "console/invitation.html")


@bp.route("/compte", methods=["GET", "POST"])
@login_required
def account() -> Any:
    error = None
    if request.method == "POST":
        if not accounts.check_password(engine(), current_user.id, request.form.get("current", "")):
            error = "Mot de passe actuel incorrect."
        elif request.form.get("password", "") != request.form.get("confirm", ""):
            error = "Les deux nouveaux mots de passe ne sont pas identiques."
        else:
            try:
                user = accounts.set_password(engine(), current_user.id, request.form["password"], now(),
                                             ip=client_ip())  # fmt: skip
            except ServiceError as refusal:
                error = refusal.message
            else:
                # This session goes on under the new version; every other one is over.
                organisation = session.get("organisation")
                login_user(ConsoleUser(user))
                session["organisation"] = organisation
                mark_recent_login()
                flash("Mot de passe changé. Vos autres sessions sont fermées.", "success")
                return redirect(url_for("console_auth.account"))
    return render_template("console/account.html", error=error), 400 if error else 200


@bp.post("/compte/deconnecter-partout")
@login_required
def logout_everywhere() -> Any:
    accounts.end_sessions(engine(), current_user.id, now())
    logout_user()
    session.clear()
    flash("Toutes vos sessions sont fermées.", "info")
    return redirect(url_for("console_auth.login"))


@bp.route("/confirmer", methods=["GET", "POST"])
@login_required
def confirm() -> Any:
    """Re-authentication: the password again before a sensitive change, then back where the user was."""
    error = None
    target = safe_next(request.args.get("next"), _home())
    if request.method == "POST":
        if accounts.check_password(engine(), current_user.id, request.form.get("password", "")):
            mark_recent_login()
            return redirect(target)
        error = "Mot de passe incorrect."
    return render_template("console/confirm.html", error=error), 400 if error else 200


@bp.post("/organisation/choisir")
@login_required
def choose_organisation() -> Any:
    try:
        chosen = int(request.form.get("organisation", ""))
    except ValueError:
        abort(400)
    if chosen not in current_user.memberships:
        abort(404)
    session["organisation"] = chosen
    return redirect(_home())
