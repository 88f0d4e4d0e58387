"""Printing an order's carnets: gathering what ``central.carnets_pdf`` draws (``aptic-central print-carnets``).

:func:`letter` reads the order, its funder and the qualified places where its passes work (a 404
``ServiceError`` for an unknown order, before anything is written). :func:`write` then reads the order's
carnets **in chunks** of ``chunk`` carnets (keyset pagination on the serial, each chunk in its own short
read), computes each carnet's pass numbers with the central's authenticator and draws each chunk into a PDF
file of its own (a *part*, in a private temporary folder), which :func:`central.pdf_join.join` copies into the
output at once before the part is deleted. No more than a chunk of carnets and one part's pages are ever held,
whatever the order's size: about 4 MB of peak memory for 100 carnets or 5,000 (``bench/carnet_print.py``),
where reportlab alone, keeping every page of one document until it is saved, took 25 MB per 1,000 carnets.

Blocked carnets are left out (lost, stolen or withdrawn before printing: their passes would be refused) and
counted in the result; a cancelled order is refused (409), as none of its passes would work.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection, Engine, func, or_, select

from aptic import opening_hours
from aptic.passnumber import Authenticator, build
from aptic.rules import Restrictions, describe_restrictions
from central import schema as t
from central.carnets_pdf import CarnetSheet, CarnetsPdf, Letter, PlaceLine
from central.pdf_join import join
from central.services.common import ServiceError, order_from_row, split_codes

PLACES_LISTED = 30
CHUNK = 100  # carnets read at once, and drawn into one part (reportlab holds ~25 kB a page until it is saved)


def _hours(text: str | None) -> str:
    if not text:
        return ""
    try:
        return "Horaires : " + opening_hours.describe(text)
    except ValueError:  # stored before the console checked the syntax: printed as it is
        return f"Horaires : {text}"


def _place_line(row: Any) -> PlaceLine:
    name = f"{row.name} ({row.organisation})" if row.organisation != row.name else row.name
    if row.itinerant:
        stops = [s.get("place", "") for s in (row.stops or []) if isinstance(s, dict)]
        where = "Lieu itinérant" + (" : " + ", ".join(s for s in stops if s) if any(stops) else "")
        return PlaceLine(name, where, "")
    town = " ".join(p for p in (row.postcode, row.commune) if p) or f"commune {row.insee}"
    address = ", ".join(p for p in (row.address, town) if p)
    return PlaceLine(name, address, _hours(row.opening_hours))


def places(conn: Connection, rules: Restrictions, limit: int = PLACES_LISTED) -> tuple[list[PlaceLine], int]:
    """The first ``limit`` qualified places where passes under ``rules`` can be used, and how many there are.

    A place qualifies when its organisation is qualified #APTIC and it lies in the order's territory (a
    département or a commune), is of a kind the funder allows and, when the funder designated points, is one
    of them. Sorted by département, commune and name: a beneficiary looks for their own town.
    """
    query = (
        select(
            t.points.c.id,
            t.points.c.name,
            t.points.c.insee,
            t.points.c.departement,
            t.points.c.typologies,
            t.points.c.opening_hours,
            t.points.c.address,
            t.points.c.postcode,
            t.points.c.commune,
            t.points.c.itinerant,
            t.points.c.stops,
            t.organisations.c.name.label("organisation"),
        )
        .join(t.organisations, t.organisations.c.id == t.points.c.organisation_id)
        .where(t.organisations.c.qualified.is_(True))
        .order_by(t.points.c.departement, t.points.c.commune, t.points.c.name, t.points.c.id)
    )
    if rules.territories:
        query = query.where(
            or_(t.points.c.insee.in_(sorted(rules.territories)), t.points.c.departement.in_(sorted(rules.territories)))
        )
    if rules.points:
        query = query.where(t.points.c.id.in_(sorted(rules.points)))
    listed: list[PlaceLine] = []
    total = 0
    # Kinds of place are a comma-separated column: filtered here, rows streamed (a national list is long).
    for row in conn.execution_options(yield_per=500).execute(query):
        if rules.place_types and not rules.place_types & set(split_codes(row.typologies)):
            continue
        total += 1
        if len(listed) < limit:
            listed.append(_place_line(row))
    return listed, total


def letter(engine: Engine, order_id: int, today: date, limit: int = PLACES_LISTED) -> Letter:
    """What the letter and the passes say about order ``order_id``; ServiceError 404 if there is no such order,
    409 if it was cancelled."""
    with engine.connect() as conn:
        row = conn.execute(
            select(t.orders, t.commanditaires.c.name.label("funder"))
            .join(t.commanditaires, t.commanditaires.c.id == t.orders.c.commanditaire_id)
            .where(t.orders.c.id == order_id)
        ).first()
        if row is None:
            raise ServiceError(404, "unknown_order", f"Commande {order_id} inconnue.")
        if row.cancelled_at is not None:
            raise ServiceError(409, "order_cancelled", f"Commande {order_id} annulée : ses pass ne valent plus rien.")
        order = order_from_row(row, row.funder)
        printed = conn.execute(
            select(func.count()).where(t.carnets.c.order_id == order_id, t.carnets.c.blocked_at.is_(None))
        ).scalar_one()
        listed, total = places(conn, order.restrictions, limit)
    return Letter(
        order_id=order_id,
        funder=row.funder,
        millesime=order.millesime,
        value_cents=order.value_cents,
        carnet_size=row.carnet_size,
        carnets=int(printed),
        valid_from=order.valid_from,
        valid_until=order.valid_until,
        conditions=describe_restrictions(order)[1:],  # the first sentence is the validity, printed apart
        places=listed,
        places_total=total,
        printed_on=today,
    )


def chunks(engine: Engine, auth: Authenticator, order_id: int, chunk: int = CHUNK) -> Iterator[list[CarnetSheet]]:
    """The order's unblocked carnets in serial order, with their pass numbers, ``chunk`` carnets at a time (each
    chunk read in its own short transaction: a print never holds the database)."""
    after = -1
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(t.carnets.c.carnet, t.carnets.c.millesime, t.carnets.c.serial, t.carnets.c.size)
                .where(t.carnets.c.order_id == order_id, t.carnets.c.serial > after, t.carnets.c.blocked_at.is_(None))
                .order_by(t.carnets.c.serial)
                .limit(chunk)
            ).all()
        if rows:
            yield [
                CarnetSheet(r.carnet, [build(r.millesime, r.serial, p, auth) for p in range(1, r.size + 1)])
                for r in rows
            ]
        if len(rows) < chunk:
            return
        after = rows[-1].serial


def sheets(engine: Engine, auth: Authenticator, order_id: int, chunk: int = CHUNK) -> Iterator[CarnetSheet]:
    """The order's unblocked carnets in serial order, with their pass numbers, read ``chunk`` carnets at a time."""
    for part in chunks(engine, auth, order_id, chunk):
        yield from part


