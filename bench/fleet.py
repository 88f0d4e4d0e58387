"""Bench of the fleet (issue 12): what the desired-state polls of 10,000 terminals cost the central.

10,000 devices (inserted in bulk, each with its own token) poll ``GET /api/v1/desired-state`` with the ETag of
the document they hold, as the fleet agent does: almost every poll is a 304 (nothing changed). 8 client
processes with keep-alive against ``aptic-central serve`` on SQLite and PostgreSQL; printed: requests/s held,
median and p99, and the ratio of the rate held to what the fleet needs (10,000 devices every 300 s ±10 %:
about 33 requests/s). Then the same with a change for every device (a fleet-wide setting: each poll a 200).

Environment: ``BENCH_FLEET_DEVICES`` (default 10,000), ``BENCH_FLEET_REQUESTS`` (default 8,000).
"""

from __future__ import annotations

import http.client
import multiprocessing
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from bench.central import CLIENTS, _serve
from central import schema as t
from central.db import make_engine, migrate
from central.pgtemp import PostgresUnavailable, TempCluster
from central.services import admin, fleet
from central.services.admin import hash_secret

POLL_INTERVAL_S = 300.0


def _devices(url: str, count: int) -> None:
    engine = make_engine(url)
    migrate(engine)
    now = datetime.now(UTC)
    org = admin.add_organisation(engine, "Bench", "12345678901234", now)
    with engine.begin() as conn:
        conn.execute(insert(t.kits), [
            {"id": i, "kit_number": f"AK-{i:08d}", "organisation_id": org, "failed_attempts": 0, "created_at": now}
            for i in range(1, count + 1)
        ])  # fmt: skip
        conn.execute(insert(t.devices), [
            {"id": i, "kit_id": i, "organisation_id": org, "token_hash": hash_secret(f"token-{i}"), "serial": f"s{i}",
             "model": "bench", "software_version": "0.1.0", "activated_at": now, "generation": 1}
            for i in range(1, count + 1)
        ])  # fmt: skip
    engine.dispose()


def _client(port: int, ids: list[int], tag: str) -> list[tuple[float, int]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    for i in ids:
        started = time.perf_counter()
        conn.request("GET", "/api/v1/desired-state", headers={"Authorization": f"Bearer token-{i}",
                                                               "If-None-Match": f'"{tag}"'})  # fmt: skip
        response = conn.getresponse()
        response.read()
        out.append((time.perf_counter() - started, response.status))
    conn.close()
    return out


def _run(port: int, ids: list[int], tag: str) -> tuple[list[float], list[int], float]:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    parts = [ids[i::CLIENTS] for i in range(CLIENTS)]
    procs = [context.Process(target=lambda p=part: results.put(_client(port, p, tag))) for part in parts]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    collected = [x for _ in procs for x in results.get()]
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    return [d for d, _ in collected], [s for _, s in collected], elapsed


def bench(label: str, url: str, data_dir: Path, devices: int, requests_total: int) -> None:
    _devices(url, devices)
    server, port = _serve(url, data_dir)
    needed = devices / POLL_INTERVAL_S
    try:
        ids = [1 + (k * 7919) % devices for k in range(requests_total)]  # spread over the fleet
        _run(port, ids[:400], "g1")  # warm-up: connections, prepared statements
        for case, change in (("unchanged (304)", False), ("changed (200)", True)):
            if change:
                engine = make_engine(url)
                fleet.set_settings(engine, "fleet", 0, {"heartbeat_interval": 120}, datetime.now(UTC))
                engine.dispose()
            delays, statuses, elapsed = _run(port, ids, "g1")  # the ETag every device holds
            ms = sorted(d * 1000 for d in delays)
            rate = len(ms) / elapsed
            expected = 200 if change else 304
            wrong = sum(1 for s in statuses if s != expected)
            print(f"desired-state {label:10s} {case:16s} {rate:6.0f} req/s  median {statistics.median(ms):5.2f} ms  "
                  f"p99 {ms[int(len(ms) * 0.99) - 1]:6.2f} ms  held/needed {rate / needed:5.1f}x "
                  f"({devices:,} devices every {POLL_INTERVAL_S:.0f} s = {needed:.0f} req/s)"
                  f"{'' if not wrong else f'  {wrong} unexpected statuses'}", flush=True)  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    devices = int(os.environ.get("BENCH_FLEET_DEVICES", "10000"))
    calls = int(os.environ.get("BENCH_FLEET_REQUESTS", "8000"))
    with tempfile.TemporaryDirectory(prefix="aptic-bench-fleet-") as tmp:
        root = Path(tmp)
        bench("sqlite", f"sqlite:///{root / 'fleet.db'}", root, devices, calls)
        try:
            cluster = TempCluster.start()
        except PostgresUnavailable as error:
            print(f"PostgreSQL unavailable, its figures are missing: {error}")
            return
        try:
            bench("postgresql", cluster.new_database(), root, devices, calls)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
