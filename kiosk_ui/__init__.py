"""The kiosk: the local web page a Raspberry Pi shows on its touchscreen, served by waitress on 127.0.0.1.

``create_app(bus)`` makes the Flask app; ``serve(app)`` runs it. The app reads live events from the
terminal's ``EventBus`` and never touches evdev or the store itself.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, jsonify

from kiosk_ui import security
from kiosk_ui.live import live
from terminal.events import EventBus

DEFAULTS: dict[str, Any] = {
    "MAX_STREAMS": 3,
    "HEARTBEAT": 15.0,
    "STREAM_SECONDS": 300.0,
    "MAX_CONTENT_LENGTH": 64 * 1024,
}


def create_app(bus: EventBus, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config.update(config)
    app.extensions["aptic.bus"] = bus
    app.extensions["aptic.stream_slots"] = threading.BoundedSemaphore(app.config["MAX_STREAMS"])
    security.install(app)
    app.register_blueprint(live)

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        return jsonify(status="ok")

    return app


def serve(app: Flask, host: str = "127.0.0.1", port: int = 8080, threads: int = 8) -> None:
    """Serve the kiosk with waitress: more threads than live streams, so the page always answers."""
    from waitress import serve as waitress_serve

    waitress_serve(app, listen=f"{host}:{port}", threads=threads, ident="aptic-kiosk")
