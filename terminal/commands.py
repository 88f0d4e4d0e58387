"""``aptic-terminal activate | run | status | check``: the daemon and its companions.

Settings come from ``terminal.config`` (``/etc/aptic-terminal/config.toml``, ``APTIC_TERMINAL_*``);
``--data-dir`` overrides the data directory for one command.

- ``activate --central URL --kit KIT --code CODE [--pin PIN]``: activate (or re-activate) this terminal;
  ``--pin`` sets the médiateur PIN of the kiosk. While ``run`` is running, the activation is handed to it
  (``terminal.control``), which starts syncing at once.
- ``run``: the daemon: douchette reader, sync worker and kiosk, until SIGTERM or SIGINT. Without a central
  URL (none configured, not activated) it records offline and starts syncing once activated.
- ``status --json``: one JSON document: mode, activation, outbox, snapshot, clock, sync.
- ``check NUMBER [--service N] [--json]``: the offline verdict from the local snapshot; exit status 0 when
  valid, 1 when refused, 2 when the terminal cannot judge (not activated, no data: reason ``not_ready``).
  Format and check digits need no snapshot, so a malformed number is ``malformed`` on any terminal;
  ``--json`` always prints one JSON document.

``firstboot`` (activation from the boot partition's ``aptic-activation.toml``) lives in
``provisioning.firstboot`` and is registered here.

``status`` and ``check`` open the store read-only, so they are safe while the daemon runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from terminal import config as configuration
from terminal.clock import Clock
from terminal.control import SOCKET as CONTROL_SOCKET
from terminal.control import ControlServer, NoDaemon
from terminal.control import request as ask_daemon
from terminal.store import OutboxFull, Store, StoreError
from terminal.terminal import Terminal, TerminalError

logger = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``activate``, ``run``, ``status`` and ``check`` to the ``aptic-terminal`` parser."""
    activate = commands.add_parser("activate", help="activate this terminal with its kit number and code")
    activate.add_argument("--central", required=True, metavar="URL", help="the central, e.g. https://central.example")
    activate.add_argument("--kit", required=True, help="kit number, as on the kit's label")
    activate.add_argument("--code", required=True, help="activation code, as on the kit's label")
    activate.add_argument(
        "--pin",
        help="a médiateur PIN for this terminal only (default: the organisation's, set "
        "on the central with `aptic-central set-pin`)",
    )
    _data_dir_option(activate)
    activate.set_defaults(func=cmd_activate)

    run = commands.add_parser("run", help="the daemon: douchette reader, sync with the central and kiosk")
    run.add_argument("--no-scanner", action="store_true", help="do not grab douchettes (kiosk and sync only)")
    run.add_argument("--no-kiosk", action="store_true", help="do not serve the kiosk page")
    run.add_argument(
        "--virtual-douchette",
        nargs="?",
        const="",
        metavar="SOCKET",
        help="also read a software douchette fed through this unix socket (demo, tests): "
        "`aptic-terminal scanner type NUMBER` scans with it",
    )
    _data_dir_option(run)
    run.set_defaults(func=cmd_run)

    status = commands.add_parser("status", help="the terminal's state: activation, outbox, snapshot, clock")
    status.add_argument("--json", action="store_true", help="one JSON document")
    _data_dir_option(status)
    status.set_defaults(func=cmd_status)

    check = commands.add_parser("check", help="the offline verdict for a pass number, from the local snapshot")
    check.add_argument("number", help="the pass number, spaces allowed")
    check.add_argument("--service", type=int, help="the service rendered (default: any the pass may pay here)")
    check.add_argument("--json", action="store_true", help="one JSON document")
    _data_dir_option(check)
    check.set_defaults(func=cmd_check)

    from provisioning import firstboot  # the image's first-boot activation, in its own module

    firstboot.register(commands)


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="data directory (default from the settings)")


def settings(args: argparse.Namespace) -> configuration.Config:
    config = configuration.load()
    if getattr(args, "data_dir", None):
        config = dataclasses.replace(config, data_dir=args.data_dir)
    return config


def open_terminal(config: configuration.Config, *, readonly: bool = False) -> Terminal:
    store = Store(config.data_dir, outbox_limit=config.outbox_limit, history_months=config.history_months,
                  readonly=readonly)  # fmt: skip
    clock = Clock(sync_marker=config.sync_marker, boot_id_path=config.boot_id_path)
    return Terminal(store, clock=clock, point_id=config.point_id)


