"""Who is logged in, which organisation they act for, and the guards of the console's views.

* The session cookie holds ``"<user id>:<session version>"`` (Flask-Login's ``get_id``). Each request loads
  the user and their memberships afresh, and refuses the cookie when the version moved on (a password change,
  "log out everywhere") or the user was disabled: no server-side session table to keep in step.
* A user acts for one organisation at a time (``session["organisation"]``), one of their memberships.
  Every query of a view is filtered by :func:`organisation_id`; an object of another organisation is
  answered 404, never 403, so ids cannot be probed.
* :func:`member_required`, :func:`admin_required` and :func:`operator_required` guard views;
  :func:`recent_login_required` asks for the password again before sensitive changes (bank details, members,
  the operator's actions), at most every ``REAUTH_FOR``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import abort, current_app, flash, redirect, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user
from sqlalchemy import Engine

from central.services import accounts
from central.services.common import Clock

REAUTH_FOR = timedelta(minutes=10)

login_manager = LoginManager()
login_manager.login_view = "console_auth.login"
login_manager.login_message = "Connectez-vous pour accéder à cette page."
login_manager.login_message_category = "info"
login_manager.session_protection = "basic"

F = TypeVar("F", bound=Callable[..., Any])


class ConsoleUser(UserMixin):
    """The logged-in user, for Flask-Login and the templates."""

    def __init__(self, user: accounts.User) -> None:
        self.user = user

    def get_id(self) -> str:
        return f"{self.user.id}:{self.user.session_version}"

    @property
    def id(self) -> int:  # type: ignore[override]
        return self.user.id

    def __getattr__(self, name: str) -> Any:  # email, name, is_operator, memberships, role_in
        return getattr(self.user, name)


@login_manager.user_loader
def _load(cookie_id: str) -> ConsoleUser | None:
    try:
        user_id, version = (int(part) for part in cookie_id.split(":"))
    except ValueError:
        return None
    user = accounts.load_user(engine(), user_id)
    if user is None or user.session_version != version:
        return None
    return ConsoleUser(user)


def engine() -> Engine:
    return current_app.extensions["aptic_central"].engine


def now() -> datetime:
    clock: Clock = current_app.config["NOW"]
    return clock()


def client_ip() -> str:
    return request.remote_addr or "unknown"


def organisation_id() -> int:
    """The organisation the user acts for; 404 when they have none (an operator, or a removed member)."""
    chosen = session.get("organisation")
    memberships = current_user.memberships
    if chosen not in memberships:
        if not memberships:
            abort(404)
        chosen = min(memberships)
        session["organisation"] = chosen
    return int(chosen)


def role() -> str:
    return current_user.memberships[organisation_id()]


def member_required(view: F) -> F:
    """Logged in and a member (any role) of the organisation they act for."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        organisation_id()
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def admin_required(view: F) -> F:
    """Logged in and an admin of the organisation they act for (a plain member gets 404: the page does not
    exist for them)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if role() != "admin":
            abort(404)
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def operator_required(view: F) -> F:
    """Logged in and the scheme's operator (``users.is_operator``); anyone else gets 404: the operator's pages
    do not exist for them."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.is_operator:
            abort(404)
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def funder_id() -> int:
    """The commanditaire the user acts for (``session["funder"]``, one of their funder memberships, else the
    first); 404 when they have none."""
    if not current_user.is_authenticated or not current_user.funders:
        abort(404)
    chosen = session.get("funder")
    if chosen not in current_user.funders:
        chosen = min(current_user.funders)
        session["funder"] = chosen
    return int(chosen)


def funder_required(view: F) -> F:
    """Logged in and a user of a funder (any role); anyone else gets 404."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        funder_id()
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def home_url() -> str:
    """Where the login and ``/console/`` lead: the dashboard of one's organisation, or the operator's pages
    for an operator who acts for no place."""
    if current_user.is_authenticated and current_user.is_operator and not current_user.memberships:
        return url_for("console_operator.organisations")
    if current_user.is_authenticated and current_user.funders and not current_user.memberships:
        return url_for("console_funder_dashboard.index")
    return url_for("console_dashboard.index")


def mark_recent_login() -> None:
    session["reauth_at"] = now().timestamp()


def recent_login_required(view: F) -> F:
    """Ask for the password again unless it was typed within ``REAUTH_FOR`` (use inside the role guards)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        at = session.get("reauth_at", 0)
        if now().timestamp() - at > REAUTH_FOR.total_seconds():
            flash("Pour cette modification, confirmez d’abord votre mot de passe.", "info")
            return redirect(url_for("console_auth.confirm", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def safe_next(target: str | None, default: str) -> str:
    """A redirect target inside the console only (no open redirect through ``?next=``)."""
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return default
