"""Bench of the central (issue 4): ingest rate and validity latency, on SQLite and PostgreSQL.

* Ingest: scans/s through ``services.ingest`` in batches of 500 (all accepted: each pass once), beside the
  ceiling of raw inserts of the very same rows (``scans`` and ``pass_uses``) with the same driver
  (``sqlite3`` / ``psycopg`` ``executemany``, one transaction per batch of 500). Targets: >= 2,000 scans/s
  and >= 0.3 of the ceiling. Then the same end to end: batches POSTed to ``aptic-central serve``.
* Validity: ``GET /api/v1/passes/{n}/validity`` against ``aptic-central serve`` (a separate process),
  8 concurrent clients with keep-alive, one million issued passes (100,000 carnets of 10, inserted in
  bulk); median and p99. Target: p99 < 20 ms.

Environment: ``BENCH_CENTRAL_SCANS`` (default 20,000), ``BENCH_CENTRAL_PASSES`` (default 1,000,000),
``BENCH_CENTRAL_REQUESTS`` (default 4,000).
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import Engine, select

from aptic.passnumber import build, hmac_authenticator
from central import schema as t
from central.db import make_engine, migrate
from central.pgtemp import PostgresUnavailable, TempCluster, free_port
from central.services import activation, admin, ingest

SECRET = b"bench-secret"
# One serving process per core, and as many threads in all as there are clients.
WORKERS = int(os.environ.get("BENCH_CENTRAL_WORKERS", str(os.cpu_count() or 1)))
BATCH = 500
CLIENTS = 8
INGEST_TARGET = 2000
RATIO_TARGET = 0.3
P99_TARGET_MS = 20.0


def _n(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _setup(engine: Engine, now: datetime) -> tuple[int, int, int, str]:
    org = admin.add_organisation(engine, "Bench", "12345678901234", now)
    point = admin.add_point(engine, org, "Bench", "33063", ["BIB"], now)
    kit = admin.add_kit(engine, org, now)
    body = activation.activate(
        engine, kit["kit_number"], kit["activation_code"], {"serial": "b", "model": "b", "software_version": "0"}, now
    )
    return org, point, body["device_id"], body["token"]


class RawInserter:
    """Inserts given ``scans``/``pass_uses`` rows with the bare driver (``executemany``, plain ``INSERT``, one
    transaction per call) into a database of its own: the ceiling ingest is compared with."""

    def __init__(self, url: str, now: datetime) -> None:
        self.engine = make_engine(url)
        migrate(self.engine)
        _setup(self.engine, now)  # the organisation, point and device the rows refer to
        self.pg = self.engine.dialect.name == "postgresql"
        mark = "%s" if self.pg else "?"
        self.scan_cols = [c.name for c in t.scans.columns]
        self.use_cols = [c.name for c in t.pass_uses.columns if c.name != "id"]
        self.scan_sql = (
            f"INSERT INTO scans ({', '.join(self.scan_cols)}) VALUES ({', '.join([mark] * len(self.scan_cols))})"
        )
        self.use_sql = (
            f"INSERT INTO pass_uses ({', '.join(self.use_cols)}) VALUES ({', '.join([mark] * len(self.use_cols))})"
        )
        self.raw = self.engine.raw_connection()

    def _value(self, value: Any) -> Any:
        if not self.pg and isinstance(value, datetime):
            return value.replace(tzinfo=None).isoformat(sep=" ")
        if not self.pg and isinstance(value, date):
            return value.isoformat()
        return value

    def rows(self, scans: list[dict[str, Any]], uses: list[dict[str, Any]]) -> tuple[list[tuple], list[tuple]]:
        """Driver-ready tuples (prepared outside the timed part, as the driver would get them)."""
        return (
            [tuple(self._value(r[c]) for c in self.scan_cols) for r in scans],
            [tuple(self._value(r[c]) for c in self.use_cols) for r in uses],
        )

    def insert(self, scan_rows: list[tuple], use_rows: list[tuple]) -> float:
        started = time.perf_counter()
        cur = self.raw.cursor()
        if not self.pg:
            cur.execute("BEGIN IMMEDIATE")
        cur.executemany(self.scan_sql, scan_rows)
        if use_rows:
            cur.executemany(self.use_sql, use_rows)
        if self.pg:
            self.raw.commit()
        else:
            cur.execute("COMMIT")
        cur.close()
        return time.perf_counter() - started

    def close(self) -> None:
        self.raw.close()
        self.engine.dispose()


def _stored(engine: Engine, ids: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with engine.connect() as conn:
        scans = [dict(r) for r in conn.execute(select(t.scans).where(t.scans.c.id.in_(ids))).mappings()]
        uses = [dict(r) for r in conn.execute(select(t.pass_uses).where(t.pass_uses.c.scan_id.in_(ids))).mappings()]
    for row in scans + uses:
        for key, value in row.items():
            if isinstance(value, datetime) and value.tzinfo is None:
                row[key] = value.replace(tzinfo=UTC)
    return scans, uses


def _open(url: str, now: datetime) -> tuple[Engine, tuple[int, int, int, str]]:
    """The database at ``url``, migrated, with the bench's organisation, point, device and token."""
    engine = make_engine(url)
    migrate(engine)
    return engine, _setup(engine, now)


