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
