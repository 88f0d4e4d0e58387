"""Scans for the tests of the counter-payments and the dashboard: real ones, judged and stored by the ingest
service for a device activated through the activation service (what a terminal's push does, minus HTTP)."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from typing import Any

from console_fixtures import Org, Site

from central.services import activation, admin, ingest

_seq = itertools.count(1)


def device(site: Site, org: Org) -> int:
    kit = admin.add_kit(site.engine, org.id, site.clock())
    body = activation.activate(site.engine, kit["kit_number"], kit["activation_code"],
                               {"serial": f"pi-{uuid.uuid4().hex[:8]}", "model": "Raspberry Pi 5",
                                "software_version": "0.1.0"}, site.clock())  # fmt: skip
    return int(body["device_id"])


def scan(site: Site, org: Org, device_id: int, passes: list[str], when: datetime,
         services: list[int] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Scan ``passes`` at ``when`` (pass i for service i+1 unless ``services``: a carnet's passes may serve the
    same day only for different services); every result must be accepted."""
    scans = [
        ingest.ScanIn(
            str(uuid.uuid4()), number, services[i] if services else i + 1, org.points[0], when, True, next(_seq)
        )
        for i, number in enumerate(passes)
    ]
    auth = site.app.extensions["aptic_central"].auth
    results = ingest.ingest(site.engine, auth, device_id, org.id, scans, site.clock())
    assert [r["status"] for r in results] == ["accepted"] * len(passes), results
    return results
