"""The fleet agent against the real central on a loopback port: settings applied, commands run once.

The operator's side is the real ``aptic-central fleet`` command line; the terminal's side is the real
:class:`terminal.fleet.FleetAgent` with its journal on disk. A power cut is a new agent (and a new boot id, when
the machine rebooted) over the same data directory: what the journal wrote before the cut is all it knows.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import logging
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from provisioning.activation import activate
from terminal import logs, remote, screenshot
from terminal.clock import Clock
from terminal.fleet import JOURNAL, CommandJournal, FleetAgent
from terminal.store import Store
from terminal.sync import CentralClient, Refused, Unavailable
from terminal.terminal import Terminal

sys.path.insert(0, str(Path(__file__).parent))
from central_server import BIN, Central, FaultProxy
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

    def agent(self, boot_id: str = "boot-1", actions: Mapping[str, Any] | None = None) -> FleetAgent:
        """One boot of the terminal: its commands recorded in ``ran``, or run by ``actions`` (the daemon's)."""

        def action(kind: str) -> Any:
            def run(args: Mapping[str, Any]) -> dict[str, Any]:
                self.ran.append(kind)
                return {"ran": kind}

            return run

        def apply(config: Mapping[str, Any]) -> list[str]:
            self.applied.append(dict(config))
            return []

        kinds = ("reboot", "resync", "restart_kiosk", "upload_logs", "screenshot", "reactivate")
        actions = {k: action(k) for k in kinds} if actions is None else actions
        return FleetAgent(self.client, self.store, CommandJournal(self.store.directory / JOURNAL),
                          apply_config=apply, actions=actions, boot_id=boot_id)  # fmt: skip

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


def test_a_shorter_poll_interval_takes_effect_at_once_not_after_the_old_one(device: Device) -> None:
    now = [1000.0]
    agent = device.agent()
    agent.clock, agent.jitter = (lambda: now[0]), (lambda: 0.5)  # no jitter: 1.0 × the interval
    device.central.cli("fleet", "config", "--device", str(device.device_id), "poll_interval=30")
    assert agent.poll_if_due()  # the first poll, planned with the default 300 s, brings 30 s
    now[0] += 31
    assert agent.poll_if_due(), "the next poll waited for the old 300 s interval"


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

    # The guard tried it and rolled it back: while the rollout still wants it, it is never asked for again.
    (updates / "state.json").write_text(json.dumps({"phase": "idle", "rolled_back": "0.2.0", "bad": ["0.2.0"]}))
    agent.poll_once()
    assert asked == ["0.2.0"]
    assert device.listed()["reported"]["release"]["phase"] == "rolled_back"
    # A state the agent cannot read (here a directory in its place) stops it too, and says why.
    (updates / "state.json").unlink()
    (updates / "state.json").mkdir()
    step.running = "0.1.0"
    agent.poll_once()
    assert asked == ["0.2.0"]
    assert "guard state unreadable" in device.listed()["reported"]["release"]["error"]


# -- commands that bring a file back: upload_logs, screenshot -------------------------------------------------


def png(width: int = 8, height: int = 6) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "navy").save(out, "PNG")
    return out.getvalue()


class ScreenshotUnit:
    """Plays aptic-screenshot.path and .service on ``directory``: on a request, grim's PNG renamed whole into
    place (none when ``shot`` is None: grim failed), then the request removed, as ExecStopPost does."""

    def __init__(self, directory: Path, shot: bytes | None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.shot, self.served = directory, shot, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        request = self.directory / screenshot.REQUEST
        while not self._stop.wait(0.02):  # a path unit is woken by inotify; this one looks often
            if not request.exists():
                continue
            if self.shot is not None:
                part = self.directory / "screen.png.part"
                part.write_bytes(self.shot)
                part.replace(self.directory / screenshot.SCREEN)
            request.unlink()
            self.served += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def daemon_log(tmp_path: Path) -> Iterator[Path]:
    """The daemon's log file as ``aptic-terminal run`` installs it, every level on, for one test."""
    directory = tmp_path / "run"
    handler = logs.install(directory)
    assert handler is not None
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield directory
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)


