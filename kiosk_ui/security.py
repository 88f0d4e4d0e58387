"""The kiosk page is served to one browser on the same machine, and nothing else may drive it.

Three locks, each against a different attack:

- waitress listens on 127.0.0.1 only: nothing on the network reaches the server;
- ``TRUSTED_HOSTS`` answers 400 to any other ``Host`` header: a web page elsewhere cannot use DNS rebinding
  to make the kiosk's browser talk to us under a foreign name;
- every state-changing request (POST) carries the page's CSRF token in an ``X-CSRF-Token`` header, as JSON.
  A cross-site form cannot set a custom header nor send ``application/json`` without a CORS preflight,
  which this server never grants; a request with a foreign ``Origin`` is refused too.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import Flask, abort, jsonify, request

TRUSTED_HOSTS = ["127.0.0.1", "localhost"]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def install(app: Flask) -> None:
    """Set the trusted hosts, make the CSRF token, and check it before every unsafe request."""
    # Flask's defaults hold TRUSTED_HOSTS = None (any host): setdefault would keep that.
    app.config["TRUSTED_HOSTS"] = app.config.get("TRUSTED_HOSTS") or TRUSTED_HOSTS
    app.config.setdefault("CSRF_TOKEN", secrets.token_urlsafe(32))

    @app.before_request
    def check_csrf() -> None:
        if request.method in SAFE_METHODS:
            return
        origin = request.headers.get("Origin")
        if origin and urlsplit(origin).hostname not in app.config["TRUSTED_HOSTS"]:
            abort(403, description="foreign origin")
        sent = request.headers.get("X-CSRF-Token", "")
        if not hmac.compare_digest(sent.encode(), app.config["CSRF_TOKEN"].encode()):
            abort(403, description="missing or wrong CSRF token")
        if not request.is_json:
            abort(415, description="JSON expected")

    @app.after_request
    def harden(response):  # type: ignore[no-untyped-def]
        # Everything the page needs is served from here: forbid the rest, and framing by others.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    for code in (400, 403, 404, 405, 415, 503):
        app.register_error_handler(code, _json_error)


def _json_error(error):  # type: ignore[no-untyped-def]
    response = jsonify(error=error.name, message=error.description)
    response.status_code = error.code
    return response
