"""Bench of the open data export (issue 14): the national file of 5,000 qualified places, CSV and JSON.

Setup (timed apart): SQLite, 500 qualified organisations (half with their own catalogue, every one with an
address and a phone) holding ``BENCH_OPEN_DATA_PLACES`` points de présence (default 5,000: about the
country's network of mediation places), bulk-inserted in one transaction, each point with its address, its
position, its hours and one or two typologies, and a change log of 10,000 entries for the points'
``date_maj``; 50 more organisations, not qualified, whose 500 points must not appear.

Measured: the whole export, rows read from the database and text written, as ``export-places`` does (the
service and its writers; the public URL streams the same chunks), median of 3 per format, with rows/s and
the file's size. Target: < 2 s per format for 5,000 places (the URL is cached five minutes by clients).
Then the URL itself through Flask's test client, once per format (the same work plus the response).
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert

from central import schema as t
from central.app import create_app
from central.config import Settings
from central.db import make_engine, migrate
from central.services import open_data

TARGET_SECONDS = 2.0
TYPOLOGIES = ["EPN", "BIB", "CCAS", "CS", "MUNI", "ASSO", "TIERS_LIEUX", "MDS", "FRANCE_SERVICE"]
CATALOGUES = [None, "2.2", "1-40,2.2", "2.1,3.5", "84-95,109-123"]


def _n(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _setup(engine: Engine, places: int, now: datetime) -> None:
    rng = random.Random(14)
    organisations = max(1, places // 10)
    with engine.begin() as conn:
        orgs = [
            {
                "id": i,
                "name": f"Structure {i}",
                "siret": f"{13002526500000 + i:014d}",
                "qualified": i <= organisations,
                "catalogue": CATALOGUES[i % len(CATALOGUES)],
                "created_at": now - timedelta(days=400),
                "address": f"{i} place de la Mairie",
                "postcode": f"{33000 + i % 900:05d}",
                "commune": f"Commune {i}",
                "phone": f"05 56 {i % 100:02d} {i % 97:02d} 00",
            }
            for i in range(1, organisations + organisations // 10 + 2)
        ]
        conn.execute(insert(t.organisations), orgs)
        points = []
        for p in range(1, places + places // 10 + 1):
            org = (p - 1) // 10 + 1
            points.append(
                {
                    "id": p,
                    "organisation_id": org,
                    "name": f"Lieu de médiation numérique n° {p}, « quartier {p % 37} »",
                    "insee": f"{33000 + p % 600:05d}",
                    "departement": "33",
                    "typologies": ",".join(rng.sample(TYPOLOGIES, rng.choice((1, 2)))),
                    "latitude": 44.0 + rng.random(),
                    "longitude": -1.0 + rng.random(),
                    "opening_hours": "Mo-Fr 09:00-12:00,14:00-18:00; Sa 10:00-12:00",
                    "created_at": now - timedelta(days=rng.randrange(400)),
                    "address": f"{p} rue des Écoles",
                    "postcode": f"{33000 + p % 900:05d}",
                    "commune": f"Commune {p % 600}",
                    "itinerant": p % 50 == 0,
                }
            )
        conn.execute(insert(t.points), points)
        changes = [
            {"kind": "point", "ref": str(rng.randrange(1, places)), "created_at": now - timedelta(hours=h)}
            for h in range(10_000)
        ]
        conn.execute(insert(t.changes), changes)


def _export(engine: Engine, fmt: str) -> tuple[float, int, int]:
    """One export as ``export-places`` makes it: (seconds, rows, bytes)."""
    started = time.perf_counter()
    size = 0
    with engine.connect() as conn:
        for chunk in open_data.WRITERS[fmt](open_data.places(conn)):
            size += len(chunk.encode("utf-8"))
    seconds = time.perf_counter() - started
    with engine.connect() as conn:
        rows = sum(1 for _ in open_data.places(conn))
    return seconds, rows, size


def main() -> None:
    places = _n("BENCH_OPEN_DATA_PLACES", 5_000)
    now = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="bench-open-data-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'central.db'}"
        engine = make_engine(url)
        migrate(engine)
        started = time.perf_counter()
        _setup(engine, places, now)
        print(f"setup: {places:,} qualified places (+{places // 10:,} unqualified) in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        for fmt in ("csv", "json"):
            runs = [_export(engine, fmt) for _ in range(3)]
            seconds = statistics.median(r[0] for r in runs)
            rows, size = runs[0][1], runs[0][2]
            verdict = "OK" if seconds < TARGET_SECONDS else "SLOW"
            print(
                f"export {fmt:4}: {rows:,} rows in {seconds * 1000:.0f} ms (median of 3), "
                f"{rows / seconds:,.0f} rows/s, {size / 1e6:.2f} MB; target < {TARGET_SECONDS:.0f} s: {verdict}"
            )
        client = create_app(Settings(Path(tmp), url, b"bench-secret"), now=lambda: now, engine=engine).test_client()
        for fmt in ("csv", "json"):
            started = time.perf_counter()
            response = client.get(f"/open-data/lieux-de-mediation-numerique.{fmt}")
            body = response.data
            seconds = time.perf_counter() - started
            print(f"GET .{fmt:4}: {response.status_code}, {len(body) / 1e6:.2f} MB in {seconds * 1000:.0f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
