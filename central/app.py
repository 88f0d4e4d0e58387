"""The Flask application factory of the central.

``create_app(settings)`` migrates nothing by itself (``aptic-central serve`` and ``init-db`` do); it opens
the engine, derives the pass authenticator from the secret key and mounts the API. Tests inject a clock
with ``now=``: every service takes the time from ``app.config["NOW"]``.
"""

from __future__ import annotations

from flask import Flask
from sqlalchemy import Engine

from aptic.passnumber import Authenticator, hmac_authenticator
from central import api, console, open_data_views, tuf_files
from central.config import Settings
from central.db import make_engine
from central.services.common import Clock, system_clock

MAX_BODY = 1024 * 1024  # a batch of 500 scans is about 150 kB


class Central:
    """What the views need: the engine, the authenticator and the settings."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.auth: Authenticator = hmac_authenticator(settings.secret)


def create_app(settings: Settings, *, now: Clock | None = None, engine: Engine | None = None) -> Flask:
    app = Flask("central")
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, NOW=now or system_clock, JSON_SORT_KEYS=False)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["aptic_central"] = Central(settings, engine or make_engine(settings.db_url))
    app.register_blueprint(api.bp)
    app.register_blueprint(tuf_files.bp)
    app.register_blueprint(open_data_views.bp)  # public, no login
    api.register_errors(app)
    console.init_app(app, settings.secret)
    return app
