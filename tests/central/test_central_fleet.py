"""The minimal fleet side: heartbeat, desired state, and the operator's list of devices."""

from __future__ import annotations

import json

from central import cli


def test_heartbeat_desired_state_and_device_list(central, capsys, monkeypatch):
    org, _ = central.organisation()
    device = central.device(org, "pi-42")
    r = device.post("/api/v1/heartbeat", json={"software_version": "0.2.0", "queued_scans": 3, "clock_synced": True})
    assert r.status_code == 200 and r.json()["status"] == "ok"
    state = device.get("/api/v1/desired-state").json()
    assert state["device_id"] == device.id and state["commands"] == []
    assert device.post("/api/v1/heartbeat", json={"software_version": 7}).status_code == 400

    monkeypatch.setenv("APTIC_CENTRAL_SECRET", "x")
    db = central.settings.db_url
    assert cli.main(["devices", "--db", db, "--data-dir", str(central.settings.data_dir), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["serial"] == "pi-42" and row["software_version"] == "0.2.0"
    assert row["last_status"]["queued_scans"] == 3 and row["revoked_at"] is None and row["last_seen_at"]
    assert cli.main(["revoke-device", "--db", db, "--data-dir", str(central.settings.data_dir), str(device.id)]) == 0
    assert device.get("/api/v1/desired-state").status_code == 401


# -- desired state: settings at three levels, generation and ETag ----------------------------------------------


def test_settings_merge_fleet_then_organisation_then_device_and_an_unchanged_device_gets_304(central, clock):
    from central.services import fleet

    org, _ = central.organisation()
    other, _ = central.organisation("Centre social")
    a, b = central.device(org, "pi-a"), central.device(other, "pi-b")
    first = a.get("/api/v1/desired-state")
    assert first.status_code == 200 and first.json()["config"] == {} and first.json()["commands"] == []
    tag = first.headers["ETag"]
    again = a.get("/api/v1/desired-state", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == tag

    fleet.set_settings(central.engine, "fleet", 0, {"log_level": "info", "heartbeat_interval": 120}, clock())
    fleet.set_settings(central.engine, "organisation", org, {"log_level": "DEBUG"}, clock())
    fleet.set_settings(central.engine, "device", b.id, {"point_id": None, "heartbeat_interval": 30}, clock())
    changed = a.get("/api/v1/desired-state", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    assert changed.json()["config"] == {"log_level": "DEBUG", "heartbeat_interval": 120.0}
    assert changed.json()["generation"] > first.json()["generation"]
    assert b.get("/api/v1/desired-state").json()["config"] == {
        "log_level": "INFO", "heartbeat_interval": 30.0, "point_id": None,
    }  # fmt: skip

    # A device's own change leaves the others' documents (and their ETags) alone.
    tag_a = changed.headers["ETag"]
    fleet.set_settings(central.engine, "device", b.id, {}, clock(), unset=["heartbeat_interval"])
    assert a.get("/api/v1/desired-state", headers={"If-None-Match": tag_a}).status_code == 304
    assert b.get("/api/v1/desired-state").json()["config"]["heartbeat_interval"] == 120.0


def test_a_setting_the_terminal_could_not_apply_is_refused_when_typed(central, clock):
    import pytest

    from central.services import fleet
    from central.services.common import ServiceError

    org, _ = central.organisation()
    device = central.device(org)
    for bad in ({"heartbeat_interval": 1}, {"log_level": "LOUD"}, {"heartbeat_intervall": 60}, {"point_id": True}):
        with pytest.raises(ServiceError) as refused:
            fleet.set_settings(central.engine, "organisation", org, bad, clock())
        assert refused.value.status == 400 and refused.value.fields["settings"]
    with pytest.raises(ServiceError):
        fleet.set_settings(central.engine, "device", 9999, {"log_level": "INFO"}, clock())
    assert device.get("/api/v1/desired-state").json()["config"] == {}


# -- commands: delivered with the desired state, acknowledged forward only --------------------------------------


def test_a_command_goes_out_with_the_desired_state_and_its_acks_only_move_forward(central, clock):
    from central.services import fleet

    org, _ = central.organisation()
    device = central.device(org)
    tag = device.get("/api/v1/desired-state").headers["ETag"]
    sent = fleet.send_command(central.engine, device.id, "resync", clock())
    assert sent["status"] == "pending"
    state = device.get("/api/v1/desired-state", headers={"If-None-Match": tag})
    assert state.status_code == 200
    [delivered] = state.json()["commands"]
    assert delivered["id"] == sent["id"] and delivered["kind"] == "resync"

    def ack(status: str, **result: object) -> dict:
        body = {"acks": [{"id": sent["id"], "status": status, "result": result or None}]}
        r = device.post("/api/v1/report", json=body)
        assert r.status_code == 200
        return r.json()

    assert ack("started")["acks"] == {sent["id"]: "started"}
    assert ack("received")["acks"] == {sent["id"]: "started"}  # late, duplicate: no step back, still a 200
    assert ack("done", pushed=3)["acks"] == {sent["id"]: "done"}
    assert ack("done", pushed=3)["acks"] == {sent["id"]: "done"}  # the same report again changes nothing
    assert ack("failed")["acks"] == {sent["id"]: "done"}  # a terminal state is final
    assert fleet.command(central.engine, sent["id"], clock())["result"] == {"pushed": 3}
    # Done, it leaves the document (the generation stays: the device that finished it knows).
    assert device.get("/api/v1/desired-state").json()["commands"] == []
    unknown = device.post("/api/v1/report", json={"acks": [{"id": "not-mine", "status": "done"}]}).json()
    assert unknown["unknown"] == ["not-mine"] and unknown["acks"] == {}


def test_commands_are_only_the_devices_own_and_expire_unseen(central, clock):
    from datetime import timedelta

    from central.services import fleet

    org, _ = central.organisation()
    a, b = central.device(org, "pi-a"), central.device(org, "pi-b")
    reboot = fleet.send_command(central.engine, a.id, "reboot", clock(), ttl=timedelta(hours=1))
    assert b.get("/api/v1/desired-state").json()["commands"] == []
    stolen = b.post("/api/v1/report", json={"acks": [{"id": reboot["id"], "status": "done"}]}).json()
    assert stolen["unknown"] == [reboot["id"]]  # another device cannot acknowledge it
    clock.advance(hours=2)
    assert fleet.command(central.engine, reboot["id"], clock())["status"] == "expired"  # never fetched
    assert [c["id"] for c in a.get("/api/v1/desired-state").json()["commands"]] == [reboot["id"]]  # it says so
    assert a.post("/api/v1/report", json={"acks": [{"id": reboot["id"], "status": "expired"}]}).json()["acks"] == {
        reboot["id"]: "expired"
    }


def test_a_report_records_what_the_device_applied_and_refuses_a_malformed_one(central, clock):
    from central.services import fleet

    org, _ = central.organisation()
    device = central.device(org)
    generation = device.get("/api/v1/desired-state").json()["generation"]
    body = {"applied_generation": generation, "config": {"log_level": "INFO"}, "release": {"running": "0.1.0"}}
    assert device.post("/api/v1/report", json=body).status_code == 200
    with central.engine.connect() as conn:
        [row] = fleet.list_devices(conn)
    assert row["applied_generation"] == generation and row["reported"]["release"] == {"running": "0.1.0"}
    for bad in ({"acks": [{"id": "x", "status": "maybe"}]}, {"applied_generation": -1}, {"acks": "x"}):
        assert device.post("/api/v1/report", json=bad).status_code == 400


def test_the_operator_sets_settings_and_follows_a_command_from_the_command_line(central, capsys, monkeypatch):
    import threading
    import time

    monkeypatch.setenv("APTIC_CENTRAL_SECRET", "x")
    base = ["--db", central.settings.db_url, "--data-dir", str(central.settings.data_dir), "--json"]

    def run(*argv: str) -> tuple[int, dict]:
        code = cli.main([*argv[:2], *base, *argv[2:]])
        return code, json.loads(capsys.readouterr().out)

    org, _ = central.organisation()
    device = central.device(org)
    code, out = run("fleet", "config", "--organisation", str(org), "log_level=debug", "heartbeat_interval=45")
    assert code == 0 and out["settings"] == {"log_level": "DEBUG", "heartbeat_interval": 45.0}
    code, out = run("fleet", "config", "--device", str(device.id), "point_id=null")
    code, out = run("fleet", "config", "--device", str(device.id))
    assert out["config"] == {"log_level": "DEBUG", "heartbeat_interval": 45.0, "point_id": None}
    assert cli.main(["fleet", "config", *base, "--fleet", "heartbeat_interval=2"]) == 1  # out of range
    assert "heartbeat_interval" in capsys.readouterr().out
    assert device.get("/api/v1/desired-state").json()["config"]["log_level"] == "DEBUG"

    # A command followed until the device (here, a thread polling as a terminal would) says it is done.
    def the_device() -> None:
        tag = None
        while True:
            state = device.get("/api/v1/desired-state", headers={"If-None-Match": tag} if tag else {})
            if state.status_code == 200 and state.json()["commands"]:
                [command] = state.json()["commands"]
                device.post("/api/v1/report", json={"acks": [{"id": command["id"], "status": "done"}]})
                return
            tag = state.headers["ETag"]
            time.sleep(0.1)  # a terminal polls every few minutes; this one, often

    polling = threading.Thread(target=the_device, daemon=True)
    polling.start()
    code, out = run("fleet", "send", str(device.id), "resync", "--wait", "60")
    polling.join(timeout=10)
    assert code == 0 and out["status"] == "done" and out["kind"] == "resync"
    code, followed = run("fleet", "command", out["id"])
    assert followed["status"] == "done"
    code, devices = run("fleet", "list")
    assert devices[0]["generation"] > 1


def test_heartbeats_become_alerts_an_operator_can_act_on(central, clock):
    from central.services import fleet

    org, _ = central.organisation()
    sick, well, silent = central.device(org, "pi-sick"), central.device(org, "pi-well"), central.device(org, "pi-0")
    fine = {"software_version": "0.2.0", "clock_synced": True, "outbox_pending": 0, "oldest_pending_age_s": None,
            "free_disk_bytes": 3 * 2**30, "disk_bytes": 4 * 2**30, "fs_errors": 0, "under_voltage": False,
            "screen": {"page_quiet_s": 12.0}}  # fmt: skip
    assert well.post("/api/v1/heartbeat", json=fine).status_code == 200
    bad = {**fine, "clock_synced": False, "outbox_pending": 7, "oldest_pending_age_s": 3 * 86400,
           "free_disk_bytes": 50 * 2**20, "fs_errors": 2, "under_voltage": True,
           "screen": {"page_quiet_s": 900}}  # fmt: skip
    assert sick.post("/api/v1/heartbeat", json=bad).status_code == 200

    def codes(now):
        with central.engine.connect() as conn:
            return {d["serial"]: [a["code"] for a in d["alerts"]] for d in fleet.list_devices(conn, org, now)}

    assert codes(clock()) == {
        "pi-well": [],
        "pi-sick": ["scans_pending", "clock_unsynced", "disk_low", "fs_errors", "under_voltage", "screen"],
        "pi-0": ["offline"],  # activated, never heard since
    }
    clock.advance(hours=25)
    assert codes(clock())["pi-well"] == ["offline"]
    assert silent.post("/api/v1/heartbeat", json=fine).status_code == 200
    assert codes(clock())["pi-0"] == []
    with central.engine.connect() as conn:
        [sick_row] = [d for d in fleet.list_devices(conn, org, clock()) if d["serial"] == "pi-sick"]
    messages = {a["code"]: a["message"] for a in sick_row["alerts"]}
    assert messages["scans_pending"].startswith("7 scan(s) en attente depuis plus de 48 h")
    assert messages["offline"].startswith("Hors ligne depuis plus de 24 h")
