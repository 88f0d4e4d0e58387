"""``aptic-terminal scanner ...``: decode events, listen to the douchettes, list input devices, type a scan.

- ``scanner decode [--layout auto|us|fr]``: raw events as JSON lines on stdin (``{"t", "type", "code",
  "value"}``, optionally ``"device"``), one JSON line per finished read on stdout: ``{"code", "layout"}`` or
  ``{"discarded", "reason"}`` (with ``"device"`` when the input names devices).
- ``scanner listen [--layout ...] [--device NAME_OR_PATH]... [--virtual [SOCKET]]``: grab the douchettes of
  this machine (hotplug included) and write the same lines, each with ``"device"``, until stopped
  (``--times``: also ``"monotonic"`` and ``"wall"``, the times of the terminating key event).
- ``scanner list [--json]``: the input devices seen, which are douchettes, grabbed or not, layout; the
  running reader's virtual douchette too, and how late its reads were (``"reader": {"pid", "stall"}``).
- ``scanner type TEXT [--socket PATH] [--layout us|fr]``: scan TEXT on a virtual douchette.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from typing import TextIO

from terminal.scanner import devices as devmod
from terminal.scanner.decoder import LAYOUT_CHOICES, Decoder, DecoderConfig, Read, Result
from terminal.scanner.keymaps import LAYOUTS, TERMINATOR_KEYS
from terminal.scanner.reader import (
    ReaderConfig,
    ScanDiscard,
    ScannerReader,
    ScanRead,
    default_state_file,
    node_entry,
    read_state,
)
from terminal.scanner.typist import STYLES

log = logging.getLogger(__name__)
_DEFAULTS = DecoderConfig()


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``scanner`` and its subcommands to the ``aptic-terminal`` parser."""
    scanner = commands.add_parser("scanner", help="the douchette (USB barcode scanner) reader")
    sub = scanner.add_subparsers(dest="scanner_command", required=True, metavar="SUBCOMMAND")

    decode = sub.add_parser("decode", help="decode raw evdev events given as JSON lines on stdin")
    _decoder_options(decode)
    decode.set_defaults(func=cmd_decode)

    listen = sub.add_parser("listen", help="grab the douchettes and print each read as a JSON line")
    _decoder_options(listen)
    _selection_options(listen)
    listen.add_argument(
        "--virtual",
        nargs="?",
        const="",
        metavar="SOCKET",
        help="also run a virtual douchette on this unix socket (default: see `scanner type`)",
    )
    listen.add_argument("--virtual-layout", choices=sorted(LAYOUTS), default="us",
                        help="layout the virtual douchette types in (default us)")  # fmt: skip
    listen.add_argument("--times", action="store_true",
                        help='add "monotonic" and "wall" (of the terminating key event) to each line')  # fmt: skip
    listen.set_defaults(func=cmd_listen)

    lst = sub.add_parser("list", help="list input devices: douchettes, grabbed or not, layout")
    lst.add_argument("--json", action="store_true", help="one JSON document")
    lst.add_argument("--layout", choices=LAYOUT_CHOICES, default="auto")
    lst.add_argument("--fallback", choices=sorted(LAYOUTS), default="us")
    _selection_options(lst)
    lst.set_defaults(func=cmd_list)

    typ = sub.add_parser("type", help="scan TEXT on a virtual douchette (`scanner listen --virtual`)")
    typ.add_argument("text")
    typ.add_argument("--socket", help="the virtual douchette's socket (default $APTIC_SCANNER_SOCKET, ...)")
    typ.add_argument("--layout", choices=sorted(LAYOUTS), help="layout the scanner emulates")
    typ.add_argument("--style", choices=STYLES, help="how it types shifted characters, keypad, Alt+numpad")
    typ.add_argument("--interval", type=float, help="seconds per key (default 0.008)")
    typ.set_defaults(func=cmd_type)


