"""The offline snapshot: what a terminal needs to give provisional verdicts without the network.

Offline, a refusal must give the reason the central would give: a genuine pass of another territory is
"not valid here", never "never issued". So the snapshot holds:

* the terminal's organisation (with its catalogue) and points de présence;
* **every order of the country**, whatever its restrictions or millésime, each with its carnet *ranges*
  (one per order, not one row per pass) and its restrictions. A number outside every range is
  ``unknown_pass``;
* **every blocked carnet**: ``aptic.rules.judge`` checks ``blocked`` before the millésime and the
  restrictions, so the central answers ``blocked`` even where the order cannot apply (blocks are few);
* the used passes of the orders in force (this millésime and last) that can apply at one of the points at
  least. The country's would be millions; a used pass of any other order is refused offline for its
  restriction or its millésime instead of ``already_used``: a refusal still, for a true reason.

Measured with ``python -m bench snapshot`` (5,000 orders, 200,000 carnets): about 2 MB of JSON, about
115 kB gzipped (the API compresses the answer). Identical restriction sets are not factored out of the
JSON: gzip already takes most of that repetition (factoring saved 15 % of the gzipped size) and the
terminal shares them when it parses.

Incremental by cursor. The cursor is ``"<changes seq>.<pass_uses id>"``; ``since`` returns the orders,
blocks and uses recorded after it (after one new order: just that order). Organisation and points always
come whole (they are small); when one of them changed since the cursor the answer is a full snapshot
(``"full": true``) because the set of orders whose uses are sent may have changed; so is it when a carnet was
unblocked since the cursor (the terminal's blocked set only grows from incremental answers). Terminals upsert what
they get: orders by id, carnets and passes as sets.

On PostgreSQL, ids are handed out before commit, so a row with a smaller id can become visible after a
larger one was read. The new cursor therefore stops at rows older than ``SETTLE`` seconds; anything newer
is sent again next time (harmless, since terminals upsert).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from aptic.passnumber import carnet_id
from aptic.places import Place
from central import schema as t
from central.services.common import (
    ServiceError,
    local_date,
    organisation_dict,
    place_from_rows,
    point_dict,
    restrictions_from_row,
)

SETTLE = timedelta(seconds=10)
RESTRICTION_COLUMNS = ("territories", "territory_label", "place_types", "points", "services", "categories")


def parse_cursor(since: str | None) -> tuple[int, int]:
    if not since:
        return 0, 0
    left, dot, right = since.partition(".")
    if not dot or not left.isdigit() or not right.isdigit() or len(since) > 40:
        raise ServiceError(400, "invalid_cursor", "Curseur de synchronisation non valable.", {"since": "cursor"})
    return int(left), int(right)


def _order_dict(row: Any) -> dict[str, Any]:
    rules = restrictions_from_row(row)
    starts = row.starts_on
    return {
        "id": row.id,
        "commanditaire": row.commanditaire,
        "millesime": row.millesime,
        "value_cents": row.value_cents,
        "activated": bool(row.activated),
        "cancelled": row.cancelled_at is not None,
        "starts_on": starts.isoformat() if starts else None,
        "valid_until": f"{row.millesime}-12-31",
        "tolerance_until": f"{row.millesime + 1}-01-31",
        "restrictions": {
            "territories": sorted(rules.territories),
            "territory_label": rules.territory_label,
            "place_types": sorted(rules.place_types),
            "points": sorted(rules.points),
            "services": sorted(rules.services),
            "categories": sorted(rules.categories),
        },
        "carnets": [
            {
                "first": carnet_id(row.millesime, row.serial_first),
                "last": carnet_id(row.millesime, row.serial_last),
                "size": row.carnet_size,
            }
        ],
    }


def _settled_max(conn: Connection, column: Any, created: Any, current: int, now: datetime) -> int:
    query = select(func.max(column))
    if conn.dialect.name == "postgresql":
        query = query.where(created <= now - SETTLE)
    top = conn.execute(query).scalar_one_or_none()
    return max(current, int(top or 0))


def _applies_here(places: list[Place]) -> Callable[[Any], bool]:
    """Whether an order row's restrictions let its passes pay at one of ``places`` at least. Memoised on
    the restriction columns: thousands of orders share a few hundred sets of restrictions."""
    known: dict[tuple[str, str, str], bool] = {}

    def applies(row: Any) -> bool:
        key = (row.territories, row.place_types, row.points)
        if key not in known:
            rules = restrictions_from_row(row)
            known[key] = any(
                (not rules.territories or p.in_territory(rules.territories))
                and (not rules.place_types or p.typologies & rules.place_types)
                and (not rules.points or p.point_id in rules.points)
                for p in places
            )
        return known[key]

    return applies


def _unblocked(conn: Connection, carnets: set[str]) -> bool:
    """Whether one of these changed carnets is not blocked now: an unblock (rare), which an incremental answer
    cannot say (it only adds carnets to the terminal's blocked set)."""
    if not carnets:
        return False
    query = select(t.carnets.c.carnet).where(t.carnets.c.carnet.in_(sorted(carnets)), t.carnets.c.blocked_at.is_(None))
    return conn.execute(query.limit(1)).first() is not None


def snapshot(conn: Connection, organisation_id: int, since: str | None, now: datetime) -> dict[str, Any]:
    """The offline snapshot for a device of ``organisation_id``; see the module docstring."""
    seq, use_id = parse_cursor(since)
    org = conn.execute(select(t.organisations).where(t.organisations.c.id == organisation_id)).one()
    pts = conn.execute(
        select(t.points).where(t.points.c.organisation_id == organisation_id).order_by(t.points.c.id)
    ).all()
    places = [place_from_rows(p, org) for p in pts]

    full = not since
    if not full:
        changed = conn.execute(select(t.changes.c.kind, t.changes.c.ref).where(t.changes.c.seq > seq)).all()
        point_ids = {str(p.id) for p in pts}
        if any(
            (c.kind == "point" and c.ref in point_ids) or (c.kind == "organisation" and c.ref == str(organisation_id))
            for c in changed
        ):
            full = True
        elif _unblocked(conn, {c.ref for c in changed if c.kind == "carnet"}):
            full = True  # terminals only add to their blocked set: an unblock reaches them in a whole snapshot
    if full:
        seq = use_id = 0
        changed = []

    # Every order of the country, whatever its restrictions or millésime: offline, a pass of an order that
    # cannot apply here must be refused for that reason (territory, expired...), not as never issued.
    orders_query = (
        select(t.orders, t.commanditaires.c.name.label("commanditaire"))
        .join(t.commanditaires, t.commanditaires.c.id == t.orders.c.commanditaire_id)
        .order_by(t.orders.c.id)
    )
    if not full:
        orders_query = orders_query.where(t.orders.c.id.in_(sorted({int(c.ref) for c in changed if c.kind == "order"})))
    sent_orders = conn.execute(orders_query).all()

    # Blocked carnets of every order too: ``judge`` checks ``blocked`` before the millésime and the
    # restrictions, so the central answers ``blocked`` even where the order cannot apply. They are few.
    blocked_query = select(t.carnets.c.carnet).where(t.carnets.c.blocked_at.is_not(None))
    if not full:
        blocked_query = blocked_query.where(
            t.carnets.c.carnet.in_(sorted({c.ref for c in changed if c.kind == "carnet"}))
        )
    blocked = sorted(conn.execute(blocked_query).scalars())

    # Used passes only of orders in force that can apply here: the country's would be millions, and a used
    # pass of any other order is refused offline for its restriction or millésime, a true reason too.
    this_year = local_date(now).year
    applies = _applies_here(places)
    in_force = conn.execute(
        select(t.orders.c.id, *(t.orders.c[name] for name in RESTRICTION_COLUMNS)).where(
            t.orders.c.millesime >= this_year - 1
        )
    ).all()
    applicable = sorted(row.id for row in in_force if applies(row))
    uses = conn.execute(
        select(
            t.pass_uses.c.pass_number,
            t.pass_uses.c.service,
            t.pass_uses.c.organisation_id,
            t.pass_uses.c.local_date,
            t.points.c.name,
        )
        .join(t.carnets, t.carnets.c.carnet == t.pass_uses.c.carnet)
        .outerjoin(t.points, t.points.c.id == t.pass_uses.c.point_id)
        .where(t.pass_uses.c.id > use_id, t.carnets.c.order_id.in_(applicable))
        .order_by(t.pass_uses.c.id)
    ).all()

    new_seq = _settled_max(conn, t.changes.c.seq, t.changes.c.created_at, seq, now)
    new_use = _settled_max(conn, t.pass_uses.c.id, t.pass_uses.c.created_at, use_id, now)
    return {
        "cursor": f"{new_seq}.{new_use}",
        "full": full,
        "generated_at": now.isoformat(),
        "organisation": organisation_dict(org),
        "points_de_presence": [point_dict(p) for p in pts],
        "orders": [_order_dict(r) for r in sent_orders],
        "blocked_carnets": blocked,
        "used_passes": [
            {
                "pass_number": u.pass_number,
                "service": u.service,
                "organisation_id": u.organisation_id,
                "on": u.local_date.isoformat(),
                "place_name": u.name or "",
            }
            for u in uses
        ],
    }
