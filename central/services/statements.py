"""Monthly counter-payment statements, and closing a month.

A place is paid monthly for the passes accepted in the month: face value minus the 4 % fee per pass
(``aptic.money``). ``close_month`` freezes a month: the statements of every organisation are computed
once and stored as served, and a scan arriving later for that month is paid in the next open month; the
statement that receives it says so (``carried_over`` and ``notes``).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from aptic import referentiel
from aptic.money import Totals, format_euros, totals
from central import schema as t
from central.db import dialect_insert, utc, write_transaction
from central.services.common import ServiceError, load_organisation, month_of

MONTHS_FR = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
             "novembre", "décembre"]  # fmt: skip


def valid_month(month: str) -> bool:
    if len(month) != 7 or month[4] != "-":
        return False
    year, mon = month[:4], month[5:]
    return year.isdigit() and mon.isdigit() and 2000 <= int(year) <= 2099 and 1 <= int(mon) <= 12


def next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def month_label(month: str) -> str:
    return f"{MONTHS_FR[int(month[5:]) - 1]} {month[:4]}"


def closed_month_set(conn: Connection) -> set[str]:
    return set(conn.execute(select(t.closed_months.c.month)).scalars())


def payment_month(service_month: str, closed: set[str]) -> str:
    """The month a scan is paid in: its own, or the first open month after it."""
    month = service_month
    while month in closed:
        month = next_month(month)
    return month


def _line(totals_: Totals) -> dict[str, int]:
    return totals_.as_dict()


def compute(conn: Connection, organisation_id: int, month: str) -> dict[str, Any]:
    """The statement of an organisation for a month, from the accepted scans paid in it."""
    org = load_organisation(conn, organisation_id)
    rows = conn.execute(
        select(
            t.scans.c.service,
            t.scans.c.value_cents,
            t.scans.c.service_month,
            t.scans.c.status,
            t.commanditaires.c.name.label("commanditaire"),
        )
        .join(t.commanditaires, t.commanditaires.c.id == t.scans.c.commanditaire_id)
        .where(
            t.scans.c.organisation_id == organisation_id,
            t.scans.c.payment_month == month,
            t.scans.c.status.in_(("accepted", "flagged")),
        )
    ).all()
    values: list[int] = []
    by_pair: dict[tuple[int, str], list[int]] = defaultdict(list)
    by_service: dict[int, list[int]] = defaultdict(list)
    by_funder: dict[str, list[int]] = defaultdict(list)
    carried: dict[str, list[int]] = defaultdict(list)
    flagged = 0
    for r in rows:
        values.append(r.value_cents)
        by_pair[(r.service, r.commanditaire)].append(r.value_cents)
        by_service[r.service].append(r.value_cents)
        by_funder[r.commanditaire].append(r.value_cents)
        if r.service_month != month:
            carried[r.service_month].append(r.value_cents)
        flagged += r.status == "flagged"

    def title(number: int) -> str:
        known = referentiel.SERVICES.get(number)
        return known.title if known else ""

    overall = totals(values)
    notes = []
    for source, vals in sorted(carried.items()):
        moved = totals(vals)
        notes.append(
            f"{moved.passes} pass scanné(s) en {month_label(source)}, mois déjà clos, payé(s) sur ce relevé "
            f"({format_euros(moved.net_cents)})."
        )
    return {
        "organisation": {"id": org.id, "name": org.name, "siret": org.siret},
        "month": month,
        "status": "open",
        "closed_at": None,
        **_line(overall),
        "flagged": flagged,
        "lines": [
            {"service": service, "title": title(service), "commanditaire": funder, **_line(totals(vals))}
            for (service, funder), vals in sorted(by_pair.items())
        ],
        "by_service": [
            {"service": service, "title": title(service), **_line(totals(vals))}
            for service, vals in sorted(by_service.items())
        ],
        "by_commanditaire": [
            {"commanditaire": funder, **_line(totals(vals))} for funder, vals in sorted(by_funder.items())
        ],
        "carried_over": [{"from_month": source, **_line(totals(vals))} for source, vals in sorted(carried.items())],
        "notes": notes,
    }


def statement(conn: Connection, organisation_id: int, month: str) -> dict[str, Any]:
    """The frozen statement if the month is closed, else the live one."""
    if not valid_month(month):
        raise ServiceError(400, "invalid_month", "Mois attendu au format AAAA-MM.", {"month": "YYYY-MM"})
    frozen = conn.execute(
        select(t.statements.c.document).where(
            t.statements.c.organisation_id == organisation_id, t.statements.c.month == month
        )
    ).scalar_one_or_none()
    if frozen is not None:
        return dict(frozen)
    document = compute(conn, organisation_id, month)
    closed_at = conn.execute(
        select(t.closed_months.c.closed_at).where(t.closed_months.c.month == month)
    ).scalar_one_or_none()
    if closed_at is not None:  # closed before this organisation had anything to be paid for
        document["status"] = "closed"
        document["closed_at"] = utc(closed_at).isoformat()
    return document


def close_month(engine: Engine, month: str, now: datetime) -> dict[str, Any]:
    """Freeze a month: store every organisation's statement for it; later scans go to the next open month."""
    if not valid_month(month):
        raise ServiceError(400, "invalid_month", "Mois attendu au format AAAA-MM.", {"month": "YYYY-MM"})
    if month > month_of(now):
        raise ServiceError(400, "month_not_over", f"Le mois {month} n'a pas encore commencé : il ne peut être clos.")
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE closed_months IN EXCLUSIVE MODE")  # waits for running ingests
        inserted = conn.execute(
            dialect_insert(conn, t.closed_months)
            .values(month=month, closed_at=now)
            .on_conflict_do_nothing()
            .returning(t.closed_months.c.month)
        ).first()
        if inserted is None:
            raise ServiceError(409, "month_closed", f"Le mois {month} est déjà clos.")
        org_ids = sorted(
            set(
                conn.execute(
                    select(t.scans.c.organisation_id).where(t.scans.c.payment_month == month).distinct()
                ).scalars()
            )
        )
        out = []
        for org_id in org_ids:
            document = compute(conn, org_id, month)
            document["status"] = "closed"
            document["closed_at"] = now.isoformat()
            conn.execute(
                t.statements.insert().values(organisation_id=org_id, month=month, document=document, closed_at=now)
            )
            out.append({"organisation": org_id, **{k: document[k] for k in ("passes", "net_cents")}})
    return {"month": month, "closed_at": now.isoformat(), "statements": out}
