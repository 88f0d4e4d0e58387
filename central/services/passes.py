"""Facts about passes, gathered from the database for ``aptic.rules.judge``.

A pass is *issued* iff its carnet exists, its position fits the carnet's size and its authenticator is the
one the secret key gives; otherwise ``order_for`` answers None and the rules say ``unknown_pass``, the same
for a forged number as for one never issued.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from aptic.passnumber import Authenticator, PassNumber, authentic
from aptic.rules import Order, PriorUse
from central import schema as t
from central.db import utc
from central.services.common import order_from_row


@dataclass(frozen=True, slots=True)
class CarnetFacts:
    """A carnet with its order and funder, as read from the database."""

    carnet: str
    size: int
    blocked_at: datetime | None
    order: Any  # the ``orders`` row
    order_id: int
    commanditaire_id: int
    commanditaire: str


_CARNETS = (
    select(
        t.carnets.c.carnet,
        t.carnets.c.size,
        t.carnets.c.blocked_at,
        t.orders,
        t.commanditaires.c.name.label("commanditaire"),
    )
    .join(t.orders, t.orders.c.id == t.carnets.c.order_id)
    .join(t.commanditaires, t.commanditaires.c.id == t.orders.c.commanditaire_id)
)
# Statements are built once: the validity endpoint runs them for every request (building is not free).
_USES = select(
    t.pass_uses.c.pass_number,
    t.pass_uses.c.carnet,
    t.pass_uses.c.service,
    t.pass_uses.c.organisation_id,
    t.pass_uses.c.local_date,
    t.points.c.name,
).outerjoin(t.points, t.points.c.id == t.pass_uses.c.point_id)
_ONE_CARNET_USES = _USES.where(t.pass_uses.c.carnet == bindparam("carnet"))


# A carnet with the accepted uses of its passes: one row per use, or one row with NULL use columns.
CARNET_AND_USES = (
    _CARNETS.add_columns(
        t.pass_uses.c.pass_number.label("use_pass"),
        t.pass_uses.c.service.label("use_service"),
        t.pass_uses.c.organisation_id.label("use_organisation"),
        t.pass_uses.c.local_date.label("use_date"),
        t.points.c.name.label("use_place"),
    )
    .outerjoin(t.pass_uses, t.pass_uses.c.carnet == t.carnets.c.carnet)
    .outerjoin(t.points, t.points.c.id == t.pass_uses.c.point_id)
    .where(t.carnets.c.carnet == bindparam("carnet"))
)


def carnet_facts(r: Any) -> CarnetFacts:
    """The facts of a row of ``_CARNETS`` (or of a statement that has its columns)."""
    return CarnetFacts(r.carnet, r.size, utc(r.blocked_at), r, r.id, r.commanditaire_id, r.commanditaire)


def load_carnets(conn: Connection, carnet_ids: Iterable[str]) -> dict[str, CarnetFacts]:
    ids = sorted(set(carnet_ids))
    if not ids:
        return {}
    return {r.carnet: carnet_facts(r) for r in conn.execute(_CARNETS.where(t.carnets.c.carnet.in_(ids)))}


def issued(number: PassNumber, facts: CarnetFacts | None, auth: Authenticator) -> bool:
    return facts is not None and number.position <= facts.size and authentic(number, auth)


def order_for(
    number: PassNumber,
    facts: CarnetFacts | None,
    auth: Authenticator,
    when: datetime,
    memo: dict[tuple[int, str, bool], Order] | None = None,
) -> Order | None:
    """The rules' view of the pass's order at ``when``: None if not issued; blocked or cancelled only if that
    happened at or before ``when`` (a scan made before the block still counts). ``memo`` shares the built
    ``Order`` objects across a batch."""
    if facts is None or not issued(number, facts, auth):
        return None
    blocked = facts.blocked_at is not None and facts.blocked_at <= when
    cancelled_at = utc(facts.order.cancelled_at)
    live = cancelled_at is not None and cancelled_at > when
    key = (facts.order_id, facts.carnet if blocked else "", live)
    if memo is not None and key in memo:
        return memo[key]
    order = order_from_row(facts.order, facts.commanditaire, frozenset({facts.carnet}) if blocked else frozenset())
    if live:
        order = replace(order, cancelled=False)
    if memo is not None:
        memo[key] = order
    return order


def withdrawn_after(facts: CarnetFacts, when: datetime) -> bool:
    """True when the carnet was blocked (or its order cancelled) after ``when``."""
    cancelled_at = utc(facts.order.cancelled_at)
    return (facts.blocked_at is not None and facts.blocked_at > when) or (
        cancelled_at is not None and cancelled_at > when
    )


def prior_uses(conn: Connection, carnet_ids: Iterable[str]) -> dict[str, list[PriorUse]]:
    """Accepted uses of any pass of these carnets, by carnet."""
    ids = sorted(set(carnet_ids))
    out: dict[str, list[PriorUse]] = defaultdict(list)
    if not ids:
        return out
    query = _ONE_CARNET_USES if len(ids) == 1 else _USES.where(t.pass_uses.c.carnet.in_(ids))
    for r in conn.execute(query, {"carnet": ids[0]}):
        out[r.carnet].append(PriorUse(r.pass_number, r.service, r.organisation_id, r.local_date, r.name or ""))
    return out
