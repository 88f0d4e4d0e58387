"""``/tuf/metadata/<file>`` and ``/tuf/targets/<file>``: the signed-release repository, served as files.

Nothing here needs trust: a terminal checks every file against the keys it already trusts
(``central/releases.py``). Files are sent with ``Range`` support, so a bundle cut off halfway on a bus's
4G link resumes where it stopped; the online keys in ``tuf/keys`` are never reachable from here.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, send_from_directory

bp = Blueprint("tuf", __name__, url_prefix="/tuf")


def _serve(kind: str, name: str) -> Response:
    directory = current_app.extensions["aptic_central"].settings.data_dir / "tuf" / kind
    # conditional=True: Range and If-Range, ETag, 206 Partial Content; max_age 0: metadata must be fresh.
    return send_from_directory(directory, name, conditional=True, max_age=0)


@bp.get("/metadata/<name>")
def metadata(name: str) -> Response:
    return _serve("metadata", name)


@bp.get("/targets/<name>")
def targets(name: str) -> Response:
    return _serve("targets", name)
