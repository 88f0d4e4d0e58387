"""``/open-data/lieux-de-mediation-numerique.csv`` and ``.json``: the qualified places, public, no login.

The national format is described in ``central/open_data/schema.json`` (LaMednum's standard-mediation-num);
the rows come from ``central.services.open_data``. The file is streamed as it is read from the database, so
the central holds one row at a time however many places there are. Anyone may fetch it, from any origin
(a map on another site, data.gouv.fr's harvester); caches may keep it a few minutes.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, abort, current_app
from sqlalchemy import Engine

from central.services import open_data

bp = Blueprint("open_data", __name__, url_prefix="/open-data")

BASENAME = "lieux-de-mediation-numerique"
MAX_AGE = 300  # seconds: a place edited in the console shows in the open data within five minutes
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json; charset=utf-8"}


def _stream(engine: Engine, fmt: str) -> Iterator[bytes]:
    # Runs after the view returned, outside the app context: it gets the engine rather than looking it up.
    # The connection stays open while the response is sent, and is closed when the generator ends.
    with engine.connect() as conn:
        for chunk in open_data.WRITERS[fmt](open_data.places(conn)):
            yield chunk.encode("utf-8")


@bp.get(f"/{BASENAME}.<fmt>")
def places(fmt: str) -> Response:
    if fmt not in MEDIA_TYPES:
        abort(404)
    engine = current_app.extensions["aptic_central"].engine
    response = Response(_stream(engine, fmt), headers={"Content-Type": MEDIA_TYPES[fmt]})
    response.headers["Content-Disposition"] = f'attachment; filename="{BASENAME}.{fmt}"'
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