def the_daemons_actions(device: Device, tmp_path: Path, **options: Any) -> dict[str, Any]:
    updates = tmp_path / "updates"  # the guard's directory, with a rollback's log
    (updates / "logs").mkdir(parents=True, exist_ok=True)
    (updates / "logs" / "rollback-0.2.0.log").write_text("2026-12-01T10:00:00+0100 0.2.0: not ready in 90 s\n")
    options = {"log_dir": tmp_path / "run", "updates_dir": updates, "screenshot_dir": tmp_path / "shots", **options}
    return remote.actions(device.terminal, None, **options)


def test_upload_logs_brings_the_daemons_log_and_the_guards_to_the_operator_without_the_token(
    device: Device, daemon_log: Path, tmp_path: Path
) -> None:
    token = device.store.token()
    assert token
    # Should a library ever print the header, the file says [hidden] (the project itself never logs it).
    logging.getLogger("urllib3.connectionpool").debug("send: Authorization: Bearer %s", token)
    command = device.send("upload_logs")
    device.agent(actions=the_daemons_actions(device, tmp_path)).poll_once()
    done = device.central.cli("fleet", "command", command, "--json")
    assert done["status"] == "done" and done["result"]["bytes"] == done["artifact"]["size"] > 0
    assert done["result"]["files"] == ["aptic-terminal/aptic-terminal.log", "updates/rollback-0.2.0.log"]

    target = tmp_path / "operator" / "logs.tar.gz"
    target.parent.mkdir()
    saved = device.central.cli("fleet", "command", command, "--artifact", str(target), "--json")["saved"]
    assert saved == {"path": str(target), "size": target.stat().st_size, "content_type": "application/gzip"}
    with tarfile.open(target, "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    log = members["aptic-terminal/aptic-terminal.log"].decode()
    assert f"INFO terminal.fleet: Running command {command} (upload_logs)" in log  # the daemon's own line
    assert "GET /api/v1/desired-state" in log and "Bearer [hidden]" in log  # DEBUG lines, token hidden
    assert b"not ready in 90 s" in members["updates/rollback-0.2.0.log"]
    assert all(token.encode() not in data for data in members.values())


def test_screenshot_the_screens_unit_takes_reaches_the_operator_and_no_screen_fails_at_once(
    device: Device, tmp_path: Path
) -> None:
    shot = png()
    unit = ScreenshotUnit(tmp_path / "shots", shot)
    try:
        # The operator follows it with --wait and gets the PNG in a file, while the terminal polls.
        target = tmp_path / "screen.png"
        central = device.central
        queued = device.listed()["generation"]
        operator = subprocess.Popen(
            [str(BIN / "aptic-central"), "fleet", "send", "--db", central.db, "--data-dir", str(central.directory),
             str(device.device_id), "screenshot", "--wait", "60", "--artifact", str(target), "--json"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for(lambda: device.listed()["generation"] > queued, "the screenshot queued")
        agent = device.agent(actions=the_daemons_actions(device, tmp_path))
        agent.poll_once()
        out, _ = operator.communicate(timeout=60)
        assert operator.returncode == 0, out
        answer = json.loads(out)
        assert answer["status"] == "done" and answer["result"] == {"bytes": len(shot), "content_type": "image/png"}
        assert target.read_bytes() == shot and unit.served == 1
        assert not (tmp_path / "shots" / screenshot.SCREEN).exists()  # taken away: RAM is scarce

        unit.shot = None  # grim fails (no screen yet): the request is gone at once, no 20 s wait
        failed = device.send("screenshot")
        agent.poll_once()
        assert device.status(failed) == "failed" and unit.served == 2
        error = device.central.cli("fleet", "command", failed, "--json")["result"]["error"]
        assert "the screen did not answer" in error
    finally:
        unit.stop()

    # No shared directory: a workstation or the demo. Failed with a clear message, not after a long wait.
    none = device.send("screenshot")
    started = time.monotonic()
    device.agent(actions=the_daemons_actions(device, tmp_path, screenshot_dir=tmp_path / "absent",
                                             screenshot_timeout=120)).poll_once()  # fmt: skip
    assert time.monotonic() - started < 60
    nothing = device.central.cli("fleet", "command", none, "--json")
    assert nothing["status"] == "failed" and nothing["artifact"] is None
    assert nothing["result"]["error"].startswith("no screen on this terminal")


def test_a_file_is_sent_once_per_run_too_large_or_for_another_device_it_is_refused(
    central: Central, proxy: FaultProxy, tmp_path: Path
) -> None:
    device = Device(central, proxy.url, tmp_path / "a")
    unit = ScreenshotUnit(tmp_path / "a" / "shots", png())
    try:
        actions = the_daemons_actions(device, tmp_path / "a")
        command = device.send("screenshot")
        proxy.inject("/api/v1/report", "reset")  # the acknowledgement is lost on the way
        agent = device.agent(actions=actions)
        with pytest.raises(Unavailable):
            agent.poll_once()
        assert device.status(command) == "pending"  # the central has the file, not yet the "done"
        agent.poll_once()  # delivered again: the journal knows it, only the acknowledgement goes out
        assert device.status(command) == "done" and unit.served == 1
        puts = [path for method, path in proxy.requests if method == "PUT"]
        assert puts == [f"/api/v1/commands/{command}/artifact"]

        # A power cut while it ran: a screenshot may be taken again, and its file replaces the first.
        again = device.send("screenshot")
        CommandJournal(device.store.directory / JOURNAL).record(again, kind="screenshot", args={}, status="started",
                                                                 boot_id="boot-1")  # fmt: skip
        device.agent(actions=actions).poll_once()
        assert device.status(again) == "done" and unit.served == 2
        puts = [path for method, path in proxy.requests if method == "PUT"]
        assert puts.count(f"/api/v1/commands/{again}/artifact") == 1
    finally:
        unit.stop()

    big = device.send("upload_logs")
    with pytest.raises(Refused) as too_large:
        device.client.put_artifact(big, b"\x1f\x8b" + bytes(5 * 2**20), "application/gzip")
    assert too_large.value.status == 413 and too_large.value.code == "artifact_too_large"
    other = Device(central, central.url, tmp_path / "b")
    with pytest.raises(Refused) as not_its:
        other.client.put_artifact(big, gzip.compress(b"x"), "application/gzip")
    assert not_its.value.status == 404 and not_its.value.code == "unknown_command"


def test_the_daemons_log_stays_bounded_and_the_archive_too(daemon_log: Path, tmp_path: Path) -> None:
    chatty = logging.getLogger("terminal.test")
    for n in range(6000):  # about 3 MiB
        chatty.info("line %05d %s", n, "x" * 480)
    names = sorted(p.name for p in daemon_log.iterdir())
    assert names == ["aptic-terminal.log", "aptic-terminal.log.1"]
    assert all(p.stat().st_size <= logs.MAX_BYTES for p in daemon_log.iterdir())
    files = logs.log_files(daemon_log, tmp_path / "no-updates")  # no update directory: tolerated
    assert [name for name, _ in files] == ["aptic-terminal/aptic-terminal.log.1", "aptic-terminal/aptic-terminal.log"]
    with tarfile.open(fileobj=io.BytesIO(logs.archive(files)), mode="r:gz") as tar:
        newest = tar.extractfile("aptic-terminal/aptic-terminal.log").read()  # type: ignore[union-attr]
    assert b"line 05999" in newest
    with pytest.raises(RuntimeError, match="too large"):
        logs.archive(files, limit=1000)
    with pytest.raises(RuntimeError, match="no log file"):
        logs.archive(logs.log_files(None, tmp_path / "no-updates"))