def _decoder_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--layout",
        choices=LAYOUT_CHOICES,
        default="auto",
        help="layout the douchette emulates; auto (default) finds it from the pass number",
    )
    p.add_argument(
        "--fallback",
        choices=sorted(LAYOUTS),
        default="us",
        help="layout auto uses for codes that are not pass numbers (default us)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=_DEFAULTS.idle_timeout,
        metavar="SECONDS",
        help="gap between keys that ends an unterminated read (default %(default)s)",
    )
    p.add_argument(
        "--flush-on-idle",
        action="store_true",
        help="deliver, not discard, a read ended by the idle timeout (scanners without Enter)",
    )
    p.add_argument(
        "--terminators",
        default="enter,kpenter,tab",
        help=f"keys that end a read, comma-separated among {','.join(TERMINATOR_KEYS)} (may be empty)",
    )
    p.add_argument("--prefix", default="", help="text the scanner sends before each code (removed)")
    p.add_argument("--suffix", default="", help="text the scanner sends after each code (ends the read, removed)")
    p.add_argument("--max-length", type=int, default=_DEFAULTS.max_length, help="longest read (keystrokes)")
    p.add_argument("--numlock-strict", action="store_true",
                   help="keypad digits with NumLock off type nothing (keyboard behaviour)")  # fmt: skip


def _selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="NAME_OR_PATH[=LAYOUT]",
        help="treat this device as a douchette: path or by-id link, vendor:product, or part of its name; "
        "=us or =fr says which layout it is set to emulate",
    )
    p.add_argument(
        "--ignore", action="append", default=[], metavar="NAME_OR_PATH", help="never treat this device as a douchette"
    )
    p.add_argument(
        "--no-heuristics",
        action="store_true",
        help="only the --device ones, not devices whose name or vendor says scanner",
    )
    p.add_argument(
        "--state",
        default=None,
        metavar="PATH",
        help="state file of the running reader (default $APTIC_SCANNER_STATE, $XDG_RUNTIME_DIR/...)",
    )
    p.add_argument("--input-dir", default="/dev/input", help=argparse.SUPPRESS)  # fmt: skip


def decoder_config(args: argparse.Namespace) -> DecoderConfig:
    names = [n.strip().lower() for n in args.terminators.split(",") if n.strip()]
    unknown = [n for n in names if n not in TERMINATOR_KEYS]
    if unknown:
        raise SystemExit(f"unknown terminator {', '.join(unknown)}; choose among {', '.join(TERMINATOR_KEYS)}")
    return DecoderConfig(
        layout=args.layout,
        fallback=args.fallback,
        terminators=frozenset(TERMINATOR_KEYS[n] for n in names),
        prefix=args.prefix,
        suffix=args.suffix,
        idle_timeout=args.idle_timeout,
        flush_on_idle=args.flush_on_idle,
        max_length=args.max_length,
        numlock_strict=args.numlock_strict,
    )


def reader_config(args: argparse.Namespace, decoder: DecoderConfig | None = None) -> ReaderConfig:
    selectors, layouts = [], []
    for spec in args.device:
        selector, _, layout = spec.rpartition("=") if spec.rsplit("=", 1)[-1] in LAYOUTS else ("", "", "")
        selector = selector or spec
        selectors.append(selector)
        if layout:
            layouts.append((selector, layout))
    return ReaderConfig(
        devices=tuple(selectors),
        layouts=tuple(layouts),
        ignore=tuple(args.ignore),
        heuristics=not args.no_heuristics,
        decoder=decoder or DecoderConfig(layout=args.layout, fallback=args.fallback),
        input_dir=args.input_dir,
        state_file=args.state or default_state_file(),
    )


def result_line(result: Result, device: str | None = None) -> str:
    """The JSON line of a read or a discard (the contract of ``decode`` and ``listen``)."""
    doc: dict[str, str] = {} if device is None else {"device": device}
    if isinstance(result, Read):
        doc |= {"code": result.text, "layout": result.layout}
    else:
        doc |= {"discarded": result.text, "reason": result.reason}
    return json.dumps(doc, ensure_ascii=False)


# -- decode ----------------------------------------------------------------------------------------------------


