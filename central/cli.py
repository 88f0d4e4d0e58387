"""``aptic-central``: run and administer a central (see docs/contracts.md, "Command lines").

Every command takes ``--db URL`` (default ``sqlite:///<data dir>/central.db``) and ``--data-dir`` (default
``$APTIC_CENTRAL_DATA`` or ``~/.local/share/aptic-central``; it holds the secret key). Commands bring the
schema up to date first, so a fresh machine needs nothing but ``aptic-central init-db`` or ``serve``.
With ``--json`` a command prints exactly one JSON document.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from aptic import referentiel
from aptic.pin import valid_pin
from central import config
from central.db import make_engine, migrate
from central.services import admin, statements
from central.services.common import ServiceError, system_clock

if TYPE_CHECKING:
    from provisioning.firstboot import Wifi

log = logging.getLogger("central")


def _engine(args: argparse.Namespace, pool_size: int = 2) -> tuple[config.Settings, Engine]:
    settings = config.settings(args.db, args.data_dir)
    engine = make_engine(settings.db_url, pool_size=pool_size)
    migrate(engine)
    return settings, engine


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, ensure_ascii=False) if getattr(args, "json", False) else text)


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the API: one process, or ``--workers`` processes sharing one listening socket.

    waitress runs Python code under one GIL per process, which caps a process near a thousand short requests
    per second; workers multiply that on a machine with more cores. The schema is migrated once, before they
    fork, and each worker opens its own database connections.
    """
    import socket

    _, engine = _engine(args)  # migrates
    engine.dispose()
    listener = socket.create_server((args.host, args.port), backlog=1024)
    log.info("central serving on http://%s:%d/api/v1 (%s, %d worker(s))", args.host, args.port,
             engine.url.get_backend_name(), args.workers)  # fmt: skip
    if args.workers <= 1:
        return _serve_worker(args, listener)
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                code = _serve_worker(args, listener)
            finally:
                os._exit(code)
        children.append(pid)

    def stop(signum: int, _frame: Any) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        while True:
            try:
                os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
    return 0


def _serve_worker(args: argparse.Namespace, listener: Any) -> int:
    import waitress

    from central.app import create_app

    # One pooled connection per waitress thread (and a spare): beyond the pool size, connections would be
    # opened and closed for every request.
    settings = config.settings(args.db, args.data_dir)
    # Off by default, as in gunicorn: at a thousand validity calls a second, a line each is a cost.
    logging.getLogger("central.access").setLevel(logging.INFO if args.access_log else logging.WARNING)
    engine = make_engine(settings.db_url, pool_size=args.threads + 2)
    app = create_app(settings, engine=engine)
    # Requests are short: hand the GIL over sooner than the default 5 ms so one busy thread does not make
    # seven others wait (it cuts the latency tail with 8 concurrent clients).
    sys.setswitchinterval(0.0005)
    # Everything loaded so far lives as long as the process: keep the cyclic collector from walking it again
    # and again (its full passes were the 70-100 ms worst cases of the validity bench on PostgreSQL).
    gc.collect()
    gc.freeze()
    waitress.serve(app, sockets=[listener], threads=args.threads, ident="aptic-central")
    return 0


def cmd_init_db(args: argparse.Namespace) -> int:
    _, engine = _engine(args)
    print(f"database ready: {engine.url.render_as_string()}")
    return 0


def cmd_add_organisation(args: argparse.Namespace) -> int:
    _, engine = _engine(args)
    if args.pin and not valid_pin(args.pin):  # refused before anything is written
        raise ServiceError(400, "invalid_pin", "Le code médiateur doit compter de 4 à 8 chiffres.")
    new_id = admin.add_organisation(engine, args.name, args.siret, system_clock(), catalogue=args.catalogue)
    if args.pin:
        admin.set_pin(engine, new_id, args.pin, system_clock())
    _print(args, {"id": new_id}, f"organisation {new_id}")
    return 0


