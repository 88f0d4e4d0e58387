"""Ingest of scans pushed by terminals: idempotent, race-proof, one result per scan.

A batch (up to 500 scans) is handled in one write transaction:

1. Scans whose id the central already has are *replays*: they get their first result back, nothing changes.
   The id alone is the key, for good and across devices (a terminal re-activated after a revocation can
   resend its queue). A "replay" with another pass number keeps the first result too, and is logged as a
   warning for the operator: it is a bug or a copied data directory, not a retry.
2. The others are judged in order by ``aptic.rules.judge`` against the database (plus the batch's own
   accepted scans, so two passes of one carnet in one batch obey the same-carnet rule).
3. Every new scan is stored (rejected ones too, for the audit trail); each accepted one also gets a row in
   ``pass_uses``, whose unique keys (pass number; carnet + service + organisation + local date) are the
   real guard against double spending. Inserts use ``ON CONFLICT DO NOTHING ... RETURNING``: if another
   transaction won a race (same pass from another device, same scan replayed in parallel), fewer rows come
   back, the transaction is rolled back and the batch is judged again against the now-committed state.
   PostgreSQL deadlocks between such racers are retried the same way.

Time. A scan's time is *implausible* when its clock was not synced, when it lies in the future (beyond a
few minutes of skew) or before its pass's millésime: it is then judged and paid by the receive time and
flagged. A scan made before its carnet was blocked is accepted and flagged; after, it is rejected.

Payment month: the month (Paris time) of the scan, or of its receipt when its time is implausible; if that
month is closed, the next open one (``services.statements``).

Who scanned: a terminal (``device_id``) or a member in the web console (``user_id``, device NULL): both go
through this same code, so the rules, the payment months and the race guard cannot drift apart. The console
passes ``then`` to write its audit entry in the batch's own transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from aptic.passnumber import Authenticator, PassNumber, PassNumberError, parse
from aptic.places import Place
from aptic.reasons import Flag
from aptic.rules import Order, PriorUse, judge
from central import schema as t
from central.db import insert_ignore_many, write_transaction
from central.services.common import local_date, month_of, place_from_rows
from central.services.passes import load_carnets, order_for, prior_uses, withdrawn_after
from central.services.statements import closed_month_set, payment_month

log = logging.getLogger(__name__)

MAX_BATCH = 500
FUTURE_SKEW = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # no pass existed before: an earlier time is a clock at fault
RETRIES = 8


@dataclass(frozen=True, slots=True)
class ScanIn:
    """One scan as the terminal sends it (already validated for shape by the API layer)."""

    id: str
    pass_number: str
    service: int
    point: int
    scanned_at: datetime
    clock_synced: bool
    seq: int
    entry_id: str | None = None
    boot_id: str | None = None


class _LostRace(Exception):
    """Another transaction committed a conflicting row first: judge the batch again."""


def _retryable(error: Exception) -> bool:
    """Deadlock or serialization failure, from SQLAlchemy (wrapped) or from the driver directly (the bulk
    inserts use the driver's cursor)."""
    code = getattr(error, "sqlstate", None) or getattr(getattr(error, "orig", None), "sqlstate", None)
    return code in {"40P01", "40001"}


AfterStore = Callable[[Connection, list[dict[str, Any]], int], None]
"""Called inside the batch's transaction once its scans are stored, with the results and how many scans were
new (0: a pure replay). Raising rolls the whole batch back."""


def ingest(
    engine: Engine,
    auth: Authenticator,
    device_id: int | None,
    organisation_id: int,
    scans: Sequence[ScanIn],
    now: datetime,
    *,
    user_id: int | None = None,
    then: AfterStore | None = None,
) -> list[dict[str, Any]]:
    """Judge and store a batch of scans; one result per scan, in order.

    ``device_id`` is the terminal that sent them, or None with the ``user_id`` of the console's member.
    """
    if (device_id is None) == (user_id is None):
        raise ValueError("a batch comes from a device or from a user, exactly one of them")
    for attempt in range(RETRIES):
        try:
            with write_transaction(engine) as conn:
                results, stored = _ingest(conn, auth, device_id, user_id, organisation_id, scans, now)
                if then is not None:
                    then(conn, results, stored)
                return results
        except _LostRace:
            log.info("ingest batch lost a race, judging again (attempt %d)", attempt + 1)
        except Exception as error:
            if not _retryable(error):
                raise
            log.info("ingest batch hit %s, retrying (attempt %d)", type(error).__name__, attempt + 1)
    raise RuntimeError("ingest could not settle a batch after repeated races")


def _result(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "status": row["status"],
        "reason": row["reason"],
        "message": row["message"],
        "flags": [f for f in row["flags"].split(",") if f],
        "payment_month": row["payment_month"],
    }


def _ingest(
    conn: Connection,
    auth: Authenticator,
    device_id: int | None,
    user_id: int | None,
    organisation_id: int,
    scans: Sequence[ScanIn],
    now: datetime,
) -> tuple[list[dict[str, Any]], int]:
    """The results, and how many scans were new."""
    if conn.dialect.name == "postgresql":
        # Shared with other ingests, exclusive with close-month: a month cannot close under our feet.
        conn.exec_driver_sql("LOCK TABLE closed_months IN SHARE MODE")
    ids = sorted({s.id for s in scans})
    known: dict[str, dict[str, Any]] = {}
    first_pass: dict[str, str] = {}  # what each known id was about, to notice a replay that is not one
    if ids:
        for r in conn.execute(
            select(
                t.scans.c.id,
                t.scans.c.pass_number,
                t.scans.c.status,
                t.scans.c.reason,
                t.scans.c.message,
                t.scans.c.flags,
                t.scans.c.payment_month,
            ).where(t.scans.c.id.in_(ids))
        ).mappings():
            known[r["id"]] = _result(r)
            first_pass[r["id"]] = r["pass_number"]

    numbers: dict[str, PassNumber | None] = {}
    for s in scans:
        try:
            numbers[s.id] = parse(s.pass_number)
        except PassNumberError:
            numbers[s.id] = None
    carnet_ids = [n.carnet for n in numbers.values() if n is not None]
    facts = load_carnets(conn, carnet_ids)
    uses = prior_uses(conn, carnet_ids)
    org = conn.execute(select(t.organisations).where(t.organisations.c.id == organisation_id)).one()
    places: dict[int, Place] = {
        p.id: place_from_rows(p, org)
        for p in conn.execute(select(t.points).where(t.points.c.organisation_id == organisation_id))
    }
    closed = closed_month_set(conn)

    results: list[dict[str, Any]] = []
    new_scans: list[dict[str, Any]] = []
    new_uses: list[dict[str, Any]] = []
    decided: dict[str, dict[str, Any]] = {}
    orders_memo: dict[tuple[int, str, bool], Order] = {}
    local_days: dict[datetime, tuple[date, str]] = {}
    for s in scans:
        if s.id in known or s.id in decided:  # a replay (or the same id twice in one batch): the first result
            if first_pass[s.id] != s.pass_number:
                # Not a replay but another scan under a used id: a terminal bug or a copied data directory.
                # The contract keeps the first result; the operator has to hear of it (no pass number logged).
                log.warning("scan id %s came again from %s with another pass number: first result kept",
                            s.id, f"device {device_id}" if device_id is not None else f"user {user_id}")  # fmt: skip
            results.append(known.get(s.id) or decided[s.id])
            continue
        first_pass[s.id] = s.pass_number
        number = numbers[s.id]
        flags: list[Flag] = []
        implausible = (
            not s.clock_synced
            or s.scanned_at > now + FUTURE_SKEW
            or s.scanned_at < EARLIEST  # also keeps dates near year 1 away from time zone arithmetic
            or (number is not None and local_date(s.scanned_at).year < number.millesime)
        )
        when = now if implausible else s.scanned_at
        if implausible:
            flags.append(Flag.IMPLAUSIBLE_TIME)
        if when not in local_days:  # scans of a batch often share their second: convert once
            local_days[when] = (local_date(when), month_of(when))
        today, month = local_days[when]
        place = places.get(s.point)
        carnet_facts = facts.get(number.carnet) if number is not None else None
        if place is None:
            status, reason, message = (
                "rejected",
                "place_not_qualified",
                "Point de présence inconnu de votre organisation.",
            )
            order = None
        else:
            order = order_for(number, carnet_facts, auth, when, orders_memo) if number is not None else None
            verdict = judge(
                number if number is not None else s.pass_number,
                order=order,
                place=place,
                service=s.service,
                today=today,
                uses=uses.get(number.carnet, []) if number is not None else [],
            )
            reason, message = verdict.reason.value, verdict.message
            status = "accepted" if verdict.valid else "rejected"
            if verdict.valid and carnet_facts is not None and withdrawn_after(carnet_facts, when):
                flags.append(Flag.WITHDRAWN_AFTER_SCAN)
        service_month = pay_month = None
        if status == "accepted":
            if flags:
                status = "flagged"
                message = " ".join([message, *(f.note for f in flags)])
            service_month = month
            pay_month = payment_month(service_month, closed)
            assert number is not None and carnet_facts is not None and place is not None
            uses[number.carnet].append(PriorUse(number.digits, s.service, organisation_id, today, place.name))
            new_uses.append(
                {
                    "pass_number": number.digits,
                    "scan_id": s.id,
                    "carnet": number.carnet,
                    "service": s.service,
                    "organisation_id": organisation_id,
                    "point_id": s.point,
                    "local_date": today,
                    "created_at": now,
                }
            )
        row = {
            "id": s.id,
            "device_id": device_id,
            "user_id": user_id,
            "organisation_id": organisation_id,
            "point_id": s.point,
            "pass_number": s.pass_number[:64],
            "carnet": number.carnet if number is not None else None,
            "order_id": carnet_facts.order_id if carnet_facts is not None and order is not None else None,
            "commanditaire_id": carnet_facts.commanditaire_id if carnet_facts is not None and order else None,
            "value_cents": order.value_cents if order is not None else None,
            "service": s.service,
            "entry_id": s.entry_id,
            "scanned_at": s.scanned_at,
            "clock_synced": s.clock_synced,
            "seq": s.seq,
            "boot_id": s.boot_id,
            "received_at": now,
            "status": status,
            "reason": reason,
            "message": message,
            "flags": ",".join(flags),
            "service_month": service_month,
            "payment_month": pay_month,
        }
        new_scans.append(row)
        decided[s.id] = {
            "id": s.id,
            "status": status,
            "reason": reason,
            "message": message,
            "flags": flags,
            "payment_month": pay_month,
        }
        results.append(decided[s.id])

    if insert_ignore_many(conn, t.scans, new_scans) != len(new_scans):
        raise _LostRace
    if insert_ignore_many(conn, t.pass_uses, new_uses) != len(new_uses):
        raise _LostRace
    return results, len(new_scans)
