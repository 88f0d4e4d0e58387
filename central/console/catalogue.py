"""Catalogue (to be built: issue 13)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from central.console.access import member_required

bp = Blueprint("console_catalogue", __name__, url_prefix="/console")


@bp.get("/catalogue")
@member_required
def index() -> Any:
    return render_template("console/page.html", title="Catalogue")