def cmd_add_user(args: argparse.Namespace) -> int:
    """A console account. With ``--password-stdin`` the password is read from standard input (never from the
    command line, which other users can see); without it, a single-use link to choose one is printed."""
    from central.services import accounts

    _, engine = _engine(args)
    if args.organisation is None and not args.operator and args.funder is None:
        raise ServiceError(400, "missing_scope", "Indiquez --organisation ID, --funder NOM ou --operator.")
    if args.organisation is not None and args.role == "reader":
        raise ServiceError(400, "invalid_role", "Le rôle reader est celui d’un financeur (--funder).")
    if args.funder is not None and args.role == "member":
        args.role = "reader"  # the default role, as a funder's
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
    now = system_clock()
    if args.funder is not None:
        from central.services import funders

        user_id = funders.add_user(engine, args.email, args.funder, now, role=args.role, password=password,
                                   name=args.name or "")  # fmt: skip
    else:
        user_id = accounts.create_user(engine, args.email, now, password=password, name=args.name or "",
                                       organisation_id=args.organisation, role=args.role,
                                       is_operator=args.operator)  # fmt: skip
    data: dict[str, Any] = {"id": user_id}
    text = f"user {user_id}"
    if password is None:
        token = accounts.new_link(engine, "reset", args.email, now)
        data["password_link"] = f"/console/mot-de-passe/{token}"
        text += f"; to choose a password (within an hour, once): <central URL>{data['password_link']}"
    _print(args, data, text)
    return 0


_POINT_OPTIONS = {"hours": "opening-hours", "typologies": "typologie"}


def cmd_add_point(args: argparse.Namespace) -> int:
    _, engine = _engine(args)
    try:
        new_id = admin.add_point(
            engine,
            args.organisation,
            args.name,
            args.insee,
            _csv(args.typologie),
            system_clock(),
            latitude=args.latitude,
            longitude=args.longitude,
            opening_hours=args.opening_hours,
            address=args.address,
            postcode=args.postcode,
            commune=args.commune,
        )
    except ServiceError as error:
        if not error.fields:
            raise
        # The checks are the console's, keyed by its field names: say which option is at fault.
        detail = " ".join(f"--{_POINT_OPTIONS.get(k, k)} : {m}" for k, m in error.fields.items())
        raise ServiceError(error.status, error.code, f"{error.message} {detail}", error.fields) from None
    _print(args, {"id": new_id}, f"point de présence {new_id}")
    return 0


@dataclass(frozen=True, slots=True)
class KitFiles:
    """What ``add-kit`` and ``reissue-code`` write besides printing the code: a label, an activation file."""

    label: Path | None = None
    activation_file: Path | None = None  # where the file goes (a directory's aptic-activation.toml resolved)
    central_url: str | None = None
    wifi: Wifi | None = None


_ACTIVATION_FILE_NAME = "aptic-activation.toml"  # provisioning.firstboot.FILE_NAME, without importing it here
# Stands for the real code while the options are checked, before the kit exists: same shape, never shown.
_PLACEHOLDER_CODE = "ABCD-EFGH"


def _kit_files(args: argparse.Namespace) -> KitFiles:
    """The ``--label``/``--activation-file`` options, checked before anything is written to the database.

    A kit made and then refused its files would have a code nobody saw, so every mistake that can be seen
    in advance is refused first: a missing ``--central-url``, a URL or a Wi-Fi setting the device would
    refuse (checked by rendering the file with a placeholder code through the device's own parser), a folder
    that does not exist or cannot be written.
    """
    wifi_given = args.wifi_ssid is not None or args.wifi_psk is not None
    if args.label is None and args.activation_file is None and args.central_url is None and not wifi_given:
        return KitFiles()
    # Here, not at the top: it brings the terminal's first-boot code (a tenth of a second), for these only.
    from central import activation_file

    problems: list[str] = []
    if args.activation_file is None:
        if args.central_url is not None or wifi_given:
            problems.append("--central-url et --wifi-* ne servent qu'avec --activation-file.")
    elif not args.central_url:
        problems.append("--activation-file demande --central-url (l'adresse https:// du central).")
    if args.wifi_psk is not None and args.wifi_ssid is None:
        problems.append("--wifi-psk demande --wifi-ssid (le nom du réseau).")
    if args.wifi_ssid is not None and args.wifi_psk is None:
        problems.append("--wifi-ssid demande --wifi-psk (le mot de passe du Wi-Fi, WPA).")
    wifi = None
    if args.wifi_ssid is not None:  # an empty one too: the device's parser says what is wrong with it
        wifi = activation_file.Wifi(args.wifi_ssid, args.wifi_psk, args.wifi_country)
    if args.activation_file is not None and args.central_url and not problems:
        try:
            activation_file.render("AK-00000000", _PLACEHOLDER_CODE, args.central_url, wifi)
        except activation_file.InvalidActivationFile as error:
            problems += error.problems
    if args.label is not None:
        try:
            from central import labels  # noqa: F401 - reportlab comes with the central extra only
        except ImportError:
            problems.append("--label demande reportlab : pip install 'aptic-terminal[central]'.")
    destination = activation_file.target(args.activation_file) if args.activation_file is not None else None
    for option, path in (("--label", args.label), ("--activation-file", destination)):
        if path is None:
            continue
        if path.is_dir():
            problems.append(f"{option} : {path} est un dossier.")
        elif not path.parent.is_dir():
            problems.append(f"{option} : le dossier {path.parent} n'existe pas.")
        elif not os.access(path.parent, os.W_OK):
            problems.append(f"{option} : le dossier {path.parent} n'est pas accessible en écriture.")
    if args.label is not None and destination is not None and args.label.resolve() == destination.resolve():
        problems.append("--label et --activation-file désignent le même fichier.")
    if problems:
        raise ServiceError(400, "invalid_kit_files", "\n".join(problems))
    return KitFiles(args.label, destination, args.central_url, wifi)


