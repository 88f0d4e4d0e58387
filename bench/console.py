"""Bench of the web console (issue 13): every page of a logged-in member against a scheme-sized database.

Setup (timed apart): SQLite, 100 organisations, 1,000 points of presence (9 in 10 with coordinates), five
funders and 1,000,000 scans spread over twelve months, the services and the funders (19 in 20 accepted),
bulk-inserted with ``executemany`` in one transaction; the ten oldest months are then closed with
``services.statements.close_month`` (the operator's ``close-month``: statements frozen), so the
counter-payments page shows a realistic history, and the last month is still open.

Then one member logs in once (Flask's test client, no HTTP server: what is timed is the app, its queries and
its templates) and each console page is rendered ``BENCH_CONSOLE_REQUESTS`` times: p50 and p99 per page
against the target p99 < 200 ms, and the ratio p99 / target. The dashboard is measured twice: as served
(national figures cached ``CONSOLE_NATIONAL_TTL`` seconds) and with that cache off (every view recomputes
them: the worst case, once per TTL in production).

Environment: ``BENCH_CONSOLE_SCANS`` (default 1,000,000), ``BENCH_CONSOLE_REQUESTS`` (default 100 per page).
"""

from __future__ import annotations

import os
import random
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask, url_for
from sqlalchemy import Engine, insert, update

from aptic import referentiel
from central import schema as t
from central.app import create_app
from central.config import Settings
from central.console.views import nav_items
from central.db import make_engine, migrate
from central.services import accounts, dashboard, statements

SECRET = b"bench-console-secret"
NOW = datetime(2026, 3, 20, 10, 0, tzinfo=UTC)
ORGANISATIONS = 100
POINTS = 1000
FUNDERS = ["Département de la Gironde", "Région Nouvelle-Aquitaine", "Ville de Bordeaux", "CAF de la Gironde",
           "État — France Services"]  # fmt: skip
P99_TARGET_MS = 200.0
PASSWORD = "Bench-console-2026!"
CHUNK = 50_000