def _issue(engine: Engine, now: datetime, carnets: int) -> int:
    """Issue ``carnets`` carnets of 10 for this millésime (ranges, no pass rows); the first carnet's serial."""
    order = admin.issue_carnets(
        engine, SECRET, now, commanditaire="CD", millesime=now.year, carnets=carnets, size=10, with_passes=False
    )
    return int(order["carnets"][0][3:])


def bench_ingest(label: str, url: str, url_raw: str, count: int) -> None:
    """Each batch is ingested, then its stored rows are raw-inserted elsewhere right after, so both
    figures see the same machine load (this machine may be busy with other work)."""
    now = datetime.now(UTC)
    year = now.year
    engine, (org, point, device, _) = _open(url, now)
    carnets = (count + 9) // 10
    first = _issue(engine, now, carnets)
    auth = hmac_authenticator(SECRET)
    scans = [
        ingest.ScanIn(str(uuid.uuid4()), build(year, serial, position, auth), position, point, now, True, i)
        for i, (serial, position) in enumerate(
            (serial, position) for serial in range(first, first + carnets) for position in range(1, 11)
        )
    ][:count]
    raw = RawInserter(url_raw, now)
    ingest_time = raw_time = 0.0
    accepted = 0
    for i in range(0, len(scans), BATCH):
        batch = scans[i : i + BATCH]
        started = time.perf_counter()
        results = ingest.ingest(engine, auth, device, org, batch, now)
        ingest_time += time.perf_counter() - started
        accepted += sum(r["status"] == "accepted" for r in results)
        raw_time += raw.insert(*raw.rows(*_stored(engine, [s.id for s in batch])))
    raw.close()
    engine.dispose()
    rate, ceiling = len(scans) / ingest_time, len(scans) / raw_time
    ratio = rate / ceiling
    print(
        f"ingest {label:10s} {rate:8.0f} scans/s ({accepted}/{len(scans)} accepted)   raw ceiling {ceiling:8.0f}"
        f" scans/s   ratio {ratio:.2f}   targets >= {INGEST_TARGET} [{'ok' if rate >= INGEST_TARGET else 'MISSED'}],"
        f" >= {RATIO_TARGET} [{'ok' if ratio >= RATIO_TARGET else 'MISSED'}]",
        flush=True,
    )