def _write_kit_files(engine: Engine, files: KitFiles, kit: dict[str, str], now: datetime) -> dict[str, str]:
    """Write the label and the activation file of a kit whose code was just made at ``now``; return the paths.

    Both hold the code: both are written 0600 and atomically. Should a write fail (a full disk, a card pulled
    out), the error says how to get a new code and files; the code is not printed then, and the one written
    so far, if any, stops working with the new one.
    """
    written: dict[str, str] = {}
    if files.label is None and files.activation_file is None:
        return written
    from central import activation_file

    number, code = kit["kit_number"], kit["activation_code"]
    path: Path | None = None
    try:
        if files.label is not None:
            from central.labels import render_label

            path = files.label
            organisation = admin.kit_organisation(engine, number)
            pdf = render_label(number, code, organisation=organisation, expires_at=now + admin.CODE_TTL)
            activation_file.write_private(path, pdf)
            log.info("label of kit %s written to %s", number, path)
            written["label"] = str(path)
        if files.activation_file is not None:
            path = files.activation_file
            data = activation_file.render(number, code, str(files.central_url), files.wifi)
            activation_file.write_private(path, data)
            log.info("activation file of kit %s written to %s", number, path)
            written["activation_file"] = str(path)
    except OSError as error:
        raise ServiceError(
            500,
            "kit_files_not_written",
            f"Kit {number} : {path} n'a pas pu être écrit ({error.strerror or error}). "
            f"« aptic-central reissue-code {number} » avec les mêmes options donne un nouveau code et ses fichiers.",
        ) from None
    return written


def _kit_text(kit: dict[str, str], written: dict[str, str], what: str) -> str:
    lines = [f"kit {kit['kit_number']}, {what} {kit['activation_code']}"]  # the code's one appearance
    if "label" in written:
        lines.append(f"label: {written['label']}")
    if "activation_file" in written:
        path = Path(written["activation_file"])
        hint = (
            ""
            if path.name == _ACTIVATION_FILE_NAME
            else f" (copy it to the card's boot partition as {_ACTIVATION_FILE_NAME})"
        )
        lines.append(f"activation file: {path}{hint}")
    return "\n".join(lines)


def cmd_add_kit(args: argparse.Namespace) -> int:
    files = _kit_files(args)
    _, engine = _engine(args)
    now = system_clock()
    kit = admin.add_kit(engine, args.organisation, now)
    written = _write_kit_files(engine, files, kit, now)
    _print(args, {**kit, **written}, _kit_text(kit, written, "activation code"))
    return 0


def cmd_reissue_code(args: argparse.Namespace) -> int:
    files = _kit_files(args)
    _, engine = _engine(args)
    now = system_clock()
    kit = admin.reissue_code(engine, args.kit, now)
    written = _write_kit_files(engine, files, kit, now)
    _print(args, {**kit, **written}, _kit_text(kit, written, "new activation code"))
    return 0


def cmd_revoke_device(args: argparse.Namespace) -> int:
    _, engine = _engine(args)
    admin.revoke_device(engine, args.device, system_clock())
    _print(args, {"revoked": args.device}, f"device {args.device} revoked")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from central.services import fleet

    _, engine = _engine(args)
    with engine.connect() as conn:
        rows = fleet.list_devices(conn, args.organisation)
    lines = [
        f"{d['id']:>4}  {d['kit_number']}  {d['serial']}  {d['software_version']}  "
        f"{'revoked ' + d['revoked_at'] if d['revoked_at'] else 'active'}  last seen {d['last_seen_at'] or '-'}"
        for d in rows
    ]
    _print(args, rows, "\n".join(lines) or "no device")
    return 0


