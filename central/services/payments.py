"""An organisation's counter-payments as its members see them: the months it is (or will be) paid for.

The statements themselves are :mod:`central.services.statements`' (computed live for an open month, frozen
when the month is closed). This module lists them:

* the **current month**, always, as *provisional*: scans keep arriving until it ends and is closed;
* past months that are **not closed yet** (the operator closes a month some days after it ends), also
  provisional, from one aggregate over the ``(organisation_id, payment_month)`` index;
* **closed months**, from the frozen documents in ``statements``, with their payment status (``paid_at``,
  set by the operator once the transfer left).

A month appears only if the organisation has something in it (or it is the current month), so a month of
another organisation's statement is not a page for this one (404 in the console).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select

from aptic.money import Totals, fee_cents
from central import schema as t
from central.db import utc
from central.services.common import ServiceError, local_date, month_of
from central.services.statements import MONTHS_FR, closed_month_set, month_label, statement, valid_month


def french_date(moment: datetime | str) -> str:
    """``2026-04-12T08:00:00+00:00`` → ``12 avril 2026`` (the day in Paris)."""
    day = local_date(datetime.fromisoformat(moment) if isinstance(moment, str) else moment)
    return f"{day.day}{'er' if day.day == 1 else ''} {MONTHS_FR[day.month - 1]} {day.year}"


@dataclass(frozen=True, slots=True)
class MonthSummary:
    """One row of the history: a month, its totals and where its payment stands."""

    month: str
    passes: int
    net_cents: int
    closed_at: datetime | None  # None: still open (provisional figures)
    paid_at: datetime | None

    @property
    def label(self) -> str:
        return month_label(self.month)

    @property
    def provisional(self) -> bool:
        return self.closed_at is None


def _totals(groups: list[tuple[int, int]]) -> Totals:
    """Totals from (face value, count) pairs: the fee is per pass, as in ``aptic.money.totals``."""
    result = Totals()
    for value, count in groups:
        fee = fee_cents(value)
        result = result + Totals(count, value * count, fee * count, (value - fee) * count)
    return result


def open_months_query(organisation_id: int, closed: set[str]) -> Select[Any]:
    """Accepted passes per (open month, face value) of an organisation: a range of the ``(organisation_id,
    payment_month)`` index (``payment_month`` is NULL on rejected scans); only the open months' rows are read."""
    s = t.scans.c
    query = (
        select(s.payment_month, s.value_cents, func.count())
        .where(s.organisation_id == organisation_id, s.payment_month.is_not(None))
        .group_by(s.payment_month, s.value_cents)
    )
    return query.where(s.payment_month.not_in(sorted(closed))) if closed else query


def months(conn: Connection, organisation_id: int, now: datetime) -> list[MonthSummary]:
    """The organisation's months, newest first: open ones (provisional) and closed ones (frozen)."""
    closed = closed_month_set(conn)
    frozen = {
        row.month: row
        for row in conn.execute(
            select(
                t.statements.c.month, t.statements.c.document, t.statements.c.closed_at, t.statements.c.paid_at
            ).where(t.statements.c.organisation_id == organisation_id)
        )
    }
    open_groups: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for month, value, count in conn.execute(open_months_query(organisation_id, closed)):
        open_groups[month].append((value, count))
    current = month_of(now)
    if current not in closed:
        open_groups.setdefault(current, [])
    out = [
        MonthSummary(month, totals.passes, totals.net_cents, None, None)
        for month, groups in open_groups.items()
        for totals in [_totals(groups)]
    ]
    out += [
        MonthSummary(
            month, int(row.document["passes"]), int(row.document["net_cents"]), utc(row.closed_at), utc(row.paid_at)
        )
        for month, row in frozen.items()
    ]
    return sorted(out, key=lambda m: m.month, reverse=True)


def month_statement(conn: Connection, organisation_id: int, month: str, now: datetime,
                    history: list[MonthSummary] | None = None) -> dict[str, Any]:  # fmt: skip
    """The statement of one of the organisation's months (see :func:`months`, or ``history`` when the caller
    has it already), with its payment status; 404 for a month that is not one of them."""
    if not valid_month(month):
        raise ServiceError(404, "unknown_month", "Ce relevé n’existe pas.")
    if history is None:
        history = months(conn, organisation_id, now)
    summary = next((m for m in history if m.month == month), None)
    if summary is None:
        raise ServiceError(404, "unknown_month", "Ce relevé n’existe pas.")
    document = statement(conn, organisation_id, month)
    document["provisional"] = summary.provisional
    document["paid_at"] = summary.paid_at.isoformat() if summary.paid_at else None
    document["label"] = summary.label
    return document
