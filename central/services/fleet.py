"""The fleet: what each device should be (its desired state), what it says it is, and commands sent to it.

A device polls ``GET /desired-state`` with the ETag of the last document it applied; the document carries a
``generation`` that every change the operator makes to the device bumps in the same transaction (its
settings at any level, a command sent), so an unchanged device costs the token lookup and a 304. It then reports
what it applied and acknowledges commands (``POST /report``). Acknowledgements only move a command forward:
a duplicate or a late one changes nothing and still gets a 200, so a device may repeat its report freely.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from aptic import settings as remote
from central import schema as t
from central.db import utc, write_transaction
from central.services import artifacts
from central.services.common import ServiceError, load_organisation

SCOPES = ("fleet", "organisation", "device")
COMMANDS = ("reboot", "resync", "restart_kiosk", "upload_logs", "screenshot", "reactivate")
# A command moves forward only: pending (on the central), received and started (said by the device), then
# one terminal state.
RANK = {"pending": 0, "received": 1, "started": 2, "done": 3, "failed": 3, "expired": 3, "interrupted": 3}
TERMINAL = frozenset(s for s, rank in RANK.items() if rank == 3)
ACKS = tuple(s for s in RANK if s != "pending")
DEFAULT_TTL = timedelta(hours=24)
POLL_AFTER_S = 300  # unless the settings say otherwise (poll_interval)


def list_devices(
    conn: Connection, organisation_id: int | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Devices with their kit, what they last said and (given ``now``) their alerts."""
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
            "generation": d.generation,
            "applied_generation": d.applied_generation,
            "reported": d.reported,
            "reported_at": when(d.reported_at),
            "alerts": alerts(d, now) if now is not None and d.revoked_at is None else [],
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


# -- health -----------------------------------------------------------------------------------------------

OFFLINE_AFTER = timedelta(hours=24)
PENDING_TOO_LONG = timedelta(hours=48)
DISK_LOW_BYTES, DISK_LOW_SHARE = 200 * 2**20, 0.10
SCREEN_QUIET_S = 300  # the screen's watchdog restarts a page quiet for 75 s: five minutes means it cannot


def alerts(device: Any, now: datetime) -> list[dict[str, str]]:
    """What an operator should act on for one device, from its last heartbeat and report: a code, and what it
    means in French (the operators are), with what to do."""
    found: list[dict[str, str]] = []

    def alert(code: str, message: str) -> None:
        found.append({"code": code, "message": message})

    seen = utc(device.last_seen_at)
    if seen is None or now - seen > OFFLINE_AFTER:
        since = "jamais vu" if seen is None else f"vu pour la dernière fois le {seen:%d/%m/%Y %H:%M} UTC"
        alert("offline", f"Hors ligne depuis plus de 24 h ({since}) : vérifier l'alimentation et le réseau du lieu.")
    status = device.last_status or {}
    pending_s = status.get("oldest_pending_age_s")
    if isinstance(pending_s, int | float) and pending_s > PENDING_TOO_LONG.total_seconds():
        alert("scans_pending", f"{status.get('outbox_pending', '?')} scan(s) en attente depuis plus de 48 h : "
              "le lieu ne sera pas payé tant qu'ils ne sont pas envoyés.")  # fmt: skip
    if status.get("clock_synced") is False:
        alert("clock_unsynced", "Horloge non synchronisée : les dates des scans sont incertaines (NTP bloqué ?).")
    free, total = status.get("free_disk_bytes"), status.get("disk_bytes")
    if isinstance(free, int) and (free < DISK_LOW_BYTES or (isinstance(total, int) and free < DISK_LOW_SHARE * total)):
        alert("disk_low", f"Carte presque pleine ({free // 2**20} Mio libres).")
    if isinstance(status.get("fs_errors"), int) and status["fs_errors"] > 0:
        alert("fs_errors", f"{status['fs_errors']} erreur(s) du système de fichiers : changer la carte SD.")
    if status.get("under_voltage") is True:
        alert("under_voltage", "Sous-tension détectée : remplacer l'alimentation du Raspberry Pi.")
    screen = status.get("screen") or {}
    if isinstance(screen.get("page_quiet_s"), int | float) and screen["page_quiet_s"] > SCREEN_QUIET_S:
        alert("screen", "L'écran du kiosque ne répond plus depuis plus de 5 minutes.")
    release = (device.reported or {}).get("release") or {}
    if release.get("phase") == "rolled_back":
        bad = ", ".join(release.get("bad") or []) or "?"
        alert("rolled_back", f"Mise à jour {bad} annulée : la version précédente tourne.")
    return found