def _serve(url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``aptic-central serve`` in its own process, once it answers ``/health``."""
    port = free_port()
    env = {**os.environ, "APTIC_CENTRAL_SECRET": SECRET.decode()}
    server = subprocess.Popen(
        [sys.executable, "-m", "central.cli", "serve", "--db", url, "--data-dir", str(data_dir), "--port", str(port),
         "--threads", os.environ.get("BENCH_CENTRAL_THREADS", str(max(1, CLIENTS // WORKERS))),
         "--workers", str(WORKERS)],
        env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
            return server, port
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                server.terminate()
                raise
            time.sleep(0.1)


def bench_ingest_http(label: str, url: str, data_dir: Path, count: int) -> None:
    """The same ingest, end to end: one client POSTs batches of 500 to ``aptic-central serve``."""
    now = datetime.now(UTC)
    year = now.year
    engine, (_, point, _, token) = _open(url, now)
    carnets = (count + 9) // 10
    first = _issue(engine, now, carnets)
    engine.dispose()
    auth = hmac_authenticator(SECRET)
    stamp = now.isoformat()
    scans = [
        {"id": str(uuid.uuid4()), "pass_number": build(year, serial, position, auth), "service": position,
         "point": point, "entry_id": None, "scanned_at": stamp, "clock_synced": True, "seq": serial * 10 + position}
        for serial in range(first, first + carnets)
        for position in range(1, 11)
    ][:count]  # fmt: skip
    bodies = [json.dumps({"scans": scans[i : i + BATCH]}) for i in range(0, len(scans), BATCH)]
    server, port = _serve(url, data_dir)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        accepted = 0
        started = time.perf_counter()
        for body in bodies:
            conn.request("POST", "/api/v1/scans", body=body, headers=headers)
            response = conn.getresponse()
            answer = json.loads(response.read())
            accepted += sum(r["status"] == "accepted" for r in answer["results"])
        rate = len(scans) / (time.perf_counter() - started)
        conn.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(
        f"ingest {label:10s} {rate:8.0f} scans/s over HTTP ({accepted}/{len(scans)} accepted, JSON and validation"
        f" included)   target >= {INGEST_TARGET} [{'ok' if rate >= INGEST_TARGET else 'MISSED'}]",
        flush=True,
    )


def _timed_client(port: int, token: str, point: int, numbers: list[str]) -> list[float]:
    """One client asking the validity of ``numbers`` one after the other; returns each answer's delay."""
    # http.client keeps the clients' own CPU small: they share this machine with the server.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"}
    delays = []
    for n in numbers:
        t0 = time.perf_counter()
        conn.request("GET", f"/api/v1/passes/{n}/validity?service=1&point={point}", headers=headers)
        response = conn.getresponse()
        body = response.read()
        delays.append(time.perf_counter() - t0)
        assert response.status == 200 and b'"valid":true' in body, body
    conn.close()
    return delays


def bench_validity(label: str, url: str, data_dir: Path, passes: int, requests_total: int) -> None:
    now = datetime.now(UTC)
    year = now.year
    engine, (_, point, _, token) = _open(url, now)
    started = time.perf_counter()
    carnets = passes // 10
    first = _issue(engine, now, carnets)
    print(f"validity {label}: {carnets * 10:,} passes issued in {time.perf_counter() - started:.1f} s", flush=True)
    if engine.dialect.name == "postgresql":  # as an operator would after a bulk load: fresh planner statistics
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()

    server, port = _serve(url, data_dir)
    try:
        auth = hmac_authenticator(SECRET)
        rng = random.Random(4)
        numbers = [
            build(year, rng.randrange(first, first + carnets), rng.randrange(1, 11), auth)
            for _ in range(requests_total)
        ]

        # Each client is a process of its own: client threads would share one GIL and add their own queueing
        # to the latencies measured. Warm up with all clients at once (the server's connection pool fills,
        # statements get prepared), then measure the steady state.
        context = multiprocessing.get_context("fork")

        def run_clients(parts: list[list[str]]) -> list[float]:
            results = context.Queue()
            procs = [context.Process(target=lambda p=part: results.put(_timed_client(port, token, point, p)))
                     for part in parts]  # fmt: skip
            for proc in procs:
                proc.start()
            collected = [x for _ in procs for x in results.get()]
            for proc in procs:
                proc.join()
            return collected

        run_clients([numbers[i : i + 400 : CLIENTS] for i in range(CLIENTS)])
        started = time.perf_counter()
        latencies = run_clients([numbers[i::CLIENTS] for i in range(CLIENTS)])
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=10)
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[int(len(ms) * 0.99) - 1]
    print(
        f"validity {label:10s} median {statistics.median(ms):6.2f} ms   p95 {ms[int(len(ms) * 0.95) - 1]:6.2f} ms   "
        f"p99 {p99:6.2f} ms   max {ms[-1]:6.1f} ms   "
        f"{len(ms) / elapsed:6.0f} req/s with {CLIENTS} clients, {WORKERS} server processes "
        f"(load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs)   target p99 < {P99_TARGET_MS:.0f} ms "
        f"[{'ok' if p99 < P99_TARGET_MS else 'MISSED'}]",
        flush=True,
    )


def main() -> None:
    scans = _n("BENCH_CENTRAL_SCANS", 20_000)
    passes = _n("BENCH_CENTRAL_PASSES", 1_000_000)
    calls = _n("BENCH_CENTRAL_REQUESTS", 4_000)
    parts = set(os.environ.get("BENCH_CENTRAL_PARTS", "ingest,validity").split(","))
    with tempfile.TemporaryDirectory(prefix="aptic-bench-") as tmp:
        root = Path(tmp)
        try:
            cluster: TempCluster | None = TempCluster.start()
        except PostgresUnavailable as error:
            print(f"PostgreSQL unavailable, its figures are missing: {error}")
            cluster = None
        try:
            if "ingest" in parts:
                bench_ingest("sqlite", f"sqlite:///{root / 'ingest.db'}", f"sqlite:///{root / 'raw.db'}", scans)
                if cluster is not None:
                    bench_ingest("postgresql", cluster.new_database(), cluster.new_database(), scans)
                bench_ingest_http("sqlite", f"sqlite:///{root / 'ingest-http.db'}", root, scans)
                if cluster is not None:
                    bench_ingest_http("postgresql", cluster.new_database(), root, scans)
            if "validity" in parts:
                bench_validity("sqlite", f"sqlite:///{root / 'validity.db'}", root, passes, calls)
                if cluster is not None:
                    bench_validity("postgresql", cluster.new_database(), root, passes, calls)
        finally:
            if cluster is not None:
                cluster.stop()


if __name__ == "__main__":
    main()
