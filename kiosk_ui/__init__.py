"""The kiosk: the local web page a Raspberry Pi shows on its touchscreen, served by waitress on 127.0.0.1.

``create_app(Kiosk(terminal, ...))`` makes the Flask app; ``serve(app)`` runs it. The page drives the
``Terminal`` object and listens to its event bus; it never touches evdev or the store's files itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, jsonify, render_template, request

from kiosk_ui import security
from kiosk_ui.api import api
from kiosk_ui.live import live
from kiosk_ui.mediateur import MediateurSession
from terminal.feedback import Feedback, NoFeedback
from terminal.terminal import Terminal

DEFAULTS: dict[str, Any] = {
    "MAX_STREAMS": 3,
    "MAX_POLLS": 2,
    "HEARTBEAT": 5.0,  # a closed tab frees its stream at the next heartbeat: keep it short on loopback
    "STREAM_SECONDS": 300.0,
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "MEDIATEUR_IDLE_SECONDS": 300.0,
}


@dataclass
class Kiosk:
    """What the page needs from the rest of the terminal, each part optional but the Terminal.

    ``scanners()`` lists the douchettes (from the scanner reader), ``sync_status()`` says whether the central
    answers (from the sync worker), ``activate(kit, code)`` activates the terminal (provisioning), and
    ``pin_hash()`` gives the médiateur PIN's hash (from the activation data).
    """

    terminal: Terminal
    feedback: Feedback | NoFeedback | None = None
    scanners: Callable[[], list[dict[str, Any]]] = list
    sync_status: Callable[[], dict[str, Any]] = dict
    activate: Callable[[str, str], Any] | None = None
    pin_hash: Callable[[], str | None] = lambda: None
    version: str = "dev"
    mediateur: MediateurSession = field(init=False)
    page_seen: float = field(default_factory=time.monotonic, init=False)  # the page's last request, or the start


def create_app(kiosk: Kiosk, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config.update(config)
    kiosk.mediateur = MediateurSession(kiosk.pin_hash, idle=app.config["MEDIATEUR_IDLE_SECONDS"])
    app.extensions["aptic.kiosk"] = kiosk
    app.extensions["aptic.bus"] = kiosk.terminal.bus
    app.extensions["aptic.stream_slots"] = threading.BoundedSemaphore(app.config["MAX_STREAMS"])
    app.extensions["aptic.poll_slots"] = threading.BoundedSemaphore(app.config["MAX_POLLS"])
    security.install(app)
    app.register_blueprint(live)
    app.register_blueprint(api)

    @app.get("/")
    def page():  # type: ignore[no-untyped-def]
        return render_template("index.html", csrf=app.config["CSRF_TOKEN"], version=kiosk.version)

    @app.before_request
    def note_the_page() -> None:
        # The page asks for the state at least every 30 s. The screen's watchdog (aptic-screen-watchdog in
        # systemd/) reads page_quiet_s from /healthz: a renderer that crashed or hung stops calling, and the
        # screen is restarted instead of leaving Chromium's error page up.
        if request.path != "/healthz":
            kiosk.page_seen = time.monotonic()

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        # Seconds since the page's last call, or since the kiosk started if it has not called yet.
        return jsonify(status="ok", page_quiet_s=round(time.monotonic() - kiosk.page_seen, 1))

    return app


def serve(app: Flask, host: str = "127.0.0.1", port: int = 8080, threads: int = 8) -> None:
    """Serve the kiosk with waitress: more threads than live streams, so the page always answers."""
    from waitress import serve as waitress_serve

    waitress_serve(app, listen=f"{host}:{port}", threads=threads, ident="aptic-kiosk")
