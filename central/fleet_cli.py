"""``aptic-central fleet``: the operator's commands for the fleet (see central/services/fleet.py).

::

    aptic-central fleet list [--organisation N] [--alerts] devices, their alerts, what they said and applied
    aptic-central fleet config --organisation 3            the settings at one level (and, for a device, merged)
    aptic-central fleet config --fleet log_level=INFO heartbeat_interval=120
    aptic-central fleet config --device 12 point_id=null --unset log_level
    aptic-central fleet send 12 resync --wait 120          queue a command, follow it until it ends
    aptic-central fleet send 12 screenshot --wait 120 --artifact screen.png
    aptic-central fleet command ID                         where a command stands
    aptic-central fleet command ID --artifact logs.tar.gz  and the file it brought back (upload_logs, screenshot)

Signed releases (``central/releases.py``; the offline keys are files kept off the central)::

    aptic-central fleet keygen KEY.pem                     a new ed25519 key (root or targets), mode 0600
    aptic-central fleet init-releases --root-key R1.pem --root-key R2.pem --root-key R3.pem --threshold 2 \
                                      --targets-key T.pem
    aptic-central fleet publish BUNDLE.tar --version 0.3.0 --targets-key T.pem [--arch arm64]
    aptic-central fleet releases                           what is published
    aptic-central fleet refresh-releases                   re-sign the timestamp (daily, from cron or a timer)
    aptic-central fleet rollout-start 0.3.0 --percent 10 [--devices 4,7]
    aptic-central fleet rollout-pause ID | rollout-resume ID | rollout-widen ID --percent 50 [--devices 9]

A value is read as JSON when it parses (``30``, ``null``, ``true``), as text otherwise (``INFO``). The settings
and what they mean: ``aptic.settings``.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from aptic import settings as remote
from central import schema as t
from central.services import artifacts, fleet
from central.services.common import ServiceError, system_clock
from terminal.durable import atomic_write_bytes


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


def _save_artifact(engine: Any, command: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """Write the command's file to ``path`` (0600: logs say what a terminal did); the command with ``saved``."""
    described, data = artifacts.fetch(engine, command["id"])
    atomic_write_bytes(Path(path), data, mode=0o600)
    saved = {"path": path, "size": described["size"], "content_type": described["content_type"]}
    return {**command, "saved": saved}, f"\n{path}: {described['size']} bytes, {described['content_type']}"


def cmd_send(args: argparse.Namespace, engine: Any, out: Any) -> int:
    sent = fleet.send_command(engine, args.device, args.kind, system_clock(), ttl=timedelta(hours=args.ttl_hours))
    deadline = time.monotonic() + args.wait
    current = sent
    while current["status"] not in fleet.TERMINAL and time.monotonic() < deadline:
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))  # the device acknowledges when it polls
        current = fleet.command(engine, sent["id"], system_clock())
    saved = ""
    if args.artifact and current["status"] == "done":
        current, saved = _save_artifact(engine, current, args.artifact)
    out(current, _command_text(current) + saved)
    return 0 if args.wait == 0 or current["status"] == "done" else 1


def cmd_command(args: argparse.Namespace, engine: Any, out: Any) -> int:
    current = fleet.command(engine, args.id, system_clock())
    saved = ""
    if args.artifact:
        current, saved = _save_artifact(engine, current, args.artifact)
    out(current, _command_text(current) + saved)
    return 0


def _repository(args: argparse.Namespace) -> Any:
    from central import config

    return config.settings(args.db, args.data_dir).data_dir / "tuf"


def cmd_keygen(args: argparse.Namespace, engine: Any, out: Any) -> int:
    from central import releases

    keyid = releases.generate_key(Path(args.path))
    out({"path": args.path, "keyid": keyid}, f"{args.path}: ed25519 key {keyid} (keep it off the central)")
    return 0


def cmd_init_releases(args: argparse.Namespace, engine: Any, out: Any) -> int:
    from central import releases

    try:
        repo = releases.init_repository(_repository(args), [Path(k) for k in args.root_key], args.threshold,
                                        Path(args.targets_key))  # fmt: skip
    except releases.ReleaseError as error:
        raise ServiceError(400, "invalid_release", str(error)) from None
    out({"repository": str(repo.directory)}, f"release repository made in {repo.directory}")
    return 0


