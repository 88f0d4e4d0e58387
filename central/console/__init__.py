"""The web console of the central: server-rendered pages under ``/console/`` for the members of mediation
places (issue 13), then funders and the operator.

``init_app(app)`` mounts it on the central's Flask app (same process as the API):

* sessions are Flask's signed cookie, with a key derived from the central's secret (never the secret
  itself); the cookie is ``HttpOnly``, ``SameSite=Lax``, and ``Secure`` unless the page is served over plain
  HTTP on the loopback (the demo, the tests);
* Flask-Login keeps who is logged in; the user's id in the cookie carries their session version, so a
  password change ends every other session (``console.access``);
* Flask-WTF's CSRF protection covers every form of the console, and only the console (the API authenticates
  terminals with a bearer token; the TUF files are public and read-only);
* every console response carries a strict Content-Security-Policy (no inline script or style, nothing from
  another origin except map tiles when a tile server is configured) and the usual hardening headers.

Each area of the console is a blueprint of its own module (``auth``, then the places' pages), sharing the
templates in ``templates/console`` and the static files in ``static/``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from datetime import timedelta

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from central.console import (
    access,
    auth,
    catalogue,
    dashboard,
    funder,
    funder_dashboard,
    operator,
    organisation,
    payments,
    points,
    scan,
    views,
)

csrf = CSRFProtect()

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
TILES_ENV = "APTIC_CONSOLE_TILES"  # e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png; unset: no tiles


class _Sessions(SecureCookieSessionInterface):
    """Secure cookies everywhere but on plain HTTP to the loopback (Chromium drops them there)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        host = request.host.rsplit(":", 1)[0] if request else ""
        return request.is_secure or host not in LOOPBACK_HOSTS


def init_app(app: Flask, secret: bytes) -> None:
    app.config.update(
        SECRET_KEY=hmac.new(secret, b"aptic console session v1", hashlib.sha256).hexdigest(),
        SESSION_COOKIE_NAME="aptic_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=10),  # a working day, then log in again
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session: a scan page stays open all day
        WTF_CSRF_SSL_STRICT=False,  # Referer checks break behind some proxies; the token is what protects
        WTF_CSRF_CHECK_DEFAULT=False,  # checked for the console's paths only (_check_csrf), never the API's
        CONSOLE_TILES=os.environ.get(TILES_ENV, ""),
    )
    app.session_interface = _Sessions()
    csrf.init_app(app)
    app.before_request(_check_csrf)
    access.login_manager.init_app(app)
    for area in (views, auth, dashboard, scan, payments, catalogue, points, organisation, operator, funder):
        app.register_blueprint(area.bp)
    app.register_blueprint(funder_dashboard.bp)
    views.register_errors(app)
    app.after_request(_headers)


def _check_csrf() -> None:
    """Every state-changing request to the console carries the session's CSRF token. The API is outside this
    on purpose: terminals authenticate with a bearer token, which a browser never sends by itself."""
    if request.path.startswith("/console") and request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()


def _headers(response: Response) -> Response:
    """A strict CSP on console pages; ``img-src`` admits the map's tile server when one is configured."""
    if not request.path.startswith("/console"):
        return response
    if request.path.startswith("/console/static/"):
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
    from flask import current_app

    tiles = current_app.config.get("CONSOLE_TILES", "")
    tile_origin = "/".join(tiles.split("/")[:3]).replace("{s}.", "*.") if tiles else ""
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: {tile_origin}".rstrip() + "; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response