def _n(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _populate(engine: Engine, scans: int, member: str) -> None:
    """The organisations, points, funders and scans, and ``member``, a member of the first organisation."""
    rng = random.Random(13)
    months = dashboard.last_months(NOW.strftime("%Y-%m"))
    services = sorted(referentiel.SERVICES)
    popular = services[:30]  # most passes go to a few services, as in the field
    with engine.begin() as conn:
        conn.execute(
            insert(t.commanditaires), [{"id": i + 1, "name": n, "created_at": NOW} for i, n in enumerate(FUNDERS)]
        )
        conn.execute(
            insert(t.organisations),
            [{"id": i + 1, "name": f"Organisation {i + 1}", "siret": f"{40_000_000_000_000 + i}",
              "qualified": i % 10 != 9, "created_at": NOW} for i in range(ORGANISATIONS)],
        )  # fmt: skip
        conn.execute(
            insert(t.points),
            [{"id": i + 1, "organisation_id": i % ORGANISATIONS + 1, "name": f"Point {i + 1}", "insee": "33063",
              "departement": "33", "typologies": "BIB", "created_at": NOW, "commune": "Bordeaux",
              "latitude": rng.uniform(42.5, 50.5) if i % 10 else None, "longitude": rng.uniform(-4.5, 7.5)}
             for i in range(POINTS)],
        )  # fmt: skip
        for start in range(0, scans, CHUNK):
            rows = []
            for i in range(start, min(start + CHUNK, scans)):
                org = rng.randrange(ORGANISATIONS) + 1
                month = months[rng.randrange(12)]
                when = datetime(int(month[:4]), int(month[5:]), rng.randrange(1, 28), 9 + rng.randrange(9), tzinfo=UTC)
                accepted = rng.random() < 0.95
                rows.append({
                    "id": f"bench-{i:09d}", "device_id": None, "user_id": None, "organisation_id": org,
                    "point_id": org + ORGANISATIONS * rng.randrange(POINTS // ORGANISATIONS),
                    "pass_number": f"1{i:017d}", "carnet": f"{i // 10:010d}", "order_id": None,
                    "commanditaire_id": rng.randrange(len(FUNDERS)) + 1, "value_cents": 1000,
                    "service": rng.choice(popular) if rng.random() < 0.8 else rng.choice(services),
                    "entry_id": None, "scanned_at": when, "clock_synced": True, "seq": i, "boot_id": None,
                    "received_at": when, "status": "accepted" if accepted else "rejected",
                    "reason": "ok" if accepted else "already_used", "message": "", "flags": "",
                    "service_month": month if accepted else None, "payment_month": month if accepted else None,
                })  # fmt: skip
            conn.execute(insert(t.scans), rows)
    accounts.create_user(engine, member, NOW, password=PASSWORD, organisation_id=1, role="member")


def _close(engine: Engine) -> None:
    """Close the ten oldest months (statements frozen) and mark all but the last two of them paid."""
    months = dashboard.last_months(NOW.strftime("%Y-%m"))[:10]
    for month in months:
        statements.close_month(engine, month, NOW)
    with engine.begin() as conn:
        conn.execute(
            update(t.statements).where(t.statements.c.month <= months[-3]).values(paid_at=NOW - timedelta(days=3))
        )


def _pages(app: Flask) -> list[tuple[str, str]]:
    month = dashboard.last_months(NOW.strftime("%Y-%m"))[-3]  # closed, unpaid
    with app.test_request_context():
        pages = [(label, url_for(endpoint)) for label, endpoint in nav_items()]
        pages += [
            ("Relevé d’un mois clos", url_for("console_payments.month", month=month)),
            ("Relevé CSV (tableur)", url_for("console_payments.download", month=month, name="releve-tableur.csv")),
            ("Relevé PDF", url_for("console_payments.download", month=month, name="releve.pdf")),
        ]
    return pages


def _measure(client: Any, url: str, requests: int) -> tuple[float, float, int]:
    client.get(url)  # warm: templates compiled, caches filled
    ms = []
    size = 0
    for _ in range(requests):
        started = time.perf_counter()
        r = client.get(url)
        ms.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, (url, r.status_code)
        size = len(r.data)
    ms.sort()
    return statistics.median(ms), ms[max(0, int(len(ms) * 0.99) - 1)], size


def main() -> None:
    scans, requests = _n("BENCH_CONSOLE_SCANS", 1_000_000), _n("BENCH_CONSOLE_REQUESTS", 100)
    kept = os.environ.get("BENCH_CONSOLE_DB")  # a database file kept between runs (profiling); made if missing
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        path = Path(kept) if kept else Path(tmp) / "central.db"
        url = f"sqlite:///{path}"
        fresh = not path.exists()
        started = time.perf_counter()
        engine = make_engine(url)
        migrate(engine)
        member = "membre@organisation-1.fr"
        if fresh:
            _populate(engine, scans, member)
            inserted = time.perf_counter() - started
            _close(engine)
            closing = time.perf_counter() - started - inserted
            print(f"setup: {ORGANISATIONS} organisations, {POINTS} points, {scans:,} scans inserted in"
                  f" {inserted:.1f} s; 10 months closed in {closing:.1f} s", flush=True)  # fmt: skip
        else:
            print(f"setup: reusing {path}", flush=True)
        app = create_app(Settings(Path(tmp), url, SECRET), now=lambda: NOW, engine=engine)
        client = app.test_client()
        _login(app, client, member)
        print(f"{'page':34s} {'p50':>9s} {'p99':>9s}  {'size':>8s}   ratio p99/target (< {P99_TARGET_MS:.0f} ms)")
        for label, path in _pages(app):
            _report(label, *_measure(client, path, requests))
        app.config["CONSOLE_NATIONAL_TTL"] = 0
        with app.test_request_context():
            path = url_for("console_dashboard.index")
        _report("Tableau de bord, sans cache national", *_measure(client, path, requests))
        engine.dispose()


def _login(app: Flask, client: Any, email: str) -> None:
    with app.test_request_context():
        path = url_for("console_auth.login")
    page = client.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    r = client.post(path, data={"csrf_token": token.group(1), "email": email, "password": PASSWORD})
    assert r.status_code == 302, r.get_data(as_text=True)


def _report(label: str, p50: float, p99: float, size: int) -> None:
    verdict = "ok" if p99 < P99_TARGET_MS else "MISSED"
    print(f"{label:34s} {p50:7.1f} ms {p99:7.1f} ms  {size / 1024:6.0f} kB   {p99 / P99_TARGET_MS:.2f} [{verdict}]",
          flush=True)  # fmt: skip
