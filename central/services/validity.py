"""Validity of a pass, with the central's authority: ``aptic.rules.judge`` over the database's state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from aptic.passnumber import Authenticator, PassNumberError, parse
from aptic.rules import judge
from central import schema as t
from central.services.common import ServiceError, local_date, place_from_rows
from central.services.passes import load_carnets, order_for, prior_uses


def load_place(conn: Connection, organisation_id: int, point_id: int | None) -> Any:
    """The point (with its organisation) a device speaks for; the first one when ``point_id`` is None."""
    query = select(t.points).where(t.points.c.organisation_id == organisation_id)
    query = query.where(t.points.c.id == point_id) if point_id is not None else query.order_by(t.points.c.id)
    point = conn.execute(query.limit(1)).first()
    if point is None:
        raise ServiceError(
            404, "unknown_point", "Point de présence inconnu pour votre organisation.", {"point": "unknown"}
        )
    org = conn.execute(select(t.organisations).where(t.organisations.c.id == organisation_id)).one()
    return place_from_rows(point, org)


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
        facts = load_carnets(conn, [number.carnet]).get(number.carnet)
        order = order_for(number, facts, auth, now)
        uses = prior_uses(conn, [number.carnet]).get(number.carnet, []) if order is not None else []
        verdict = judge(number, order=order, place=place, service=service, today=local_date(now), uses=uses)
    return {
        "valid": verdict.valid,
        "reason": verdict.reason.value,
        "message": verdict.message,
        "warnings": list(verdict.warnings),
        "pass": verdict.pass_info(),
    }
