"""The virtual douchette: text written to a local socket is "scanned", for the demo and the tests.

It is a software scanner, not a shortcut: each line becomes the key events a real douchette emulating the
chosen layout would send (:mod:`terminal.scanner.typist`), one key every ``interval`` seconds, written as
``struct input_event`` records into a pipe that the :class:`~terminal.scanner.reader.ScannerReader` reads like
any grabbed node. So a virtual scan goes through the same decoder (``auto`` layout detection included) and the
same callbacks to the Terminal as a real one.

Server side (``aptic-terminal scanner listen --virtual``)::

    douchette = VirtualDouchette("/run/aptic/scanner.sock", layout="fr")
    douchette.attach(reader)     # before or after reader.start()
    douchette.start()

Client side (``aptic-terminal scanner type 126000123407624598 --layout fr``)::

    send("126000123407624598", "/run/aptic/scanner.sock", layout="fr")

Protocol on the unix stream socket: one line per scan, either plain text (typed in the server's layout and
style) or a JSON object ``{"text": ..., "layout": "us|fr", "style": ..., "interval": seconds}``; the server
answers ``ok`` once the keys are typed, or ``error: ...``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time

from terminal.scanner.keymaps import KEY_ENTER, LAYOUTS
from terminal.scanner.reader import ScannerReader, StructSource
from terminal.scanner.typist import STYLES, events_for, key_transitions

log = logging.getLogger(__name__)


def default_socket() -> str:
    """``$APTIC_SCANNER_SOCKET``, else ``$XDG_RUNTIME_DIR/aptic-scanner.sock``, else one in /tmp per user."""
    if path := os.environ.get("APTIC_SCANNER_SOCKET"):
        return path
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(runtime, "aptic-scanner.sock")
    return f"/tmp/aptic-scanner-{os.getuid()}.sock"


class VirtualDouchette:
    """A douchette made of software, fed through a unix socket (see the module docstring)."""

    def __init__(
        self,
        socket_path: str | None = None,
        layout: str = "us",
        style: str = "plain",
        interval: float = 0.008,
        device_id: str = "virtual",
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}")
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r}")
        self.socket_path = socket_path or default_socket()
        self.layout, self.style, self.interval = layout, style, interval
        self.device_id = device_id
        self.source = StructSource(path=f"virtual:{self.socket_path}")
        self._typing = threading.Lock()  # one scan at a time, like a real scanner
        self._server: socket.socket | None = None
        self._stopped = threading.Event()

    def attach(self, reader: ScannerReader) -> None:
        """Make ``reader`` read this douchette."""
        reader.add_source(self.source, self.device_id, "virtual douchette")

    def scan(
        self, text: str, layout: str | None = None, style: str | None = None, interval: float | None = None
    ) -> None:
        """Type ``text`` and Enter, in real time (returns when the last key is up)."""
        transitions = key_transitions(text, layout or self.layout, style or self.style)
        transitions += [(KEY_ENTER, 1), (KEY_ENTER, 0)]
        step = (self.interval if interval is None else interval) / 2
        with self._typing:
            for transition in transitions:
                self.source.write_events(events_for([transition], start=time.monotonic()))
                if step > 0:
                    time.sleep(step)

    def start(self) -> None:
        """Listen on the socket, in a daemon thread."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self.socket_path)
        os.chmod(self.socket_path, 0o660)
        server.listen(8)
        self._server = server
        threading.Thread(target=self._accept, name="virtual-douchette", daemon=True).start()
        log.info("virtual douchette listening on %s (layout %s)", self.socket_path, self.layout)

    def stop(self) -> None:
        """Stop listening and unplug (the reader sees the device go away)."""
        self._stopped.set()
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)
        self.source.unplug()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stopped.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn, conn.makefile("rw", encoding="utf-8", newline="\n") as f:
            for line in f:
                line = line.rstrip("\r\n")
                try:
                    if line.startswith("{"):
                        msg = json.loads(line)
                        self.scan(str(msg["text"]), msg.get("layout"), msg.get("style"), msg.get("interval"))
                    else:
                        self.scan(line)
                    f.write("ok\n")
                except (ValueError, KeyError, TypeError, AttributeError) as e:
                    f.write(f"error: {e}\n")
                f.flush()


def send(text: str, socket_path: str | None = None, layout: str | None = None, style: str | None = None,
         interval: float | None = None, timeout: float = 30.0) -> None:  # fmt: skip
    """Scan ``text`` on the virtual douchette listening at ``socket_path``; raise on error."""
    msg = {"text": text, "layout": layout, "style": style, "interval": interval}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(socket_path or default_socket())
        s.sendall((json.dumps({k: v for k, v in msg.items() if v is not None}) + "\n").encode())
        answer = s.makefile("r", encoding="utf-8").readline().strip()
    if answer != "ok":
        raise RuntimeError(answer or "virtual douchette closed the connection")
