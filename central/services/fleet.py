"""The minimal fleet side: devices report a heartbeat and read their desired state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from central import schema as t
from central.db import utc


def list_devices(conn: Connection, organisation_id: int | None = None) -> list[dict[str, Any]]:
    """Devices with their kit and what they last said: what an operator needs before revoking one."""
    query = (
        select(t.devices, t.kits.c.kit_number).join(t.kits, t.kits.c.id == t.devices.c.kit_id).order_by(t.devices.c.id)
    )
    if organisation_id is not None:
        query = query.where(t.devices.c.organisation_id == organisation_id)

    def when(value: datetime | None) -> str | None:
        return None if value is None else utc(value).isoformat()

    return [
        {
            "id": d.id,
            "organisation_id": d.organisation_id,
            "kit_number": d.kit_number,
            "serial": d.serial,
            "model": d.model,
            "software_version": d.software_version,
            "activated_at": when(d.activated_at),
            "revoked_at": when(d.revoked_at),
            "last_seen_at": when(d.last_seen_at),
            "last_status": d.last_status,
        }
        for d in conn.execute(query)
    ]


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
