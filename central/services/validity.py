"""Validity of a pass, with the central's authority: ``aptic.rules.judge`` over the database's state.

This is the hot path a terminal calls at every online scan, so it asks the database once: one statement
authenticates the device, finds the point it speaks for and reads the carnet with the accepted uses of its
passes. Each round trip to PostgreSQL costs about as much as all the Python around it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select, true

from aptic.passnumber import Authenticator, PassNumberError, parse
from aptic.places import Place
from aptic.rules import PriorUse, judge
from central import schema as t
from central.services.activation import check_device, hash_secret
from central.services.common import ServiceError, catalogue_of, local_date, split_codes
from central.services.passes import CARNET_AND_USES, carnet_facts, order_for

_other_points = t.points.alias("other_points")
_first_point = (
    select(func.min(_other_points.c.id))
    .where(_other_points.c.organisation_id == t.devices.c.organisation_id)
    .scalar_subquery()
)
# The device holding the token, with its point (the one asked for, else its organisation's first): a device
# without such a point still comes back (NULL point columns), so "unknown device" and "unknown point" differ.
_DEVICE_AND_POINT = (
    select(
        t.devices.c.id.label("device_id"),
        t.devices.c.token_hash,
        t.devices.c.revoked_at,
        t.devices.c.organisation_id.label("device_organisation"),
        t.points.c.id.label("point_id"),
        t.points.c.name.label("point_name"),
        t.points.c.insee.label("point_insee"),
        t.points.c.typologies.label("point_typologies"),
        t.organisations.c.qualified.label("organisation_qualified"),
        t.organisations.c.catalogue.label("organisation_catalogue"),
    )
    .select_from(
        t.devices.outerjoin(
            t.points,
            and_(
                t.points.c.organisation_id == t.devices.c.organisation_id,
                t.points.c.id == func.coalesce(bindparam("point", type_=t.points.c.id.type), _first_point),
            ),
        ).outerjoin(t.organisations, t.organisations.c.id == t.points.c.organisation_id)
    )
    .where(t.devices.c.token_hash == bindparam("digest"))
    .subquery("asker")
)
_carnet = CARNET_AND_USES.subquery("carnet")
# One row per accepted use of the carnet's passes (at least one row when the carnet exists); the device and
# point columns repeat on each. No row at all: unknown token.
_HOT_PATH = select(_DEVICE_AND_POINT, _carnet).select_from(_DEVICE_AND_POINT.outerjoin(_carnet, true()))


def _place(row: Any) -> Place:
    return Place(
        point_id=row.point_id,
        organisation_id=row.device_organisation,
        name=row.point_name,
        insee=row.point_insee,
        typologies=frozenset(split_codes(row.point_typologies)),
        qualified=bool(row.organisation_qualified),
        catalogue=catalogue_of(row.organisation_catalogue),
    )


def validity(
    conn: Connection,
    auth: Authenticator,
    token: str,
    text: str,
    service: int,
    point_id: int | None,
    now: datetime,
) -> tuple[int, dict[str, Any]]:
    """The asking device's id and the verdict for one pass, here and now, as the validity API returns it.
    A 401 ServiceError for an unknown or revoked token, a 404 for a point not of the device's organisation.
    """
    try:
        number = parse(text)
    except PassNumberError:
        number = None  # judged below without an order: the verdict names the faulty part
    digest = hash_secret(token)
    rows = conn.execute(
        _HOT_PATH, {"digest": digest, "point": point_id, "carnet": number.carnet if number else ""}
    ).all()
    check_device(rows[0] if rows else None, digest)
    first = rows[0]
    if first.point_id is None:
        raise ServiceError(
            404, "unknown_point", "Point de présence inconnu pour votre organisation.", {"point": "unknown"}
        )
    place = _place(first)
    if number is None:
        verdict = judge(text, order=None, place=place, service=service, today=local_date(now))
    else:
        facts = carnet_facts(first) if first.carnet is not None else None
        uses = [
            PriorUse(r.use_pass, r.use_service, r.use_organisation, r.use_date, r.use_place or "")
            for r in rows
            if r.use_pass is not None
        ]
        order = order_for(number, facts, auth, now)
        verdict = judge(number, order=order, place=place, service=service, today=local_date(now), uses=uses)
    return first.device_id, {
        "valid": verdict.valid,
        "reason": verdict.reason.value,
        "message": verdict.message,
        "warnings": list(verdict.warnings),
        "pass": verdict.pass_info(),
    }