def cmd_decode(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    config = decoder_config(args)
    decoders: dict[str | None, Decoder] = {}
    status, last_t = 0, 0.0

    def emit(results: list[Result], device: str | None) -> None:
        for r in results:
            stdout.write(result_line(r, device) + "\n")
        if results:
            stdout.flush()

    for number, line in enumerate(stdin, 1):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
            t, type_, code, value = float(ev["t"]), int(ev["type"]), int(ev["code"]), int(ev["value"])
            device = ev.get("device")
            device = None if device is None else str(device)
        except (ValueError, KeyError, TypeError) as e:
            print(f"scanner decode: line {number}: not an event ({e}): {line.strip()[:80]}", file=sys.stderr)
            status = 1
            continue
        decoder = decoders.get(device)
        if decoder is None:
            decoder = decoders[device] = Decoder(config)
        last_t = max(last_t, t)
        emit(decoder.feed(t, type_, code, value), device)
    for device, decoder in decoders.items():  # the end of input ends pending reads
        if config.flush_on_idle:
            emit(decoder.tick(float("inf")), device)
        emit(decoder.abort(last_t, "end_of_input"), device)
    return status


# -- listen ----------------------------------------------------------------------------------------------------


def cmd_listen(args: argparse.Namespace) -> int:
    lock = threading.Lock()

    def write(doc: dict) -> None:
        with lock:
            sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
            sys.stdout.flush()

    def times(x: ScanRead | ScanDiscard) -> dict:
        return {"monotonic": round(x.monotonic, 6), "wall": round(x.wall, 6)} if args.times else {}

    def on_read(r: ScanRead) -> None:
        write({"device": r.device, "code": r.text, "layout": r.layout, **times(r)})

    def on_discard(d: ScanDiscard) -> None:
        write({"device": d.device, "discarded": d.text, "reason": d.reason, **times(d)})

    reader = ScannerReader(on_read, on_discard, reader_config(args, decoder_config(args)))
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    virtual = None
    if args.virtual is not None:
        from terminal.scanner.virtual import VirtualDouchette

        virtual = VirtualDouchette(args.virtual or None, layout=args.virtual_layout)
        virtual.attach(reader)
        virtual.start()
    reader.start()
    try:
        while not done.wait(0.5):
            pass
    finally:
        if virtual is not None:
            virtual.stop()
        reader.stop()
    return 0


# -- list ------------------------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    cfg = reader_config(args)
    nodes = devmod.scan(cfg.input_dir)
    groups = devmod.group_nodes(nodes)
    classes = {g: devmod.classify(ns, cfg.devices, cfg.ignore, cfg.heuristics) for g, ns in groups.items()}
    state = read_state(cfg.state_file) if cfg.state_file else None
    by_path = {d["path"]: d for d in state["devices"]} if state else {}
    entries = []
    for node in nodes:
        cls = classes.get(node.group) if node.error is None else None
        entry = node_entry(node, cls, cfg.decoder_for([node]))
        entry["grabbed"] = _grabbed_elsewhere(node.path) if cls and cls.douchette and node.has_keys else False
        running = by_path.get(node.path)
        if running is not None:  # what the running reader knows: it holds the grab, the layout it detected
            entry["reader_pid"] = state["pid"] if running.get("grabbed") else None
            entry["detected_layout"] = running.get("detected_layout")
        entries.append(entry)
    for running in state["devices"] if state else []:  # a virtual douchette has no node: only the reader knows it
        if running.get("virtual") or running.get("why") == "virtual douchette":
            entries.append({"vendor_product": "-", **running, "reader_pid": state["pid"]})
    reader = {"pid": state["pid"], "stall": state.get("stall")} if state else None
    if args.json:
        print(json.dumps({"devices": entries, "reader": reader}, ensure_ascii=False, indent=1))
        return 0
    if not entries:
        print(f"no input devices under {cfg.input_dir}")
    for e in entries:
        kind = "DOUCHETTE" if e["douchette"] else "-"
        grab = " grabbed" if e["grabbed"] else ""
        print(f"{e['path']:<22} {kind:<9}{grab:<8} {e['vendor_product']} {e['name']!r}  ({e['why']})")
    if reader and reader["stall"]:
        stall = reader["stall"]
        print(f"reader (pid {reader['pid']}): {stall['count']} reads, late by {stall['p999_ms']} ms at p99.9, "
              f"{stall['max_ms']} ms at most")  # fmt: skip
    return 0


def _grabbed_elsewhere(path: str) -> bool:
    """True when some program (the terminal, usually) holds the grab: our own grab attempt gets EBUSY."""
    import errno

    import evdev

    try:
        device = evdev.InputDevice(path, readonly=True)
    except OSError:
        return False
    try:
        device.grab()
    except OSError as e:
        return e.errno == errno.EBUSY
    else:
        device.ungrab()
        return False
    finally:
        device.close()


# -- type ------------------------------------------------------------------------------------------------------


def cmd_type(args: argparse.Namespace) -> int:
    from terminal.scanner.virtual import default_socket, send

    path = args.socket or default_socket()
    try:
        send(args.text, path, layout=args.layout, style=args.style, interval=args.interval)
    except (OSError, RuntimeError) as e:
        print(f"scanner type: {path}: {e} (is `aptic-terminal scanner listen --virtual` running?)", file=sys.stderr)
        return 1
    return 0