def cmd_issue_carnets(args: argparse.Namespace) -> int:
    settings, engine = _engine(args)
    result = admin.issue_carnets(
        engine,
        settings.secret,
        system_clock(),
        commanditaire=args.commanditaire,
        millesime=args.millesime,
        carnets=args.carnets,
        size=args.size,
        territories=_csv(args.territory),
        territory_label=args.territory_label,
        services=args.services or "",
        place_types=_csv(args.place_types),
        points=[int(p) for p in _csv(args.points)],
        activated=not args.not_activated,
        starts_on=date.fromisoformat(args.starts_on) if args.starts_on else None,
    )
    data = {"order": result["order"], "passes": result["passes"]}
    _print(args, data, "\n".join([f"order {result['order']}", *result["passes"]]))
    return 0


def cmd_activate_order(args: argparse.Namespace) -> int:
    _, engine = _engine(args)
    admin.set_order_activated(engine, args.order, system_clock(), activated=True)
    _print(args, {"order": args.order, "activated": True}, f"order {args.order} activated")
    return 0


def cmd_set_pin(args: argparse.Namespace) -> int:
    _, engine = _engine(args)
    admin.set_pin(engine, args.organisation, args.pin, system_clock())
    _print(args, {"organisation": args.organisation, "pin_set": True},
           f"médiateur PIN set for organisation {args.organisation}")  # fmt: skip
    return 0


def cmd_block_carnet(args: argparse.Namespace) -> int:
    _, engine = _engine(args)
    admin.block_carnet(engine, args.carnet, system_clock())
    _print(args, {"blocked": args.carnet}, f"carnet {args.carnet} blocked")
    return 0


def cmd_referentiel(args: argparse.Namespace) -> int:
    rows = [s.as_dict() for s in referentiel.SERVICES.values()]
    _print(args, rows, "\n".join(f"{r['number']:>3}  {r['category']}  {r['title']}" for r in rows))
    return 0


def cmd_statement(args: argparse.Namespace) -> int:
    _, engine = _engine(args)
    with engine.connect() as conn:
        doc = statements.statement(conn, args.organisation, args.month)
    text = (
        f"{doc['organisation']['name']} — {doc['month']} ({doc['status']}): {doc['passes']} pass, "
        f"brut {doc['gross_cents'] / 100:.2f} €, frais {doc['fee_cents'] / 100:.2f} €, "
        f"net {doc['net_cents'] / 100:.2f} €"
    )
    _print(args, doc, "\n".join([text, *doc["notes"]]))
    return 0


def cmd_close_month(args: argparse.Namespace) -> int:
    _, engine = _engine(args)
    result = statements.close_month(engine, args.month, system_clock())
    _print(args, result, f"month {args.month} closed: {len(result['statements'])} statement(s) frozen")
    return 0


def cmd_demo_seed(args: argparse.Namespace) -> int:
    from central.services.demo import seed

    settings, engine = _engine(args)
    data = seed(engine, settings.secret, system_clock())
    _print(args, data, json.dumps(data, ensure_ascii=False, indent=2))
    return 0


def cmd_demo_console(args: argparse.Namespace) -> int:
    from central.services import demo

    _, engine = _engine(args)
    logins = demo.seed_console(engine, args.organisation, system_clock())
    _print(args, logins, "\n".join(f"{role}: {v['email']} {v['password']}" for role, v in logins.items()))
    return 0