# -- settings ---------------------------------------------------------------------------------------------


def _devices_of(scope: str, ref: int) -> Any:
    """The devices a settings level reaches, as a WHERE clause."""
    if scope == "fleet":
        return t.devices.c.id.isnot(None)
    if scope == "organisation":
        return t.devices.c.organisation_id == ref
    return t.devices.c.id == ref


def _bump(conn: Connection, where: Any) -> None:
    conn.execute(update(t.devices).where(where).values(generation=t.devices.c.generation + 1))


def set_settings(
    engine: Engine,
    scope: str,
    ref: int,
    values: Mapping[str, Any],
    now: datetime,
    unset: Sequence[str] = (),
) -> dict[str, Any]:
    """Set (and ``unset``) settings at one level; the devices it reaches get a new generation."""
    if scope not in SCOPES:
        raise ServiceError(400, "invalid_request", "Niveau de réglage inconnu.", {"scope": " | ".join(SCOPES)})
    try:
        checked = remote.check(values)
    except remote.SettingError as error:
        raise ServiceError(
            400, "invalid_setting", "Réglage inconnu ou hors limites.", {"settings": str(error)}
        ) from None
    unknown = [name for name in unset if name not in remote.SETTINGS]
    if unknown:
        raise ServiceError(400, "invalid_setting", "Réglage inconnu.", {"unset": ", ".join(unknown)})
    ref = 0 if scope == "fleet" else ref
    with write_transaction(engine) as conn:
        if scope == "organisation":
            load_organisation(conn, ref)
        elif scope == "device" and conn.execute(select(t.devices.c.id).where(t.devices.c.id == ref)).first() is None:
            raise ServiceError(404, "unknown_device", "Appareil inconnu.")
        key = (t.fleet_settings.c.scope == scope) & (t.fleet_settings.c.ref == ref)
        row = conn.execute(select(t.fleet_settings.c.settings).where(key)).first()
        merged = {k: v for k, v in remote.merge(row.settings if row else {}, checked).items() if k not in unset}
        if row is None:
            conn.execute(insert(t.fleet_settings).values(scope=scope, ref=ref, settings=merged, updated_at=now))
        else:
            conn.execute(update(t.fleet_settings).where(key).values(settings=merged, updated_at=now))
        _bump(conn, _devices_of(scope, ref))
    return {"scope": scope, "ref": ref, "settings": merged}


def config_of(conn: Connection, device_id: int, organisation_id: int) -> dict[str, Any]:
    """The device's settings: the fleet's, then its organisation's, then its own."""
    rows = conn.execute(
        select(t.fleet_settings.c.scope, t.fleet_settings.c.settings).where(
            ((t.fleet_settings.c.scope == "fleet") & (t.fleet_settings.c.ref == 0))
            | ((t.fleet_settings.c.scope == "organisation") & (t.fleet_settings.c.ref == organisation_id))
            | ((t.fleet_settings.c.scope == "device") & (t.fleet_settings.c.ref == device_id))
        )
    ).all()
    layers = {row.scope: row.settings for row in rows}
    return remote.merge(*(layers.get(scope, {}) for scope in SCOPES))


# -- desired state ----------------------------------------------------------------------------------------


def etag(generation: int) -> str:
    """The desired state's entity tag (unquoted), from its generation alone."""
    return f"g{generation}"


def desired_state(conn: Connection, device: Any, now: datetime) -> dict[str, Any]:
    """What the central wants ``device`` (its authenticated row) to be: settings, software, commands."""
    config = config_of(conn, device.id, device.organisation_id)
    open_commands = conn.execute(
        select(t.commands)
        .where((t.commands.c.device_id == device.id) & t.commands.c.status.notin_(TERMINAL))
        .order_by(t.commands.c.created_at, t.commands.c.id)
    ).all()
    return {
        "device_id": device.id,
        "organisation_id": device.organisation_id,
        "generation": device.generation,
        "config": config,
        "software_version": target_version(conn, device.id),
        "commands": [
            {"id": c.id, "kind": c.kind, "args": c.args, "not_after": utc(c.not_after).isoformat()}
            for c in open_commands
        ],
        "poll_after_s": config.get("poll_interval", POLL_AFTER_S),
        "server_time": now.isoformat(),
    }


