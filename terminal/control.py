"""The daemon's control socket: what another process asks of a running ``aptic-terminal run``.

The daemon owns its data directory: its store keeps what it wrote in memory, so a second process writing
the same files (``aptic-terminal activate`` while the daemon runs, or first boot reading an activation file)
would be overwritten by the daemon's next write, and the daemon would not know it had been activated. Such
a command is therefore handed to the daemon through a Unix socket in the data directory (mode 0600: only
the daemon's user and root reach it), which runs it in-process and answers.

One request per connection, one JSON line each way::

    {"command": "activate", "central": "https://...", "kit": "AK-...", "code": "...", "pin_hash": null}
    {"ok": true, "result": {...}}   or   {"ok": false, "message_fr": "Code d'activation incorrect."}

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as directory:
...     path = pathlib.Path(directory) / SOCKET
...     with ControlServer(path, {"echo": lambda args: args}) as server:
...         request(path, "echo", word="bonjour")
{'word': 'bonjour'}
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from terminal.terminal import TerminalError

logger = logging.getLogger(__name__)

SOCKET = "control.sock"
MAX_REQUEST = 64 * 1024
Handler = Callable[[dict[str, Any]], Any]


class NoDaemon(Exception):
    """No daemon listens on the control socket: the caller may do the work itself."""


class ControlServer:
    """Serves ``handlers`` (command name → function of the request's arguments) on a Unix socket.

    A handler's :class:`~terminal.terminal.TerminalError` goes back as its French message; any other error
    is logged here and answered with a generic message, and the server goes on.
    """

    def __init__(self, path: Path, handlers: Mapping[str, Handler]) -> None:
        self.path = Path(path)
        self.handlers = dict(handlers)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ControlServer:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a daemon that was killed
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # born 0600: no window in which another user could connect
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old_umask)
        sock.listen(4)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="aptic-control", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # stopped
            with conn:
                try:
                    conn.settimeout(10)
                    answer = self._answer(_read_line(conn))
                    conn.sendall(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
                except (OSError, ValueError) as error:
                    logger.warning("Control request dropped: %s", error)

    def _answer(self, raw: bytes) -> dict[str, Any]:
        request = json.loads(raw)
        handler = self.handlers.get(request.pop("command", None)) if isinstance(request, dict) else None
        if handler is None:
            return {"ok": False, "message_fr": "Commande inconnue du terminal."}
        try:
            return {"ok": True, "result": handler(request)}
        except TerminalError as error:
            return {"ok": False, "message_fr": error.message_fr}
        except Exception:
            logger.exception("Control command failed")
            return {"ok": False, "message_fr": "Le terminal n'a pas pu exécuter la commande."}


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError("control request too long")
    return data


class Refused(TerminalError):
    """The daemon ran the command and refused it; ``message_fr`` says why."""


def request(path: Path, command: str, *, timeout: float = 60.0, **arguments: Any) -> Any:
    """Ask the daemon listening on ``path`` to run ``command``; its result, or :class:`Refused`.

    :class:`NoDaemon` when nothing listens there (no daemon, or one that died and left its socket).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as error:
            raise NoDaemon(str(error)) from error
        sock.sendall(json.dumps({"command": command, **arguments}).encode() + b"\n")
        answer = json.loads(_read_line(sock) or b"{}")
    if not answer.get("ok"):
        message = answer.get("message_fr") or "Le terminal n'a pas répondu."
        raise Refused(f"daemon refused {command}", message)
    return answer.get("result")
