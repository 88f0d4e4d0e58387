"""Races, settled by the database: two ``aptic-central serve`` processes on one database, pushed to at the
same moment by two client processes.

* the same 200 passes from two devices: exactly 200 accepted in total, each pass once;
* the same batch replayed in parallel: one row per scan, the same results on both sides;
* two passes of one carnet for one service on two devices of one organisation: one accepted per carnet.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from central_fixtures import SECRET
from sqlalchemy import func, select

from central import schema as t
from central.db import make_engine, migrate
from central.pgtemp import free_port
from central.services import activation, admin
from central.services.common import local_date


class Servers:
    def __init__(self, db_url: str, data_dir: str, count: int = 2) -> None:
        env = {**os.environ, "APTIC_CENTRAL_SECRET": SECRET.decode()}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.bases: list[str] = []
        for i in range(count):
            port = free_port()
            cmd = [sys.executable, "-m", "central.cli", "serve", "--db", db_url, "--data-dir", data_dir,
                   "--port", str(port), "--threads", "8"]  # fmt: skip
            log = open(os.path.join(data_dir, f"server-{i}.log"), "wb")  # noqa: SIM115 - kept open by the child
            self.procs.append(subprocess.Popen(cmd, env=env, stderr=log))
            log.close()
            self.bases.append(f"http://127.0.0.1:{port}")
        for base in self.bases:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(base + "/api/v1/health", timeout=1).status_code == 200:
                        break
                except (requests.ConnectionError, requests.Timeout):  # not listening, or still starting
                    pass
                if time.monotonic() > deadline:
                    self.close()
                    pytest.fail(f"aptic-central serve did not answer on {base}")
                time.sleep(0.1)

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=10)


@pytest.fixture
def world(db_url, tmp_path):
    engine = make_engine(db_url)
    migrate(engine)
    servers = Servers(db_url, str(tmp_path))
    yield engine, servers
    servers.close()
    engine.dispose()


def activated_device(engine, org: int, serial: str) -> tuple[str, int]:
    kit = admin.add_kit(engine, org, datetime.now(UTC))
    body = activation.activate(
        engine, kit["kit_number"], kit["activation_code"],
        {"serial": serial, "model": "test", "software_version": "0"}, datetime.now(UTC),
    )  # fmt: skip
    return body["token"], body["points_de_presence"][0]["id"]


def make_scans(numbers: list[str], point: int, service_of: Any) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {"id": str(uuid.uuid4()), "pass_number": n, "service": service_of(n), "point": point, "entry_id": None,
         "scanned_at": now, "clock_synced": True, "seq": i}
        for i, n in enumerate(numbers)
    ]  # fmt: skip


def push_all(base: str, token: str, scans: list[dict[str, Any]], batch: int, barrier: Any, out: Any) -> None:
    """Client process: wait for the other, then push ``scans`` in batches; put all results on ``out``."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    barrier.wait()
    results = []
    for i in range(0, len(scans), batch):
        r = session.post(base + "/api/v1/scans", json={"scans": scans[i : i + batch]}, timeout=120)
        if r.status_code != 200:
            out.put(f"HTTP {r.status_code}: {r.text}")
            return
        results.extend(r.json()["results"])
    out.put(results)


def race(jobs: list[tuple[str, str, list[dict[str, Any]], int]]) -> list[list[dict[str, Any]]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(jobs))
    queues = [ctx.Queue() for _ in jobs]
    procs = [ctx.Process(target=push_all, args=(*job, barrier, q)) for job, q in zip(jobs, queues, strict=True)]
    for p in procs:
        p.start()
    results = [q.get(timeout=180) for q in queues]
    for p in procs:
        p.join(timeout=30)
    errors = [r for r in results if isinstance(r, str)]
    assert not errors, errors
    return results


def counts(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        scans = conn.execute(select(func.count()).select_from(t.scans)).scalar_one()
        uses = conn.execute(select(func.count()).select_from(t.pass_uses)).scalar_one()
    return scans, uses


def issue(engine, carnets: int) -> list[str]:
    year = local_date(datetime.now(UTC)).year
    return admin.issue_carnets(
        engine, SECRET, datetime.now(UTC), commanditaire="CD", millesime=year, carnets=carnets, size=10
    )["passes"]


def test_same_200_passes_from_two_devices_at_once(world):
    engine, servers = world
    now = datetime.now(UTC)
    org_a = admin.add_organisation(engine, "A", "11111111111111", now)
    org_b = admin.add_organisation(engine, "B", "22222222222222", now)
    admin.add_point(engine, org_a, "A", "33063", ["BIB"], now)
    admin.add_point(engine, org_b, "B", "33063", ["BIB"], now)
    token_a, point_a = activated_device(engine, org_a, "a")
    token_b, point_b = activated_device(engine, org_b, "b")
    passes = issue(engine, 20)
    by_position = lambda n: int(n[10:12])  # noqa: E731 - distinct services, so only double use matters
    scans_a = make_scans(passes, point_a, by_position)
    scans_b = make_scans(list(reversed(passes)), point_b, by_position)
    res_a, res_b = race([(servers.bases[0], token_a, scans_a, 50), (servers.bases[1], token_b, scans_b, 50)])
    accepted = [r for r in res_a + res_b if r["status"] == "accepted"]
    assert len(accepted) == 200
    rejected = [r for r in res_a + res_b if r["status"] != "accepted"]
    assert len(rejected) == 200 and {r["reason"] for r in rejected} == {"already_used"}
    winners = {s["pass_number"] for s, r in zip(scans_a + scans_b, res_a + res_b, strict=True)
               if r["status"] == "accepted"}  # fmt: skip
    assert winners == set(passes)
    assert counts(engine) == (400, 200)


def test_parallel_replays_make_one_row_each(world):
    engine, servers = world
    now = datetime.now(UTC)
    org = admin.add_organisation(engine, "A", "11111111111111", now)
    admin.add_point(engine, org, "A", "33063", ["BIB"], now)
    token, point = activated_device(engine, org, "a")
    passes = issue(engine, 20)
    scans = make_scans(passes, point, lambda n: int(n[10:12]))
    res_1, res_2 = race([(servers.bases[0], token, scans, 100), (servers.bases[1], token, scans, 100)])
    assert res_1 == res_2
    assert all(r["status"] == "accepted" for r in res_1)
    assert counts(engine) == (200, 200)


def test_same_carnet_on_two_devices_at_once(world):
    engine, servers = world
    now = datetime.now(UTC)
    org = admin.add_organisation(engine, "A", "11111111111111", now)
    admin.add_point(engine, org, "A", "33063", ["BIB"], now)
    token_1, point = activated_device(engine, org, "one")
    token_2, _ = activated_device(engine, org, "two")
    passes = issue(engine, 30)
    firsts = [p for p in passes if p[10:12] == "01"]
    seconds = [p for p in passes if p[10:12] == "02"]
    res_1, res_2 = race(
        [
            (servers.bases[0], token_1, make_scans(firsts, point, lambda n: 5), 10),
            (servers.bases[1], token_2, make_scans(seconds, point, lambda n: 5), 10),
        ]
    )
    accepted = [r for r in res_1 + res_2 if r["status"] == "accepted"]
    assert len(accepted) == 30
    assert {r["reason"] for r in res_1 + res_2 if r["status"] == "rejected"} == {"same_carnet"}
