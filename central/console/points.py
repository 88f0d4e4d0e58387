"""Points de présence: the organisation's places where passes are used.

Members see the list and each point; admins create and edit them (name, address, commune and its INSEE
code, position, opening hours in OpenStreetMap's syntax, typology, and a bus's stops). The checks and the
writes live in ``services.points``; a point of another organisation is 404, for reading as for editing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from aptic import opening_hours
from aptic.places import TYPOLOGIES
from central.console.access import admin_required, client_ip, engine, member_required, now, organisation_id, role
from central.services import points
from central.services.common import ServiceError

bp = Blueprint("console_points", __name__, url_prefix="/console")

EMPTY_STOP_ROWS = 3  # blank rows offered under the stops already recorded: more appear after each save
TEXT_FIELDS = ("name", "address", "postcode", "commune", "insee", "latitude", "longitude", "hours")


def _number(value: float | None) -> str:
    """A coordinate as a French user reads and types it: ``44,8378``."""
    return "" if value is None else repr(value).replace(".", ",")


def _form_of(values: points.PointValues | None) -> dict[str, Any]:
    """The form's fields (strings, as in the page) for a stored point, or empty ones for a new point."""
    if values is None:
        return {**dict.fromkeys(TEXT_FIELDS, ""), "typologies": [], "itinerant": False,
                "stops": [{"place": "", "insee": "", "hours": ""} for _ in range(EMPTY_STOP_ROWS)]}  # fmt: skip
    stops = [{"place": s.place, "insee": s.insee, "hours": s.hours} for s in values.stops]
    stops += [{"place": "", "insee": "", "hours": ""} for _ in range(EMPTY_STOP_ROWS)]
    return {
        "name": values.name, "address": values.address or "", "postcode": values.postcode or "",
        "commune": values.commune or "", "insee": values.insee, "latitude": _number(values.latitude),
        "longitude": _number(values.longitude), "hours": values.opening_hours or "",
        "typologies": list(values.typologies), "itinerant": values.itinerant, "stops": stops,
    }  # fmt: skip


def _form_from_request(form: Mapping[str, str], typologies: list[str]) -> dict[str, Any]:
    count = form.get("stop-rows", "")
    rows = min(int(count) if count.isdigit() else 0, points.MAX_STOPS + EMPTY_STOP_ROWS)
    stops = []
    for i in range(rows):
        if form.get(f"stop-{i}-remove"):
            stops.append({"place": "", "insee": "", "hours": ""})  # a removed stop is an empty row: ignored
        else:
            stops.append({k: form.get(f"stop-{i}-{k}", "") for k in ("place", "insee", "hours")})
    return {**{k: form.get(k, "") for k in TEXT_FIELDS}, "typologies": typologies,
            "itinerant": bool(form.get("itinerant")), "stops": stops}  # fmt: skip


def _check(data: dict[str, Any]) -> points.PointValues:
    return points.check(
        name=data["name"], insee=data["insee"], address=data["address"], postcode=data["postcode"],
        commune=data["commune"], latitude=data["latitude"], longitude=data["longitude"], hours=data["hours"],
        typologies=data["typologies"], itinerant=data["itinerant"], stops=data["stops"],
    )  # fmt: skip


def _typology_choices(current: list[str]) -> list[tuple[str, str]]:
    """(code, French label) of the typologies offered: the known ones, and any other the point already has."""
    known = [(code, label[0].upper() + label[1:]) for code, label in TYPOLOGIES.items()]
    return known + [(code, code) for code in current if code not in TYPOLOGIES]


def _form_page(data: dict[str, Any], point_id: int | None, errors: Mapping[str, str], message: str | None) -> str:
    return render_template(
        "console/point_form.html",
        data=data,
        point_id=point_id,
        errors=errors,
        message=message,
        typology_choices=_typology_choices(data["typologies"]),
        hours_example=opening_hours.EXAMPLE,
    )


@bp.app_template_filter("horaires")
def horaires(text: str | None) -> str:
    """Opening hours in plain French (``aptic.opening_hours.describe``); hours stored before the checks
    existed, which it cannot read, are shown as they are."""
    try:
        return opening_hours.describe(text or "")
    except ValueError:
        return text or ""


def _load(point_id: int) -> points.Point:
    with engine().connect() as conn:
        try:
            return points.get_point(conn, organisation_id(), point_id)
        except ServiceError:
            abort(404)


@bp.get("/points-de-presence")
@member_required
def index() -> Any:
    with engine().connect() as conn:
        found = points.list_points(conn, organisation_id())
    return render_template("console/points.html", points=found, editable=role() == "admin", typologies=TYPOLOGIES)


@bp.get("/points-de-presence/<int:point_id>")
@member_required
def show(point_id: int) -> Any:
    point = _load(point_id)
    return render_template("console/point.html", point=point, editable=role() == "admin", typologies=TYPOLOGIES)


@bp.route("/points-de-presence/nouveau", methods=["GET", "POST"])
@admin_required
def create() -> Any:
    if request.method == "GET":
        return _form_page(_form_of(None), None, {}, None)
    data = _form_from_request(request.form, request.form.getlist("typologies"))
    try:
        values = _check(data)
        new_id = points.create_point(engine(), organisation_id(), values, now(), user_id=current_user.id,
                                     ip=client_ip())  # fmt: skip
    except ServiceError as refusal:
        return _form_page(data, None, refusal.fields, refusal.message), refusal.status
    flash(f"Point de présence « {values.name} » créé.", "success")
    return redirect(url_for("console_points.show", point_id=new_id))


@bp.route("/points-de-presence/<int:point_id>/modifier", methods=["GET", "POST"])
@admin_required
def edit(point_id: int) -> Any:
    point = _load(point_id)
    if request.method == "GET":
        return _form_page(_form_of(point.values), point_id, {}, None)
    data = _form_from_request(request.form, request.form.getlist("typologies"))
    try:
        values = _check(data)
        changed = points.update_point(engine(), organisation_id(), point_id, values, now(), user_id=current_user.id,
                                      ip=client_ip())  # fmt: skip
    except ServiceError as refusal:
        return _form_page(data, point_id, refusal.fields, refusal.message), refusal.status
    flash("Point de présence enregistré." if changed else "Aucune modification.", "success")
    return redirect(url_for("console_points.show", point_id=point_id))
