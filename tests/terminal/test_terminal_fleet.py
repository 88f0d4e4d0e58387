"""The fleet agent against the real central on a loopback port: settings applied, commands run once.

The operator's side is the real ``aptic-central fleet`` command line; the terminal's side is the real
:class:`terminal.fleet.FleetAgent` with its journal on disk. A power cut is a new agent (and a new boot id, when
the machine rebooted) over the same data directory: what the journal wrote before the cut is all it knows.
"""

from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from provisioning.activation import activate
from terminal.clock import Clock
from terminal.fleet import JOURNAL, CommandJournal, FleetAgent
from terminal.store import Store
from terminal.sync import CentralClient, Unavailable
from terminal.terminal import Terminal

sys.path.insert(0, str(Path(__file__).parent))
from central_server import Central, FaultProxy
from terminal_fixtures import wait_for

SIRETS = itertools.count(30_000_000_000_000)


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    server = Central(tmp_path_factory.mktemp("central")).start()
    yield server
    server.stop()


@pytest.fixture
def proxy(central: Central) -> Iterator[FaultProxy]:
    p = FaultProxy(central.url)
    yield p
    p.close()


class Device:
    """An activated terminal's data directory and what its commands did; ``agent()`` is one boot of it."""

    def __init__(self, central: Central, url: str, directory: Path) -> None:
        self.central = central
        organisation = central.add_organisation("Médiathèque de Lormont", str(next(SIRETS)))
        central.add_point(organisation, "Espace public numérique")
        kit, code = central.add_kit(organisation)
        self.organisation = organisation
        self.store = Store(directory / "terminal")
        self.terminal = Terminal(self.store, clock=Clock(sync_marker=directory / "synchronized"))
        activate(self.terminal, central.url, kit, code)
        self.device_id = int(self.store.state()["device_id"])
        self.client = CentralClient(url, token=self.store.token, timeout=(1.0, 5.0))
        self.ran: list[str] = []
        self.applied: list[dict[str, Any]] = []

    def agent(self, boot_id: str = "boot-1") -> FleetAgent:
        def action(kind: str) -> Any:
            def run(args: Mapping[str, Any]) -> dict[str, Any]:
                self.ran.append(kind)
                return {"ran": kind}

            return run

        def apply(config: Mapping[str, Any]) -> list[str]:
            self.applied.append(dict(config))
            return []

        kinds = ("reboot", "resync", "restart_kiosk", "upload_logs", "screenshot", "reactivate")
        return FleetAgent(self.client, self.store, CommandJournal(self.store.directory / JOURNAL),
                          apply_config=apply, actions={k: action(k) for k in kinds}, boot_id=boot_id)  # fmt: skip

    def send(self, kind: str, *extra: str) -> str:
        return self.central.cli("fleet", "send", str(self.device_id), kind, "--json", *extra)["id"]

    def status(self, command_id: str) -> str:
        return self.central.cli("fleet", "command", command_id, "--json")["status"]

    def listed(self) -> dict[str, Any]:
        rows = self.central.cli("fleet", "list", "--organisation", str(self.organisation), "--json")
        return next(row for row in rows if row["id"] == self.device_id)


@pytest.fixture
def device(central: Central, tmp_path: Path) -> Device:
    return Device(central, central.url, tmp_path)


def test_settings_set_on_the_central_are_applied_then_reported_and_an_unchanged_state_costs_a_304(
    device: Device,
) -> None:
    central = device.central
    organisation = str(device.organisation)
    central.cli("fleet", "config", "--organisation", organisation, "log_level=DEBUG", "heartbeat_interval=45")
    agent = device.agent()
    agent.poll_once()
    assert device.applied == [{"log_level": "DEBUG", "heartbeat_interval": 45.0}]
    row = device.listed()
    assert row["applied_generation"] == row["generation"] and row["reported"]["config"]["log_level"] == "DEBUG"

    etag = device.store.state()["desired_etag"]
    assert device.client.desired_state(etag) == (etag, None)  # unchanged: a 304
    agent.poll_once()
    assert len(device.applied) == 1  # nothing applied twice

    central.cli("fleet", "config", "--device", str(device.device_id), "heartbeat_interval=30")
    agent.poll_once()
    assert device.applied[-1] == {"log_level": "DEBUG", "heartbeat_interval": 30.0}
    assert device.listed()["applied_generation"] == device.listed()["generation"]


def test_a_command_delivered_twice_runs_once_and_its_acknowledgement_is_sent_again(
    central: Central, proxy: FaultProxy, tmp_path: Path
) -> None:
    device = Device(central, proxy.url, tmp_path)
    command = device.send("resync")
    proxy.inject("/api/v1/report", "reset")  # the acknowledgement is lost on the way
    agent = device.agent()
    with pytest.raises(Unavailable):
        agent.poll_once()
    assert device.ran == ["resync"] and device.status(command) == "pending"
    agent.poll_once()  # the central delivers it again: the journal knows it, only the ack goes out
    assert device.ran == ["resync"] and device.status(command) == "done"
    agent.poll_once()
    assert device.ran == ["resync"]