def cmd_print_carnets(args: argparse.Namespace) -> int:
    """Write an order's lettre d'orientation and carnets as one PDF (central.carnets_pdf says how it looks).

    The order is read first (an unknown order writes nothing); the PDF goes to a temporary file beside
    ``--output``, created 0600 (the passes are worth money: whoever holds their numbers can spend them), and is
    renamed over it once complete, so a print cut short never leaves half a file under the expected name.
    """
    import tempfile

    from aptic.passnumber import hmac_authenticator
    from central.services import carnet_print
    from central.services.common import local_date

    settings, engine = _engine(args)
    now = system_clock()
    info = carnet_print.letter(engine, args.order, local_date(now), limit=args.places)
    output: Path = args.output
    fd, temporary = tempfile.mkstemp(dir=output.parent, prefix=f"{output.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            result = carnet_print.write(engine, hmac_authenticator(settings.secret), info, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, output)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    result["output"] = str(output)
    _print(args, result, f"order {args.order}: {result['carnets']} carnet(s), {result['passes']} passes, "
           f"{result['pages']} pages written to {output}"
           + (f" ({result['blocked']} blocked carnet(s) left out)" if result["blocked"] else ""))  # fmt: skip


def cmd_export_places(args: argparse.Namespace) -> int:
    """Write the qualified places in the national open data format to standard output, row by row."""
    from central.services import open_data

    _, engine = _engine(args)
    out = sys.stdout
    if hasattr(out, "reconfigure"):
        out.reconfigure(encoding="utf-8", newline="")  # the format is UTF-8 whatever the locale; CRLF kept as is
    with engine.connect() as conn:
        for chunk in open_data.WRITERS[args.format](open_data.places(conn)):
            out.write(chunk)
    out.flush()


def cmd_mark_paid(args: argparse.Namespace) -> int:
    from central.services import operator

    _, engine = _engine(args)
    operator.mark_paid(engine, args.organisation, args.month, args.reason, None, system_clock())
    _print(args, {"organisation": args.organisation, "month": args.month, "paid": True},
           f"statement {args.month} of organisation {args.organisation} marked paid")  # fmt: skip
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="database URL (sqlite:///path or postgresql://...)")
    common.add_argument("--data-dir", help="directory of the default SQLite file and the secret key")
    common.add_argument("--json", action="store_true", help="print one JSON document")

    parser = argparse.ArgumentParser(prog="aptic-central", description="Pass #APTIC central API and its admin")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Any, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(func=func)
        return p

    def kit_file_options(p: argparse.ArgumentParser) -> None:
        files = p.add_argument_group("label and activation file (both hold the code: written mode 0600)")
        files.add_argument("--label", type=Path, metavar="PDF",
                           help="write the kit's label: an A6 PDF with the kit number as text, Code 128 and QR "
                           "code, and the activation code as text only, under a fold line")  # fmt: skip
        files.add_argument("--activation-file", type=Path, metavar="PATH",
                           help=f"write the card's {_ACTIVATION_FILE_NAME} (given a folder, such as the card's "
                           "mounted boot partition: that file in it)")  # fmt: skip
        files.add_argument("--central-url", metavar="URL", help="the central the terminal activates against: https://")
        files.add_argument("--wifi-ssid", metavar="SSID", help="the place's Wi-Fi network (WPA-PSK), if any")
        files.add_argument("--wifi-psk", metavar="PASSWORD",
                           help="its password, 8 to 63 characters (seen in the process list and the shell's "
                           "history: prefer a machine of your own)")  # fmt: skip
        files.add_argument("--wifi-country", default="FR", metavar="CC",
                           help="ISO 3166 country code: the radio channels allowed (default: FR)")  # fmt: skip

    p = command("serve", cmd_serve, "serve the HTTP API with waitress")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8470)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--workers", type=int, default=1, help="processes sharing the socket (about one per core)")
    p.add_argument("--access-log", action="store_true", help="log one line per request (route, status, time, device)")
    command("init-db", cmd_init_db, "create or upgrade the database schema")
    p = command("add-organisation", cmd_add_organisation, "register an organisation (SIRET unique)")
    p.add_argument("--name", required=True)
    p.add_argument("--siret", required=True)
    p.add_argument("--catalogue", help="services offered, e.g. 1-40,2.2 (default: the whole référentiel)")
    p.add_argument("--pin", help="the médiateur PIN of its kiosks, 4 to 8 digits (also: set-pin)")
    p = command("add-user", cmd_add_user, "create a web console account (or give an existing one a membership)")
    p.add_argument("--email", required=True)
    p.add_argument("--name", help="first and last name, as shown in the console")
    p.add_argument("--organisation", type=int, help="the organisation whose member the user becomes")
    p.add_argument("--funder", help="the funder (commanditaire) whose user this is, created if missing")
    p.add_argument("--role", choices=("member", "reader", "admin"), default="member", help="reader: --funder only")
    p.add_argument("--operator", action="store_true", help="the scheme's operator (sees every organisation)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p = command("add-point", cmd_add_point, "add a point de présence to an organisation")
    p.add_argument("--organisation", type=int, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--insee", required=True, help="INSEE code of the commune")
    p.add_argument("--typologie", default="", help="typologie code(s), comma-separated (EPN, BIB, ...)")
    p.add_argument("--latitude", type=float)
    p.add_argument("--longitude", type=float)
    p.add_argument("--opening-hours", help="OSM opening_hours, e.g. 'Mo-Fr 09:00-12:00; Sa 10:00-12:00'")
    p.add_argument("--address", help="street address, e.g. '12 rue des Écoles'")
    p.add_argument("--postcode", help="5-digit postcode")
    p.add_argument("--commune", help="name of the commune, e.g. Bègles")
    p = command("add-kit", cmd_add_kit, "make a kit number and its single-use activation code")
    p.add_argument("--organisation", type=int, required=True)
    kit_file_options(p)
    p = command("reissue-code", cmd_reissue_code, "give a kit a new activation code (lifts a lockout)")
    p.add_argument("kit")
    kit_file_options(p)
    p = command("devices", cmd_devices, "list the activated devices, with their kit and last heartbeat")
    p.add_argument("--organisation", type=int)
    p = command("revoke-device", cmd_revoke_device, "revoke a device: its token stops working")
    p.add_argument("device", type=int)
    p = command("issue-carnets", cmd_issue_carnets, "record a funder's order of carnets and print the passes")
    p.add_argument("--commanditaire", required=True)
    p.add_argument("--millesime", type=int, required=True)
    p.add_argument("--carnets", type=int, required=True)
    p.add_argument("--size", type=int, choices=(5, 10), required=True)
    p.add_argument("--territory", help="département or commune INSEE codes, comma-separated")
    p.add_argument("--territory-label", help="the funder's name for its perimeter, e.g. Gironde")
    p.add_argument("--services", help="services allowed, e.g. 84-95,1.2")
    p.add_argument("--place-types", help="typologie codes allowed, comma-separated")
    p.add_argument("--points", help="designated point ids, comma-separated")
    p.add_argument("--starts-on", help="first day of validity (YYYY-MM-DD)")
    p.add_argument("--not-activated", action="store_true", help="the order is not paid yet")
    p = command("activate-order", cmd_activate_order, "mark an order paid: its passes become usable")
    p.add_argument("order", type=int)
    p = command("set-pin", cmd_set_pin, "set the médiateur PIN of an organisation's kiosks")
    p.add_argument("--organisation", type=int, required=True)
    p.add_argument("--pin", required=True, help="4 to 8 digits")
    p = command("block-carnet", cmd_block_carnet, "block a carnet (lost, stolen, withdrawn)")
    p.add_argument("carnet")
    p = command("print-carnets", cmd_print_carnets,
                "write an order's lettre d'orientation and carnets (one A4 page per carnet) as a PDF")  # fmt: skip
    p.add_argument("--order", type=int, required=True)
    p.add_argument("--output", type=Path, required=True, metavar="PDF", help="the PDF to write (mode 0600)")
    p.add_argument("--places", type=int, default=30, help="qualified places listed in the letter (default: 30)")
    command("referentiel", cmd_referentiel, "print the national catalogue of services")
    p = command("export-places", cmd_export_places, "print the qualified places as open data (standard-mediation-num)")
    p.add_argument("--format", choices=("csv", "json"), default="csv", help="CSV (default) or JSON")
    p = command("statement", cmd_statement, "an organisation's counter-payment statement for a month")
    p.add_argument("--organisation", type=int, required=True)
    p.add_argument("--month", required=True, help="YYYY-MM")
    p = command("close-month", cmd_close_month, "freeze a month's statements")
    p.add_argument("--month", required=True, help="YYYY-MM")
    p = command("mark-paid", cmd_mark_paid, "record that an organisation's closed statement was paid")
    p.add_argument("--organisation", type=int, required=True)
    p.add_argument("--month", required=True, help="YYYY-MM")
    p.add_argument("--reason", default="virement émis", help="kept in the audit log")
    command("demo-seed", cmd_demo_seed, "fill the database with a demo organisation, kit and carnets")
    p = command("demo-console", cmd_demo_console, "give the demo organisation a médiateur and an admin account")
    p.add_argument("--organisation", type=int, required=True)

    from central import fleet_cli

    def with_engine(func: Any) -> Any:
        def run(args: argparse.Namespace) -> int:
            _, engine = _engine(args)
            return int(func(args, engine, lambda data, text: _print(args, data, text)))

        return run

    fleet_cli.add_commands(sub, common, with_engine)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except ServiceError as error:
        if getattr(args, "json", False):
            print(json.dumps(error.as_dict(), ensure_ascii=False))
        print(f"aptic-central: {error.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
