"""``aptic-terminal activate | status | check | run`` as an operator types them, against the real central."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from central_server import Central, free_port
from terminal_fixtures import running_daemon, wait_for

from terminal.clock import Clock
from terminal.store import Store
from terminal.terminal import Terminal

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    server = Central(tmp_path_factory.mktemp("central-cli")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def organisation(central: Central) -> int:
    org = central.add_organisation("Médiathèque de Floirac", "20000000000001")
    central.add_point(org, "Bus numérique")
    return org


@pytest.fixture(scope="module")
def passes(central: Central) -> list[str]:
    return central.issue(10, "--territory", "33")[::5]


def aptic_terminal(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "terminal.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "APTIC_TERMINAL_DATA_DIR": str(data_dir), "APTIC_TERMINAL_CONFIG": "/nonexistent",
             **(env or {})},
        timeout=60,
    )  # fmt: skip


def activated(central: Central, organisation: int, data_dir: Path) -> None:
    kit, code = central.add_kit(organisation)
    out = aptic_terminal("activate", "--central", central.url, "--kit", kit, "--code", code, "--pin", "2468",
                         data_dir=data_dir)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Terminal activé")


def test_activate_then_status_and_check(central: Central, organisation: int, passes: list[str], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    refused = aptic_terminal("check", passes[0], data_dir=data_dir)
    assert refused.returncode == 2 and "pas prêt" in refused.stderr
    wrong = aptic_terminal("activate", "--central", central.url, "--kit", "AK-0", "--code", "X", data_dir=data_dir)
    assert wrong.returncode == 1 and wrong.stderr.strip()

    activated(central, organisation, data_dir)
    assert stat.S_IMODE((data_dir / "token").stat().st_mode) == 0o600
    status = aptic_terminal("status", "--json", data_dir=data_dir)
    assert status.returncode == 0
    doc = json.loads(status.stdout)
    assert doc["activation"] == "activated" and doc["place"] == "Bus numérique"
    assert doc["outbox"]["pending"] == 0 and doc["central_url"] == central.url
    assert doc["daemon_running"] is False and doc["last_sync"] is None

    valid = aptic_terminal("check", passes[0].replace("", " ").strip(), "--json", data_dir=data_dir)
    assert valid.returncode == 0, valid.stderr
    verdict = json.loads(valid.stdout)
    assert verdict["valid"] and verdict["provisional"] and verdict["reason"] == "ok"
    for_a_service = aptic_terminal("check", passes[0], "--service", "12", data_dir=data_dir)
    assert for_a_service.returncode == 0 and for_a_service.stdout.startswith("Pass valable : ")
    assert "(provisoire, hors ligne)" in for_a_service.stdout
    malformed = aptic_terminal("check", "126000000101234567", data_dir=data_dir)
    assert malformed.returncode == 1 and "Pass non conforme" in malformed.stdout


def test_check_before_activation_judges_the_format_and_always_answers_json(passes: list[str], tmp_path: Path) -> None:
    data_dir = tmp_path / "new-terminal"
    wrong_check_digit = passes[0][:-1] + str((int(passes[0][-1]) + 1) % 10)
    for args in (["--json"], ["--json", "--service", "12"]):
        malformed = aptic_terminal("check", wrong_check_digit, *args, data_dir=data_dir)
        assert malformed.returncode == 1, malformed.stderr
        verdict = json.loads(malformed.stdout)
        assert verdict["reason"] == "malformed" and not verdict["valid"]
        assert verdict["message"].startswith("Pass non conforme")
    as_text = aptic_terminal("check", "12600abc", data_dir=data_dir)
    assert as_text.returncode == 1 and as_text.stdout.startswith("Pass non conforme")
    # A well-formed number truly needs the offline data: not ready, still one JSON document.
    needs_data = aptic_terminal("check", passes[0], "--json", data_dir=data_dir)
    assert needs_data.returncode == 2
    answer = json.loads(needs_data.stdout)
    assert answer == {"valid": False, "reason": "not_ready", "message": answer["message"]}
    assert "pas prêt" in answer["message"]


def test_run_syncs_serves_the_kiosk_and_stops_on_sigterm(central: Central, organisation: int, passes: list[str],
                                                          tmp_path: Path) -> None:  # fmt: skip
    data_dir = tmp_path / "data"
    activated(central, organisation, data_dir)
    # Scans recorded while the daemon was off (a bus parked offline).
    terminal = Terminal(Store(data_dir), clock=Clock())
    terminal.start_entry(12)
    assert terminal.handle_code(passes[1]).added
    terminal.submit()
    terminal.store.close()

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    port = free_port()
    with running_daemon(data_dir, port, NOTIFY_SOCKET=str(tmp_path / "notify")) as daemon:
        while (message := notify.recv(100)) != b"READY=1":  # the start's steps come first
            assert message.startswith(b"EXTEND_TIMEOUT_USEC="), message
        kiosk = f"http://127.0.0.1:{port}"
        assert requests.get(kiosk + "/healthz", timeout=5).json()["status"] == "ok"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            doc = json.loads(aptic_terminal("status", "--json", data_dir=data_dir).stdout)
            if doc["outbox"]["pending"] == 0 and doc["last_sync"]:
                break
            time.sleep(0.2)
        assert doc["outbox"]["pending"] == 0, "the daemon did not push the waiting scan"
        assert doc["daemon_running"] is True and doc["last_sync"]
        state = requests.get(kiosk + "/api/state", timeout=5).json()
        answer = requests.post(kiosk + "/api/check", json={"code": passes[1]},
                               headers={"X-CSRF-Token": state["csrf"]}, timeout=5).json()  # fmt: skip
        assert answer["reason"] == "already_used" and answer["provisional"] is False  # the central's word, online
    assert daemon.returncode == 0, daemon.stdout.read() if daemon.stdout else ""
    assert notify.recv(100) == b"STOPPING=1"


def test_run_applies_the_centrals_settings_and_runs_its_commands(central: Central, organisation: int,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    data_dir = tmp_path / "data"
    activated(central, organisation, data_dir)
    store = Store(data_dir)
    device = str(store.state()["device_id"])
    store.close()
    # Short intervals (the settings' minimums): the heartbeat with the kiosk's page comes at the next round.
    central.cli("fleet", "config", "--device", device, "log_level=DEBUG", "heartbeat_interval=10", "sync_interval=10")
    resync = central.cli("fleet", "send", device, "resync", "--json")["id"]
    screenshot = central.cli("fleet", "send", device, "screenshot", "--json")["id"]
    upload_logs = central.cli("fleet", "send", device, "upload_logs", "--json")["id"]

    def listed() -> dict:
        return next(d for d in central.cli("fleet", "list", "--json") if str(d["id"]) == device)

    synced = tmp_path / "synchronized"  # as systemd-timesyncd leaves it once the clock is set
    synced.touch()
    # No screen on this machine; the daemon's log in a directory of its own, as the unit's /run/aptic-terminal.
    env = {"APTIC_TERMINAL_SYNC_MARKER": str(synced), "APTIC_TERMINAL_LOG_DIR": str(tmp_path / "run"),
           "APTIC_TERMINAL_SCREENSHOT_DIR": str(tmp_path / "no-screen"),
           "APTIC_UPDATES_DIR": str(tmp_path / "no-updates")}  # fmt: skip
    with running_daemon(data_dir, free_port(), **env) as daemon:
        wait_for(lambda: central.cli("fleet", "command", resync, "--json")["status"] == "done", "the resync done")
        failed = wait_for(lambda: (c := central.cli("fleet", "command", screenshot, "--json"))["status"] == "failed"
                          and c, "the screenshot refused")  # fmt: skip
        wait_for(lambda: central.cli("fleet", "command", upload_logs, "--json")["status"] == "done", "the logs sent")
        wait_for(lambda: listed()["applied_generation"] == listed()["generation"], "the settings reported applied")
        # A heartbeat with the kiosk listening carries how long its page has been quiet (the first comes before).
        wait_for(lambda: ((listed()["last_status"] or {}).get("screen") or {}).get("page_quiet_s") is not None,
                 "a heartbeat with the kiosk's page", 90)  # fmt: skip
    output = daemon.stdout.read() if daemon.stdout else ""
    assert daemon.returncode == 0, output
    assert failed["result"]["error"].startswith("no screen on this terminal")
    central.cli("fleet", "command", upload_logs, "--artifact", str(tmp_path / "logs.tar.gz"))
    with tarfile.open(tmp_path / "logs.tar.gz") as tar:
        [member] = tar.getmembers()
        log = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    assert member.name == "aptic-terminal/aptic-terminal.log" and f"Running command {upload_logs} (upload_logs)" in log
    assert (data_dir / "token").read_text().strip() not in log
    assert listed()["reported"]["config"] == {"log_level": "DEBUG", "heartbeat_interval": 10.0, "sync_interval": 10.0}
    health = listed()["last_status"]  # the heartbeat, with the machine's part
    assert health is not None, output
    assert health["disk_bytes"] >= health["free_disk_bytes"] > 0
    assert health["system_uptime_s"] > 0 and health["kernel"] and "fs_errors" in health and "under_voltage" in health
    assert listed()["alerts"] == []
    assert "Running command" in output and resync in output


def test_run_without_a_central_starts_syncing_once_activated(central: Central, organisation: int, passes: list[str],
                                                            tmp_path: Path) -> None:  # fmt: skip
    """A new Pi starts before it knows its central; `activate` is handed to the running daemon, which syncs
    at once, without a restart (and without a second process writing the daemon's files)."""
    data_dir = tmp_path / "data"
    port = free_port()
    kiosk = f"http://127.0.0.1:{port}"
    with running_daemon(data_dir, port) as daemon:
        state = wait_for(lambda: requests.get(kiosk + "/api/state", timeout=5).json(), "the kiosk to answer")
        assert state["sync"] == {}  # no central known: no worker
        wrong = aptic_terminal("activate", "--central", central.url, "--kit", "AK-0", "--code", "X", data_dir=data_dir)
        assert wrong.returncode == 1 and wrong.stderr.strip()

        kit, code = central.add_kit(organisation)
        out = aptic_terminal("activate", "--central", central.url, "--kit", kit, "--code", code, "--pin", "2468",
                             data_dir=data_dir)  # fmt: skip
        assert out.returncode == 0 and out.stdout.startswith("Terminal activé"), out.stderr

        def online() -> dict | None:
            sync = requests.get(kiosk + "/api/state", timeout=5).json()["sync"]
            return sync if sync.get("online") else None

        wait_for(online, "the daemon to sync with the central it was activated for")
        answer = requests.post(kiosk + "/api/check", json={"code": passes[2]},
                               headers={"X-CSRF-Token": state["csrf"]}, timeout=5).json()  # fmt: skip
        assert answer["reason"] == "ok" and answer["provisional"] is False  # judged by the central, online
    log = daemon.stdout.read() if daemon.stdout else ""
    assert daemon.returncode == 0, log
    assert code not in log  # the activation code is a secret: never in a log
    status = json.loads(aptic_terminal("status", "--json", data_dir=data_dir).stdout)
    assert status["activation"] == "activated" and status["central_url"] == central.url  # the daemon kept it
    assert not (data_dir / "control.sock").exists()