def test_a_reboot_is_reported_done_once_after_the_reboot_and_never_run_twice(device: Device) -> None:
    command = device.send("reboot")
    device.agent("boot-1").poll_once()
    assert device.ran == ["reboot"] and device.status(command) == "started"  # said before going down
    after = device.agent("boot-2")  # the machine came back: a new boot id
    after.poll_once()
    assert device.status(command) == "done" and device.ran == ["reboot"]
    after.poll_once()
    assert device.ran == ["reboot"]

    # The daemon died before the reboot happened (same boot): interrupted, for the operator to decide.
    again = device.send("reboot")
    journal = CommandJournal(device.store.directory / JOURNAL)
    journal.record(again, kind="reboot", status="started", boot_id="boot-2")
    device.agent("boot-2").poll_once()
    assert device.status(again) == "interrupted" and device.ran == ["reboot"]


def test_a_repeatable_command_cut_short_runs_again_and_an_expired_one_never_runs(device: Device) -> None:
    resync = device.send("resync")
    journal = CommandJournal(device.store.directory / JOURNAL)
    journal.record(resync, kind="resync", args={}, status="started", boot_id="boot-1")  # then the power went
    device.agent("boot-1").poll_once()
    assert device.ran == ["resync"] and device.status(resync) == "done"

    late = device.send("upload_logs", "--ttl-hours", "0.0003")  # about one second
    wait_for(lambda: device.status(late) == "expired", "the command's expiry on the central", 30)
    device.agent("boot-1").poll_once()
    assert device.status(late) == "expired" and "upload_logs" not in device.ran


def test_reactivate_is_acknowledged_before_it_takes_the_token_away_and_finishes_after_a_cut(device: Device) -> None:
    command = device.send("reactivate")
    agent = device.agent()
    agent.poll_once()
    assert device.status(command) == "done" and device.ran == ["reactivate"]
    assert CommandJournal(device.store.directory / JOURNAL).pending_effects() == []

    # Cut between the acknowledgement and the effect: the next start finishes the effect, once.
    second = device.send("reactivate")
    journal = CommandJournal(device.store.directory / JOURNAL)
    journal.record(second, kind="reactivate", args={}, status="done", effect_pending=True)
    device.agent().poll_once()
    assert device.status(second) == "done" and device.ran == ["reactivate", "reactivate"]
    device.agent().poll_once()
    assert device.ran == ["reactivate", "reactivate"]


def test_a_command_for_this_device_is_not_acknowledged_by_another(central: Central, tmp_path: Path) -> None:
    a = Device(central, central.url, tmp_path / "a")
    b = Device(central, central.url, tmp_path / "b")
    command = a.send("screenshot")
    b.agent().poll_once()
    assert b.ran == [] and a.status(command) == "pending"
    journal = CommandJournal(b.store.directory / JOURNAL)
    journal.record(command, kind="screenshot", status="done")  # b claims it
    b.agent().poll_once()
    assert a.status(command) == "pending"
    assert CommandJournal(b.store.directory / JOURNAL).unreported() == []  # and stops saying it
    a.agent().poll_once()
    assert a.status(command) == "done"


def test_a_journal_that_is_not_json_is_kept_aside_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL
    path.write_bytes(b"\x00\x00{garbage")
    journal = CommandJournal(path)
    assert journal.unreported() == [] and path.with_name(JOURNAL + ".bad").read_bytes() == b"\x00\x00{garbage"
    journal.record(str(uuid.uuid4()), kind="resync", status="done")
    assert len(CommandJournal(path).unreported()) == 1


def test_a_rollout_reaches_the_terminal_which_stages_the_signed_release_and_asks_the_guard(
    central: Central, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from central import releases
    from tests.test_update_stage import wheel
    from updates.agent import UpdateStep
    from updates.fetch import ReleaseSource
    from updates.stage import build_bundle

    repository = central.directory / "tuf"  # the served central's own data directory
    offline = tmp_path / "offline"
    offline.mkdir()
    for name in ("r1", "r2", "targets"):
        releases.generate_key(offline / f"{name}.pem")
    releases.init_repository(repository, [offline / "r1.pem", offline / "r2.pem"], 2, offline / "targets.pem")
    monkeypatch.setattr("updates.stage.SELF_TEST", "import fake_release")
    wheel(tmp_path / "wheels", "0.2.0")
    bundle = build_bundle("0.2.0", tmp_path / "wheels", tmp_path / "bundle.tar")
    releases.publish(repository, bundle, "0.2.0", offline / "targets.pem")

    device = Device(central, central.url, tmp_path / "device")
    asked: list[str] = []
    updates = tmp_path / "device" / "updates"
    step = UpdateStep(ReleaseSource(central.url, updates / "fetch", releases.root_json(repository)), updates,
                      "0.1.0", clock_synced=lambda: True, request_switch=asked.append)  # fmt: skip
    agent = device.agent()
    agent.updates = step
    agent.poll_once()
    assert asked == []  # no rollout: nothing wanted
    central.cli("fleet", "rollout-start", "0.2.0", "--devices", str(device.device_id))
    agent.poll_once()
    assert asked == ["0.2.0"] and (updates / "releases" / "0.2.0" / ".complete").exists()
    assert device.listed()["reported"]["release"]["desired"] == "0.2.0"