# -- rollouts of signed releases ------------------------------------------------------------------------------


def picks(rollout: Any, device_id: int) -> bool:
    """Whether ``rollout`` reaches the device: listed, or within its share by a stable hash of the two ids
    (widening a rollout from 10 to 50 % keeps the first 10 %)."""
    if device_id in (rollout.devices or []):
        return True
    bucket = int(hashlib.sha256(f"rollout:{device_id}".encode()).hexdigest()[:8], 16) % 100
    return bucket < rollout.percent


def target_version(conn: Connection, device_id: int) -> str | None:
    """The version of the newest active rollout that picks the device (None: no update wanted)."""
    rows = conn.execute(
        select(t.rollouts).where(t.rollouts.c.status == "active").order_by(t.rollouts.c.id.desc())
    ).all()
    return next((row.version for row in rows if picks(row, device_id)), None)


def start_rollout(engine: Engine, version: str, now: datetime, percent: int = 0,
                  devices: Sequence[int] = ()) -> dict[str, Any]:  # fmt: skip
    """Roll ``version`` (published with ``aptic-central release publish``) out to ``percent`` % of the fleet
    and to ``devices``."""
    if not 0 <= percent <= 100:
        raise ServiceError(400, "invalid_request", "Pourcentage entre 0 et 100.", {"percent": "0-100"})
    with write_transaction(engine) as conn:
        rollout_id = conn.execute(
            insert(t.rollouts).values(
                version=version,
                percent=percent,
                devices=sorted(set(devices)),
                status="active",
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        _bump(conn, _devices_of("fleet", 0))
    return rollout(engine, rollout_id)


def change_rollout(engine: Engine, rollout_id: int, now: datetime, *, status: str | None = None,
                   percent: int | None = None, add_devices: Sequence[int] = ()) -> dict[str, Any]:  # fmt: skip
    """Pause or resume a rollout, or widen it (a larger share, more devices); never narrowed: a device that
    updated keeps its version, and a rollback is a newer release."""
    with write_transaction(engine) as conn:
        row = conn.execute(select(t.rollouts).where(t.rollouts.c.id == rollout_id)).first()
        if row is None:
            raise ServiceError(404, "unknown_rollout", "Déploiement inconnu.")
        values: dict[str, Any] = {"updated_at": now}
        if status is not None:
            if status not in ("active", "paused"):
                raise ServiceError(400, "invalid_request", "État inconnu.", {"status": "active | paused"})
            values["status"] = status
        if percent is not None:
            if not row.percent <= percent <= 100:
                raise ServiceError(400, "invalid_request", "Un déploiement s'élargit, il ne se réduit pas.",
                                   {"percent": f"{row.percent}-100"})  # fmt: skip
            values["percent"] = percent
        if add_devices:
            values["devices"] = sorted({*row.devices, *add_devices})
        conn.execute(update(t.rollouts).where(t.rollouts.c.id == rollout_id).values(**values))
        _bump(conn, _devices_of("fleet", 0))
    return rollout(engine, rollout_id)


def rollout(engine: Engine, rollout_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(t.rollouts).where(t.rollouts.c.id == rollout_id)).one()
        devices = conn.execute(select(t.devices.c.id, t.devices.c.reported).where(t.devices.c.revoked_at.is_(None)))
        picked = [d for d in devices if picks(row, d.id)]
    running = sum(1 for d in picked if ((d.reported or {}).get("release") or {}).get("running") == row.version)
    return {"id": row.id, "version": row.version, "percent": row.percent, "devices": row.devices,
            "status": row.status, "picked": len(picked), "running": running}  # fmt: skip


# -- commands ---------------------------------------------------------------------------------------------


def send_command(
    engine: Engine,
    device_id: int,
    kind: str,
    now: datetime,
    args: Mapping[str, Any] | None = None,
    ttl: timedelta = DEFAULT_TTL,
) -> dict[str, Any]:
    """Queue a command for a device; it goes out with its next desired state."""
    if kind not in COMMANDS:
        raise ServiceError(400, "invalid_request", "Commande inconnue.", {"kind": " | ".join(COMMANDS)})
    if ttl <= timedelta(0):
        raise ServiceError(400, "invalid_request", "Durée de validité non valable.", {"ttl": "positive"})
    command_id = str(uuid.uuid4())
    with write_transaction(engine) as conn:
        device = conn.execute(select(t.devices.c.id, t.devices.c.revoked_at).where(t.devices.c.id == device_id)).first()
        if device is None or device.revoked_at is not None:
            raise ServiceError(404, "unknown_device", "Appareil inconnu ou révoqué.")
        conn.execute(
            insert(t.commands).values(
                id=command_id,
                device_id=device_id,
                kind=kind,
                args=dict(args or {}),
                status="pending",
                created_at=now,
                not_after=now + ttl,
                updated_at=now,
            )
        )
        _bump(conn, t.devices.c.id == device_id)
    return command(engine, command_id, now)


def command(engine: Engine, command_id: str, now: datetime) -> dict[str, Any]:
    """Where a command stands, with the file it brought back (``artifact``, without its bytes) if any."""
    with engine.connect() as conn:
        row = conn.execute(select(t.commands).where(t.commands.c.id == command_id)).first()
        if row is None:
            raise ServiceError(404, "unknown_command", "Commande inconnue.")
        return {**_command_dict(row, now), "artifact": artifacts.describe(conn, command_id)}


def commands_of(conn: Connection, device_id: int, now: datetime, limit: int = 20) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(t.commands)
        .where(t.commands.c.device_id == device_id)
        .order_by(t.commands.c.created_at.desc())
        .limit(limit)
    ).all()
    return [_command_dict(row, now) for row in rows]


def _command_dict(row: Any, now: datetime) -> dict[str, Any]:
    status = row.status
    if status == "pending" and utc(row.not_after) < now:
        status = "expired"  # never fetched before its expiry: the device will say so when it comes back
    return {
        "id": row.id,
        "device_id": row.device_id,
        "kind": row.kind,
        "args": row.args,
        "status": status,
        "result": row.result,
        "created_at": utc(row.created_at).isoformat(),
        "not_after": utc(row.not_after).isoformat(),
        "updated_at": utc(row.updated_at).isoformat(),
    }


# -- the device's report ------------------------------------------------------------------------------------


def report(engine: Engine, device_id: int, body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Record what the device applied and move its commands forward; the stored status of each ack'd one."""
    acks = {ack["id"]: ack for ack in body.get("acks") or []}
    stored: dict[str, str] = {}
    with write_transaction(engine) as conn:
        values: dict[str, Any] = {"reported_at": now, "last_seen_at": now}
        if body.get("applied_generation") is not None:
            values["applied_generation"] = body["applied_generation"]
            values["reported"] = {"config": body.get("config"), "release": body.get("release")}
        elif body.get("release") is not None:
            # The release moved on between two generations (staged, switched, rolled back): keep the config
            # the device last applied, take its release as it is now (the operator's alerts read it).
            before = conn.execute(select(t.devices.c.reported).where(t.devices.c.id == device_id)).scalar() or {}
            values["reported"] = {"config": before.get("config"), "release": body["release"]}
        conn.execute(update(t.devices).where(t.devices.c.id == device_id).values(**values))
        if acks:
            rows = conn.execute(
                select(t.commands.c.id, t.commands.c.status).where(
                    (t.commands.c.device_id == device_id) & t.commands.c.id.in_(list(acks))
                )
            ).all()
            for row in rows:
                ack = acks[row.id]
                if RANK[ack["status"]] > RANK[row.status]:
                    conn.execute(
                        update(t.commands)
                        .where((t.commands.c.id == row.id) & (t.commands.c.status == row.status))
                        .values(status=ack["status"], result=ack.get("result"), updated_at=now)
                    )
                    stored[row.id] = ack["status"]
                else:
                    stored[row.id] = row.status
            # No new generation for a finished command: the device that finished it knows, and one that asks
            # afresh no longer gets it. The generation counts the operator's changes only.
    unknown = [cid for cid in acks if cid not in stored]
    return {"status": "ok", "acks": stored, "unknown": unknown}
