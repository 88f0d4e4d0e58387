"""Tableau de bord: the organisation's passes over twelve months, their funders, the national figures and a
map of the qualified places.

Charts (Chart.js) and the map (Leaflet) are drawn by ``static/dashboard.js`` from a JSON data island; every
chart has the table of its data beside it and the map the list of its places, so the page says everything
without scripts, to a screen reader, and with the map's tiles blocked. Tiles come from
``app.config["CONSOLE_TILES"]`` (env ``APTIC_CONSOLE_TILES``); empty, the markers stand on a plain background.

The national figures cost an index-only range over every organisation's scans of the last twelve months
(about 70 ms per million scans on SQLite, ``bench.console``): they are computed at most every
``CONSOLE_NATIONAL_TTL`` seconds (default 300) per process and shared by every page view in between. They are
a trend, not a statement.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, render_template

from central.console.access import engine, member_required, now, organisation_id
from central.services import dashboard
from central.services.common import month_of

bp = Blueprint("console_dashboard", __name__, url_prefix="/console")

NATIONAL_TTL = 300.0  # seconds; app.config["CONSOLE_NATIONAL_TTL"] overrides it (0: never cached)

LEVEL_NAMES = ["Niveau 1 — découvrir", "Niveau 2 — maîtriser", "Niveau 3 — augmenter son pouvoir d’agir"]


def _national(months: list[str]) -> dashboard.National:
    """The national figures, from this process's cache while fresh. The cache's age is operational (a monotonic
    clock), not business time, so it does not follow the app's injectable clock."""
    ttl = float(current_app.config.get("CONSOLE_NATIONAL_TTL", NATIONAL_TTL))
    cache: dict[str, Any] = current_app.extensions.setdefault("console_national", {})
    entry = cache.get("entry")
    if entry is None or entry[0] != months or time.monotonic() - entry[1] >= ttl:
        with engine().connect() as conn:
            entry = (months, time.monotonic(), dashboard.national(conn, months))
        cache["entry"] = entry
    return entry[2]


def _charts(org: dashboard.Organisation, nation: dashboard.National) -> list[dict[str, Any]]:
    """What each canvas draws, for the data island (the tables show the same numbers)."""
    rows = org.month_rows()
    labels = [r["label"] for r in rows]
    return [
        {"id": "chart-months", "type": "bar", "stacked": True, "labels": labels,
         "datasets": [{"label": name, "data": [r["levels"][i] for r in rows]} for i, name in enumerate(LEVEL_NAMES)]},
        {"id": "chart-services", "type": "bar", "horizontal": True,
         "labels": [f"{s['service']}. {s['title']}" for s in org.top_services()],
         "datasets": [{"label": "Pass acceptés", "data": [s["passes"] for s in org.top_services()]}]},
        {"id": "chart-funders", "type": "bar", "horizontal": True, "labels": [f["name"] for f in org.funders()],
         "datasets": [{"label": "Pass acceptés", "data": [f["passes"] for f in org.funders()]}]},
        {"id": "chart-national", "type": "bar", "labels": [r["label"] for r in nation.month_rows()],
         "datasets": [{"label": "Pass acceptés, toutes organisations",
                       "data": [r["passes"] for r in nation.month_rows()]}]},
    ]  # fmt: skip


@bp.get("/tableau-de-bord")
@member_required
def index() -> Any:
    months = dashboard.last_months(month_of(now()))
    with engine().connect() as conn:
        org = dashboard.organisation(conn, organisation_id(), months)
        places = dashboard.places(conn)
    nation = _national(months)
    island = {"charts": _charts(org, nation), "places": places, "tiles": current_app.config.get("CONSOLE_TILES", "")}
    return render_template("console/dashboard.html", title="Tableau de bord", org=org, nation=nation, places=places,
                           island=island, level_names=LEVEL_NAMES)  # fmt: skip