def cmd_publish(args: argparse.Namespace, engine: Any, out: Any) -> int:
    from central import releases

    try:
        result = releases.publish(_repository(args), Path(args.bundle), args.version, Path(args.targets_key),
                                  args.arch)  # fmt: skip
    except (releases.ReleaseError, FileNotFoundError) as error:
        raise ServiceError(400, "invalid_release", str(error)) from None
    out(result, f"published {result['target']} ({result['arch']}, {result['length']} bytes, sha256 {result['sha256']})")
    return 0


def cmd_releases(args: argparse.Namespace, engine: Any, out: Any) -> int:
    from central import releases

    rows = releases.releases(_repository(args))
    lines = [f"{r['version']}  {r['arch']}  {r['length']} bytes  {r['sha256']}" for r in rows]
    out(rows, "\n".join(lines) or "no release")
    return 0


def cmd_refresh_releases(args: argparse.Namespace, engine: Any, out: Any) -> int:
    from central import releases

    result = releases.refresh(_repository(args))
    out(result, f"timestamp {result['timestamp_version']}, valid until {result['expires']}")
    return 0


def _rollout_text(r: dict[str, Any]) -> str:
    return (f"rollout {r['id']}: {r['version']} to {r['percent']} % and {len(r['devices'])} listed device(s), "
            f"{r['status']}: {r['picked']} picked, {r['running']} running it")  # fmt: skip


def cmd_rollout_start(args: argparse.Namespace, engine: Any, out: Any) -> int:
    from central import releases

    published = [r["version"] for r in releases.releases(_repository(args))]
    if args.version not in published:
        raise ServiceError(400, "invalid_release", f"{args.version} is not published ({', '.join(published)})")
    result = fleet.start_rollout(engine, args.version, system_clock(), args.percent, _ids(args.devices))
    out(result, _rollout_text(result))
    return 0


def cmd_rollout_change(args: argparse.Namespace, engine: Any, out: Any) -> int:
    status = {"rollout-pause": "paused", "rollout-resume": "active"}.get(args.fleet_command)
    result = fleet.change_rollout(engine, args.id, system_clock(), status=status,
                                  percent=getattr(args, "percent", None),
                                  add_devices=_ids(getattr(args, "devices", None)))  # fmt: skip
    out(result, _rollout_text(result))
    return 0


def _ids(text: str | None) -> list[int]:
    return [int(part) for part in (text or "").split(",") if part.strip()]


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
    p.add_argument("--artifact", metavar="FILE", help="once done, write the file it brought back to FILE")
    p = command("command", cmd_command, "where a command stands")
    p.add_argument("id")
    p.add_argument("--artifact", metavar="FILE", help="write the file it brought back (upload_logs: .tar.gz, "
                   "screenshot: .png) to FILE")  # fmt: skip

    p = command("keygen", cmd_keygen, "make an offline ed25519 key (root or targets) in a new file")
    p.add_argument("path")
    p = command("init-releases", cmd_init_releases, "make the signed-release repository")
    p.add_argument("--root-key", action="append", required=True, help="a root key file (give each)")
    p.add_argument("--threshold", type=int, default=2, help="root keys needed to sign a new root (default 2)")
    p.add_argument("--targets-key", required=True, help="the targets key file (it signs every publication)")
    p = command("publish", cmd_publish, "publish a release bundle, signed with the offline targets key")
    p.add_argument("bundle")
    p.add_argument("--version", required=True)
    p.add_argument("--arch", choices=("amd64", "arm64"), help="default: what the bundle's RELEASE.json says")
    p.add_argument("--targets-key", required=True)
    command("releases", cmd_releases, "the published releases")
    command("refresh-releases", cmd_refresh_releases, "re-sign the timestamp (run daily)")
    p = command("rollout-start", cmd_rollout_start, "roll a published release out to a share and/or devices")
    p.add_argument("version")
    p.add_argument("--percent", type=int, default=0)
    p.add_argument("--devices", help="device ids, comma-separated: these first")
    for name, text in (("rollout-pause", "pause a rollout"), ("rollout-resume", "resume a paused rollout"),
                       ("rollout-widen", "widen a rollout: a larger share, more devices")):  # fmt: skip
        p = command(name, cmd_rollout_change, text)
        p.add_argument("id", type=int)
        if name == "rollout-widen":
            p.add_argument("--percent", type=int)
            p.add_argument("--devices")
