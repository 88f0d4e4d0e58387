"""Offline, a refusal gives the central's reason: a genuine pass is never called "never issued".

The real central (``aptic-central serve`` on loopback) issues orders that cannot apply at the terminal's
organisation (another territory, another kind of place, other designated points), an expired millésime,
one not valid yet, one not paid, a blocked carnet. Each pass is judged first by the central's validity
endpoint, then by terminals that pulled the snapshot, once the central is gone: the reason must be the same.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from central_server import Central

from aptic.passnumber import build, hmac_authenticator
from aptic.reasons import Reason
from provisioning.activation import activate
from terminal.clock import Clock
from terminal.store import Store
from terminal.sync import Backoff, CentralClient, SyncWorker
from terminal.terminal import Terminal

PARIS = ZoneInfo("Europe/Paris")
SIRETS = itertools.count(20_000_000_000_000)


def paris_now() -> datetime:
    """The terminal counts days as the central does (Paris dates), whatever this machine's time zone."""
    return datetime.now(PARIS)


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Central]:
    server = Central(tmp_path / "central").start()
    yield server
    server.stop()


def issue(central: Central, millesime: int, *restrictions: str, funder: str = "Département de la Gironde") -> str:
    """One carnet of 5; its first pass."""
    out = central.cli("issue-carnets", "--commanditaire", funder, "--millesime", str(millesime), "--carnets", "1",
                      "--size", "5", *restrictions, "--json")  # fmt: skip
    return out["passes"][0]


class Site:
    """An organisation with one point (a bus in Bègles, Gironde) and its terminals."""

    def __init__(self, central: Central, directory: Path) -> None:
        self.central = central
        self.directory = directory
        self.organisation = central.add_organisation("Médiathèque de Bègles", str(next(SIRETS)))
        self.point = central.add_point(self.organisation, "Bus numérique", "33039", "ITINERANT")

    def terminal(self, name: str) -> tuple[Terminal, SyncWorker]:
        kit, code = self.central.add_kit(self.organisation)
        marker = self.directory / f"{name}-synchronized"
        marker.touch()
        terminal = Terminal(Store(self.directory / name), clock=Clock(sync_marker=marker, now=paris_now))
        activate(terminal, self.central.url, kit, code)  # pulls the full snapshot
        client = CentralClient(self.central.url, token=terminal.store.token, timeout=(2.0, 10.0))
        return terminal, SyncWorker(terminal, client, backoff=Backoff(base=0.01, cap=0.05))


def test_offline_refusals_give_the_central_reason(central: Central, tmp_path: Path) -> None:
    site = Site(central, tmp_path)
    early, early_worker = site.terminal("early")  # activated before the orders: gets them by cursor

    elsewhere = central.add_organisation("EPN de Talence", str(next(SIRETS)))
    their_point = central.add_point(elsewhere, "EPN", "33522", "EPN")
    today = paris_now().date()
    year = today.year
    later = today + timedelta(days=40)
    paris = ("--territory", "75", "--territory-label", "Paris")
    blocked = issue(central, year, *paris, funder="Ville de Paris")
    central.cli("block-carnet", blocked[:10])
    used = issue(central, year, "--territory", "33")
    cases = {
        Reason.OK: issue(central, year, "--territory", "33", "--territory-label", "Gironde"),
        Reason.TERRITORY: issue(central, year, *paris, funder="Ville de Paris"),
        Reason.PLACE_TYPE: issue(central, year, "--place-types", "CCAS,MDS"),
        Reason.PLACE_NOT_DESIGNATED: issue(central, year, "--points", str(their_point)),
        Reason.EXPIRED: issue(central, year - 2),
        # These orders cannot apply here either; the central still answers with the earlier check.
        Reason.NOT_YET_VALID: issue(central, later.year, "--starts-on", later.isoformat(), *paris),
        Reason.NOT_ACTIVATED: issue(central, year, "--not-activated", *paris),
        Reason.BLOCKED: blocked,
        Reason.ALREADY_USED: used,
        # A well-formed number no carnet holds (any key makes valid check digits).
        Reason.UNKNOWN_PASS: build(year, 9_000_000, 1, hmac_authenticator(b"nobody's key")),
    }
    # The used pass is spent by another terminal of this organisation, online.
    other, other_worker = site.terminal("other")
    other.start_entry(5)
    assert other.handle_code(used).added
    other.submit()
    assert other_worker.sync_once().pushed == 1

    assert early_worker.sync_once().snapshot_changed
    late, _ = site.terminal("late")  # activated after: a full snapshot
    client = CentralClient(central.url, token=late.store.token, timeout=(2.0, 10.0))
    online = {}
    for expected, number in cases.items():
        service = late.handle_code(number).service  # the service a self-service test asks about
        online[expected] = (service, client.validity(number, service, site.point, timeout=10))
        assert online[expected][1]["reason"] == expected.value, (expected, online[expected][1])

    central.stop()  # offline from here on
    for terminal in (early, late):
        assert terminal.online_check is None
        offline = {expected: terminal.handle_code(number) for expected, number in cases.items()}
        assert all(result.provisional for result in offline.values())
        assert {k: (r.reason.value, r.service) for k, r in offline.items()} == {
            k: (answer["reason"], service) for k, (service, answer) in online.items()
        }
        assert {k: r.message for k, r in offline.items()} == {k: answer["message"] for k, (_, answer) in online.items()}