def write(engine: Engine, auth: Authenticator, info: Letter, out: BinaryIO, chunk: int = CHUNK) -> dict[str, Any]:
    """Draw the letter then every carnet of the order into ``out`` (any writable binary stream, seekable or
    not); return what was printed.

    The letter, then each chunk of ``chunk`` carnets, is drawn into a PDF file of its own (a *part*) in a
    private temporary folder (mode 0700, removed on return: the parts hold pass numbers too), and
    :func:`central.pdf_join.join` copies each part's pages to ``out`` as soon as the part is drawn, then the
    part is deleted. So memory holds one chunk's carnets and one part's pages, and the disk one part.
    """
    counts = {"carnets": 0, "passes": 0}

    def parts(folder: Path) -> Iterator[Path]:
        path = folder / "letter.pdf"
        with path.open("wb") as part:
            pdf = CarnetsPdf(part, info)
            pdf.letter()
            pdf.close()
        yield path
        for number, batch in enumerate(chunks(engine, auth, info.order_id, chunk), start=1):
            path.unlink()  # joined: join asks for the next part only when done with this one
            path = folder / f"carnets-{number:05d}.pdf"
            with path.open("wb") as part:
                pdf = CarnetsPdf(part, info)
                for sheet in batch:
                    pdf.carnet(sheet)
                    counts["carnets"] += 1
                    counts["passes"] += len(sheet.passes)
                pdf.close()
            yield path

    with tempfile.TemporaryDirectory(prefix="aptic-carnets-") as folder:
        pages = join(parts(Path(folder)), out)
    with engine.connect() as conn:
        blocked = conn.execute(
            select(func.count()).where(t.carnets.c.order_id == info.order_id, t.carnets.c.blocked_at.is_not(None))
        ).scalar_one()
    return {"order": info.order_id, **counts, "blocked": int(blocked), "pages": pages}