def activate_terminal(config: configuration.Config, central: str, kit: str, code: str, *,
                      pin_hash: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Activate as ``aptic-terminal activate`` does (also first boot): handed to the daemon if one runs, else here.

    Returns the central's answer without the token; raises :class:`TerminalError` with a French message.
    """
    try:
        # A running daemon owns the data directory: it activates in-process and starts syncing at once.
        return ask_daemon(config.data_dir / CONTROL_SOCKET, "activate", central=central, kit=kit, code=code,
                          pin_hash=pin_hash)  # fmt: skip
    except NoDaemon:
        return activate_in_process(open_terminal(config), central, kit, code, pin_hash)


def activate_in_process(terminal: Terminal, central: str, kit: str, code: str, pin_hash: str | None) -> dict[str, Any]:
    """Activate ``terminal`` in this process; ``pin_hash``, if any, is a médiateur PIN for it alone."""
    from provisioning.activation import activate

    answer = activate(terminal, central, kit, code)
    if pin_hash:
        terminal.store.update_state(mediateur_pin_hash=pin_hash)
    return answer


def cmd_activate(args: argparse.Namespace) -> int:
    from aptic.pin import hash_pin, valid_pin

    if args.pin and not valid_pin(args.pin):
        print("Le code médiateur doit compter de 4 à 8 chiffres.", file=sys.stderr)
        return 2
    pin_hash = hash_pin(args.pin) if args.pin else None  # a PIN for this terminal only, not the organisation's
    try:
        answer = activate_terminal(settings(args), args.central, args.kit, args.code, pin_hash=pin_hash)
    except TerminalError as error:
        print(error.message_fr, file=sys.stderr)
        return 1
    organisation = (answer.get("organisation") or {}).get("name", "")
    print(f"Terminal activé : appareil {answer.get('device_id')}, {organisation}.")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from terminal.sync import worker_running

    config = settings(args)
    terminal = open_terminal(config, readonly=True)
    status = terminal.status()
    state = terminal.store.state()
    status["central_url"] = config.central_url or state.get("central_url")
    status["last_sync"] = state.get("last_sync")
    status["daemon_running"] = worker_running(config.data_dir)
    status["data_dir"] = str(config.data_dir)
    status["history_months"] = terminal.store.history_files()
    if args.json:
        print(json.dumps(status, ensure_ascii=False))
    else:
        outbox = status["outbox"]
        print(f"activation: {status['activation']}  device: {status['device_id']}  place: {status['place']}")
        print(f"outbox: {outbox['pending']} pending (limit {outbox['limit']})  clock synced: {status['clock_synced']}")
        print(f"snapshot: {status['snapshot']['generated_at']}  central: {status['central_url']}")
        print(f"last sync: {status['last_sync']}  daemon running: {status['daemon_running']}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    terminal = open_terminal(settings(args), readonly=True)
    try:
        if args.service is not None and terminal.place is not None:
            terminal.start_entry(args.service)  # in memory only: nothing is recorded
        result = terminal.handle_code(args.number)
    except (TerminalError, StoreError) as error:
        # What truly needs the snapshot (a well-formed number on a terminal never synced) cannot be judged.
        reason = "outbox_full" if isinstance(error, OutboxFull) else "not_ready"
        if args.json:
            print(json.dumps({"valid": False, "reason": reason, "message": error.message_fr}, ensure_ascii=False))
        else:
            print(error.message_fr, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False))
    else:
        print(f"{result.title} : {result.message}" + (" (provisoire, hors ligne)" if result.provisional else ""))
        for line in [*result.warnings, *result.restrictions]:
            print(f"  {line}")
    return 0 if result.valid else 1


def notify_systemd(message: str) -> None:
    """Tell systemd (``Type=notify``) how the daemon is doing; nothing outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


START_STEP_USEC = 60_000_000  # each start step done gives the rest of the start another minute


def starting() -> None:
    """A start step is done: systemd extends the start's timeout (``TimeoutStartSec``) by a minute from now. A
    slow but progressing start (a throttled Pi, a loaded host) is then never killed in a loop, while a start
    hung in one step still is."""
    notify_systemd(f"EXTEND_TIMEOUT_USEC={START_STEP_USEC}")


def _update_step(url: str, version: str, terminal: Any, fleet: Any) -> Any:
    """Signed updates, on a device whose image has the update guard (``APTIC_UPDATES_DIR``, set by the unit);
    None on a workstation. See updates/agent.py."""
    directory = os.environ.get("APTIC_UPDATES_DIR")
    if not directory:
        return None
    import requests

    from updates.agent import InBackground, UpdateStep, pinned_root
    from updates.fetch import ReleaseSource
    from updates.guard import AGENT

    def fetch_root() -> bytes:
        answer = requests.get(f"{url.rstrip('/')}/tuf/metadata/1.root.json", timeout=(5, 30))
        answer.raise_for_status()
        return answer.content

    agent_dir = Path(directory) / AGENT
    root = pinned_root(Path(os.environ.get("APTIC_RELEASE_ROOT", "/etc/aptic-terminal/release-root.json")),
                       agent_dir / "root.json", fetch_root)  # fmt: skip
    step = UpdateStep(ReleaseSource(url, agent_dir, root), Path(directory), version,
                      clock_synced=lambda: terminal.clock.synced() or fleet.clock_agrees())  # fmt: skip
    return InBackground(step)


def cmd_run(args: argparse.Namespace) -> int:
    from provisioning.activation import activate, software_version
    from terminal import logs, remote
    from terminal.feedback import open_feedback, verdict_listener
    from terminal.fleet import JOURNAL as FLEET_JOURNAL
    from terminal.fleet import CommandJournal, FleetAgent
    from terminal.sync import AlreadyRunning, CentralClient, SyncWhenKnown, SyncWorker

    starting()
    config = settings(args)
    logs.install(config.log_dir)  # the recent log upload_logs sends, in RAM (see terminal/logs.py)
    terminal = open_terminal(config)
    store = terminal.store
    store.prune_history()
    starting()
    version = software_version()
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())

    feedback = open_feedback()
    terminal.bus.subscribe(verdict_listener(feedback))
    starting()

    # The central's settings, as last applied: those only a start applies (the douchettes' layout) apply now.
    started_with = dict(store.state().get("remote_config") or {})
    reader = None
    codes: queue.Queue[tuple[str, str] | None] = queue.Queue()
    if not args.no_scanner:
        section = remote.scanner_section(config, started_with)
        reader = _start_scanner(codes, terminal, config, args.virtual_douchette, section)
        starting()

    server: Any = None  # the kiosk's server and its state, once it listens
    kiosk: Any = None

    def screen() -> dict[str, Any] | None:
        """How long the kiosk page has been quiet (the screen's watchdog restarts it past a limit)."""
        if kiosk is None:
            return None
        return {"page_quiet_s": round(time.monotonic() - kiosk.page_seen, 1)}

    def make_worker(url: str) -> SyncWorker:
        client = CentralClient(url, token=store.token, timeout=(config.connect_timeout, config.read_timeout))
        worker = SyncWorker(
            terminal,
            client,
            batch_size=config.batch_size,
            heartbeat_interval=config.heartbeat_interval,
            check_timeout=config.check_timeout,
            version=version,
            scanners=reader.devices if reader else list,
            screen=screen,
        )
        terminal.online_check = worker.check_validity
        apply = remote.applier(config, terminal, worker, started_with)
        apply(started_with)
        worker.fleet = FleetAgent(
            client,
            store,
            CommandJournal(store.directory / FLEET_JOURNAL),
            apply_config=apply,
            actions=remote.actions(terminal, worker, log_dir=config.log_dir, screenshot_dir=config.screenshot_dir),
            boot_id=terminal.clock.boot_id,
            restart=stopping.set,  # systemd starts the daemon again (Restart=always)
        )
        worker.fleet.updates = _update_step(url, version, terminal, worker.fleet)
        return worker

    # The worker starts now if the central is known, else when this terminal is activated (no restart).
    sync = SyncWhenKnown(make_worker)
    terminal.bus.subscribe(lambda event: event.kind == "activated" and sync.ensure(store.state().get("central_url")))
    try:
        if not sync.ensure(config.central_url or store.state().get("central_url")):
            logger.warning("No central URL (not activated, none configured): recording offline until activated")
    except AlreadyRunning as error:
        logger.error("%s: is another aptic-terminal run active?", error)
        return 1

    def activate_for(request: dict[str, Any]) -> dict[str, Any]:
        central, kit, code = (str(request.get(key) or "") for key in ("central", "kit", "code"))
        return activate_in_process(terminal, central, kit, code, request.get("pin_hash") or None)

    starting()
    # `aptic-terminal activate` while this daemon runs is handed over here (see terminal.control).
    control_server = ControlServer(config.data_dir / CONTROL_SOCKET, {"activate": activate_for}).start()

    if not args.no_kiosk:
        server, kiosk = _start_kiosk(config, terminal, feedback, reader, sync, version, activate)

    dispatcher = threading.Thread(target=_dispatch, args=(codes, terminal), name="aptic-scans", daemon=True)
    dispatcher.start()
    notify_systemd("READY=1")
    logger.info("Terminal ready (data in %s)", config.data_dir)
    # WATCHDOG=1 only while the reader runs, the store takes writes and the kiosk answers (terminal.watchdog).
    from terminal.watchdog import Watchdog, daemon_checks

    kiosk_url = None if server is None else f"http://127.0.0.1:{config.kiosk_port}/healthz"
    watchdog = Watchdog.from_environment(daemon_checks(config.data_dir, reader, kiosk_url), notify_systemd)
    if watchdog is not None:
        watchdog.start()
    while not stopping.wait(1.0):
        pass

    if watchdog is not None:
        watchdog.stop()
    notify_systemd("STOPPING=1")
    logger.info("Stopping")
    if reader is not None:
        reader.stop()
    codes.put(None)
    dispatcher.join(5)
    control_server.stop()
    if server is not None:
        server.close()
    sync.stop()
    feedback.close()
    store.close()
    return 0


