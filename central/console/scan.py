"""Tester un pass and Scanner des pass (to be built: issue 13)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from central.console.access import member_required

bp = Blueprint("console_scan", __name__, url_prefix="/console")


@bp.get("/tester")
@member_required
def test_pass() -> Any:
    return render_template("console/page.html", title="Tester un pass")


@bp.get("/scanner")
@member_required
def scan() -> Any:
    return render_template("console/page.html", title="Scanner des pass")
