"""Tableau de bord du financeur: what became of the funder's carnets across all its activated orders, which
orders end their validity within 30 days, and where, when and for what their passes were used.

The figures come from ``services.funder_dashboard`` (one grouped query each). Charts are drawn by the places'
``static/dashboard.js`` from the JSON data island ``#dashboard-data`` (no map on this page: it draws only the
charts); every chart has the table of its numbers beside it, so the page is complete without scripts and for
a screen reader.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from central.console.access import engine, funder_id, funder_required, now
from central.services import funder_dashboard as service
from central.services.common import local_date
from central.services.funders import funder_name

bp = Blueprint("console_funder_dashboard", __name__, url_prefix="/console/financeur")


def _charts(figures: service.Dashboard) -> list[dict[str, Any]]:
    """What each canvas draws (the tables beside them show the same numbers, in the same order)."""

    def bars(chart_id: str, rows: list[dict[str, Any]], *, horizontal: bool = False) -> dict[str, Any]:
        return {"id": chart_id, "type": "bar", "horizontal": horizontal, "fitLabels": horizontal,
                "labels": [r["label"] for r in rows],
                "datasets": [{"label": "Pass utilisés", "data": [r["passes"] for r in rows]}]}  # fmt: skip

    return [
        bars("chart-months", figures.months),
        bars("chart-places", figures.places, horizontal=True),
        bars("chart-categories", figures.categories, horizontal=True),
    ]


@bp.get("/tableau-de-bord")
@funder_required
def index() -> Any:
    today = local_date(now())
    with engine().connect() as conn:
        name = funder_name(conn, funder_id())
        figures = service.dashboard(conn, funder_id(), today)
    return render_template("console/funder_dashboard.html", title="Tableau de bord", funder=name, d=figures,
                           totals=figures.totals, alerts=figures.alerts,
                           island={"charts": _charts(figures)})  # fmt: skip
