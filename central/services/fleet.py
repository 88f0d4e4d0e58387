"""The minimal fleet side: devices report a heartbeat and read their desired state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from central import schema as t


def heartbeat(conn: Connection, device_id: int, status: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Record that a device is alive, with what it says about itself."""
    values: dict[str, Any] = {"last_seen_at": now, "last_status": status}
    if status.get("software_version"):
        values["software_version"] = status["software_version"]
    conn.execute(update(t.devices).where(t.devices.c.id == device_id).values(**values))
    return {"status": "ok", "server_time": now.isoformat()}


def desired_state(conn: Connection, device_id: int, now: datetime) -> dict[str, Any]:
    """What the central wants the device to be. Nothing is managed remotely yet: no version pin, no commands."""
    device = conn.execute(select(t.devices.c.id, t.devices.c.organisation_id).where(t.devices.c.id == device_id)).one()
    return {
        "device_id": device.id,
        "organisation_id": device.organisation_id,
        "software_version": None,
        "commands": [],
        "server_time": now.isoformat(),
    }
