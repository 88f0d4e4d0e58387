"""``aptic-central fleet``: the operator's commands for the fleet (see central/services/fleet.py).

::

    aptic-central fleet list [--organisation N] [--alerts] devices, their alerts, what they said and applied
    aptic-central fleet config --organisation 3            the settings at one level (and, for a device, merged)
    aptic-central fleet config --fleet log_level=INFO heartbeat_interval=120
    aptic-central fleet config --device 12 point_id=null --unset log_level
    aptic-central fleet send 12 resync --wait 120          queue a command, follow it until it ends
    aptic-central fleet command ID                         where a command stands

A value is read as JSON when it parses (``30``, ``null``, ``true``), as text otherwise (``INFO``). The settings
and what they mean: ``aptic.settings``.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from aptic import settings as remote
from central import schema as t
from central.services import fleet
from central.services.common import ServiceError, system_clock


def _parse_assignments(items: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise ServiceError(400, "invalid_request", f"« {item} » : attendu NOM=VALEUR.")
        try:
            values[name] = json.loads(raw)
        except ValueError:
            values[name] = raw
    return values


def _level(args: argparse.Namespace) -> tuple[str, int]:
    if args.fleet:
        return "fleet", 0
    if args.organisation is not None:
        return "organisation", args.organisation
    return "device", args.device


def cmd_list(args: argparse.Namespace, engine: Any, out: Any) -> int:
    with engine.connect() as conn:
        rows = fleet.list_devices(conn, args.organisation, system_clock())
    if args.alerts:
        rows = [row for row in rows if row["alerts"]]
    lines = []
    for d in rows:
        state = "revoked" if d["revoked_at"] else "active"
        applied = "up to date" if d["applied_generation"] == d["generation"] else f"applied {d['applied_generation']}"
        lines.append(
            f"{d['id']:>4}  {d['kit_number']}  {d['serial']}  {d['software_version']}  {state}  "
            f"generation {d['generation']} ({applied})  last seen {d['last_seen_at'] or '-'}"
        )
        lines += [f"        ! {a['code']}: {a['message']}" for a in d["alerts"]]
    out(rows, "\n".join(lines) or "no device")
    return 0


def cmd_config(args: argparse.Namespace, engine: Any, out: Any) -> int:
    scope, ref = _level(args)
    values = _parse_assignments(args.assignments)
    if values or args.unset:
        result = fleet.set_settings(engine, scope, ref, values, system_clock(), unset=args.unset)
    else:
        with engine.connect() as conn:
            row = conn.execute(
                select(t.fleet_settings.c.settings).where(
                    (t.fleet_settings.c.scope == scope) & (t.fleet_settings.c.ref == ref)
                )
            ).first()
            result = {"scope": scope, "ref": ref, "settings": row.settings if row else {}}
            if scope == "device":
                device = conn.execute(
                    select(t.devices.c.id, t.devices.c.organisation_id).where(t.devices.c.id == ref)
                ).first()
                if device is None:
                    raise ServiceError(404, "unknown_device", "Appareil inconnu.")
                result["config"] = fleet.config_of(conn, device.id, device.organisation_id)
    lines = [f"{scope}{'' if scope == 'fleet' else ' ' + str(ref)}:"]
    lines += [f"  {name} = {json.dumps(value)}" for name, value in sorted(result["settings"].items())] or ["  (none)"]
    if "config" in result:
        lines.append("merged for the device:")
        lines += [f"  {name} = {json.dumps(value)}" for name, value in sorted(result["config"].items())]
    out(result, "\n".join(lines))
    return 0


def _command_text(c: dict[str, Any]) -> str:
    result = "" if c["result"] is None else f"  {json.dumps(c['result'], ensure_ascii=False)}"
    return f"{c['id']}  device {c['device_id']}  {c['kind']}  {c['status']}  until {c['not_after']}{result}"


def cmd_send(args: argparse.Namespace, engine: Any, out: Any) -> int:
    sent = fleet.send_command(engine, args.device, args.kind, system_clock(), ttl=timedelta(hours=args.ttl_hours))
    deadline = time.monotonic() + args.wait
    current = sent
    while current["status"] not in fleet.TERMINAL and time.monotonic() < deadline:
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))  # the device acknowledges when it polls
        current = fleet.command(engine, sent["id"], system_clock())
    out(current, _command_text(current))
    return 0 if args.wait == 0 or current["status"] == "done" else 1


def cmd_command(args: argparse.Namespace, engine: Any, out: Any) -> int:
    current = fleet.command(engine, args.id, system_clock())
    out(current, _command_text(current))
    return 0


def add_commands(sub: Any, common: argparse.ArgumentParser, run: Any) -> None:
    """Register ``fleet`` and its subcommands; ``run(func)`` wraps one into an ``args.func``."""
    group = sub.add_parser("fleet", help="the fleet: devices, settings, commands", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    fleet_sub = group.add_subparsers(dest="fleet_command", required=True, metavar="FLEET_COMMAND")

    def command(name: str, func: Any, text: str) -> argparse.ArgumentParser:
        p = fleet_sub.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(func=run(func))
        return p

    p = command("list", cmd_list, "devices with their health, alerts, generation and what they applied")
    p.add_argument("--organisation", type=int)
    p.add_argument("--alerts", action="store_true", help="only the devices with an alert")
    p = command("config", cmd_config, "show or set remote settings at one level")
    level = p.add_mutually_exclusive_group(required=True)
    level.add_argument("--fleet", action="store_true", help="the fleet's defaults")
    level.add_argument("--organisation", type=int, help="an organisation's overrides")
    level.add_argument("--device", type=int, help="one device's overrides")
    p.add_argument("assignments", nargs="*", metavar="NAME=VALUE",
                   help=f"settings: {', '.join(sorted(remote.SETTINGS))}")  # fmt: skip
    p.add_argument("--unset", action="append", default=[], metavar="NAME", help="remove a setting at this level")
    p = command("send", cmd_send, "send a command to a device, and follow it with --wait")
    p.add_argument("device", type=int)
    p.add_argument("kind", choices=fleet.COMMANDS)
    p.add_argument("--ttl-hours", type=float, default=24.0, help="not run after this many hours (default 24)")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to follow it (exit 1 unless it is done)")
    p = command("command", cmd_command, "where a command stands")
    p.add_argument("id")
