"""Validity of a pass, with the central's authority: ``aptic.rules.judge`` over the database's state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from aptic.passnumber import Authenticator, PassNumberError, parse
from aptic.places import Place
from aptic.rules import judge
from central import schema as t
from central.services.common import ServiceError, local_date, place_from_rows
from central.services.passes import load_carnet_and_uses, order_for

_PLACES = (
    select(
        t.points.c.id,
        t.points.c.organisation_id,
        t.points.c.name,
        t.points.c.insee,
        t.points.c.typologies,
        t.organisations.c.qualified,
        t.organisations.c.catalogue,
    )
    .join(t.organisations, t.organisations.c.id == t.points.c.organisation_id)
    .where(t.points.c.organisation_id == bindparam("organisation"))
)
_PLACE = _PLACES.where(t.points.c.id == bindparam("point"))
_FIRST_PLACE = _PLACES.order_by(t.points.c.id).limit(1)


def load_place(conn: Connection, organisation_id: int, point_id: int | None) -> Place:
    """The point (with its organisation) a device speaks for; the first one when ``point_id`` is None."""
    if point_id is None:
        row = conn.execute(_FIRST_PLACE, {"organisation": organisation_id}).first()
    else:
        row = conn.execute(_PLACE, {"organisation": organisation_id, "point": point_id}).first()
    if row is None:
        raise ServiceError(
            404, "unknown_point", "Point de présence inconnu pour votre organisation.", {"point": "unknown"}
        )
    return place_from_rows(row, row)


def validity(
    conn: Connection,
    auth: Authenticator,
    organisation_id: int,
    text: str,
    service: int,
    point_id: int | None,
    now: datetime,
) -> dict[str, Any]:
    """The verdict for one pass, here and now, as the validity API returns it."""
    place = load_place(conn, organisation_id, point_id)
    try:
        number = parse(text)
    except PassNumberError:
        verdict = judge(text, order=None, place=place, service=service, today=local_date(now))
    else:
        facts, uses = load_carnet_and_uses(conn, number.carnet)
        order = order_for(number, facts, auth, now)
        verdict = judge(number, order=order, place=place, service=service, today=local_date(now), uses=uses)
    return {
        "valid": verdict.valid,
        "reason": verdict.reason.value,
        "message": verdict.message,
        "warnings": list(verdict.warnings),
        "pass": verdict.pass_info(),
    }