def _dispatch(codes: queue.Queue[tuple[str, str] | None], terminal: Terminal) -> None:
    """Hand each douchette read to the Terminal, one at a time, off the reader's thread."""
    while (item := codes.get()) is not None:
        text, device = item
        try:
            terminal.handle_code(text, device=device)
        except TerminalError as error:
            terminal.bus.publish("refused", message=error.message_fr)
        except Exception:
            logger.exception("Scan from %s could not be handled", device)


def _start_scanner(codes: queue.Queue[tuple[str, str] | None], terminal: Terminal, config: configuration.Config,
                   virtual: str | None, section: dict[str, Any]) -> Any:  # fmt: skip
    """Start the douchette reader in a process of its own (``terminal.scanner.service`` says why).

    Its reads go through ``codes`` to :func:`_dispatch`, its discards to the bus and the log. The ``[scanner]``
    settings (``terminal.scanner.process.SETTINGS``; ``section``, with the central's layout if it set one)
    choose the douchettes; ``virtual`` (a socket path, or "" for the default one) adds the virtual douchette.
    The state file lets ``aptic-terminal scanner list`` show what the reader holds.
    """
    try:
        from terminal.scanner.process import ReaderProcess, reader_args
        from terminal.scanner.reader import ScanDiscard, ScanRead, default_state_file

        options = reader_args(section, state_file=default_state_file(), virtual=virtual)

        def on_read(read: ScanRead) -> None:
            codes.put((read.text, read.device))

        def on_discard(discard: ScanDiscard) -> None:
            logger.info("Douchette %s: read discarded (%s)", discard.device, discard.reason)
            terminal.bus.publish("discarded", device=discard.device, reason=discard.reason)

        if section.get("process", True):
            reader: Any = ReaderProcess(on_read, on_discard, options)
        else:  # the reader as threads of this process: the daemon's other work delays it (comparison only)
            from terminal.scanner.service import LocalReader

            reader = LocalReader(options, on_read, on_discard)
        reader.start()
        return reader
    except Exception as error:  # no evdev, no /dev/input access: the kiosk keypad still works
        logger.error("Douchette reader not started (%s): scans only from the kiosk keypad", error)
        return None


def _start_kiosk(config: configuration.Config, terminal: Terminal, feedback: Any, reader: Any, sync: Any,
                 version: str, activate: Any) -> Any:  # fmt: skip
    from waitress import create_server

    from kiosk_ui import Kiosk, create_app

    def activate_here(kit: str, code: str) -> Any:
        url = config.central_url or terminal.store.state().get("central_url")
        if not url:
            raise TerminalError("no central URL", "Adresse du central inconnue : configurez central_url.")
        return activate(terminal, url, kit, code)

    kiosk = Kiosk(
        terminal,
        feedback=feedback,
        scanners=reader.devices if reader else list,
        sync_status=sync.status,
        activate=activate_here,
        pin_hash=terminal.mediateur_pin_hash,
        version=version,
    )
    server = create_server(create_app(kiosk), listen=f"{config.kiosk_host}:{config.kiosk_port}", threads=8,
                           ident="aptic-kiosk")  # fmt: skip
    threading.Thread(target=server.run, name="aptic-kiosk", daemon=True).start()
    return server, kiosk
