"""The fleet's ``screenshot``: the kiosk's screen as a PNG, taken by the screen's own user.

The daemon (user ``aptic``) cannot reach the screen: cage runs as ``aptic-screen``, its Wayland socket in that
user's runtime directory (mode 0700), and giving the daemon that access would give it the browser's session.
So the daemon only asks, through a directory both share (``/run/aptic-screenshot``, made at boot by
``systemd/tmpfiles.d/aptic-screenshot.conf``, ``aptic-screen:aptic`` 2770):

1. the daemon removes any old ``screen.png`` and writes ``request``;
2. ``aptic-screenshot.path`` sees it and starts ``aptic-screenshot.service``, which runs ``grim`` as
   ``aptic-screen`` against cage's display (cage offers wlr-screencopy), writes ``screen.png`` atomically
   (a temporary name, then a rename) and removes ``request`` whatever happened;
3. the daemon takes a ``screen.png`` newer than its request, and removes it (RAM is scarce).

It waits at most ``timeout`` seconds; a request removed with no screen means the unit failed (its journal
says why). No such directory (a workstation, the demo): there is no screen, and it says so at once.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

DIRECTORY = Path("/run/aptic-screenshot")
REQUEST = "request"
SCREEN = "screen.png"
PNG = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 5 * 2**20  # the central's limit for an artifact


class NoScreen(RuntimeError):
    """This terminal has no screen to take (no screenshot directory)."""


def capture(directory: Path = DIRECTORY, *, timeout: float = 20.0, poll: float = 0.1) -> bytes:
    """Ask for the screen and wait for it (see the module doc); the PNG's bytes, else RuntimeError."""
    if not directory.is_dir():
        raise NoScreen(f"no screen on this terminal ({directory} does not exist)")
    request, screen = directory / REQUEST, directory / SCREEN
    screen.unlink(missing_ok=True)  # one a timed-out request left behind
    fd = os.open(request, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        asked = os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)
    deadline = time.monotonic() + timeout
    while True:
        data = _fresh(screen, asked)
        if data is not None:
            return data
        if not request.exists():  # the unit ran; it renames the screen before it removes the request
            data = _fresh(screen, asked)
            if data is not None:
                return data
            raise RuntimeError("the screen did not answer (see journalctl -u aptic-screenshot.service)")
        if time.monotonic() > deadline:
            request.unlink(missing_ok=True)
            raise RuntimeError(f"no screenshot within {timeout:g} s (is aptic-screenshot.path enabled?)")
        time.sleep(poll)


def _fresh(screen: Path, asked: int) -> bytes | None:
    """The screen's PNG if there is one taken after the request (then removed), else None."""
    try:
        stat = screen.stat()
    except FileNotFoundError:
        return None
    if stat.st_mtime_ns < asked:
        return None  # an older one, renamed in late: the unit will write ours
    if stat.st_size > MAX_BYTES:
        screen.unlink(missing_ok=True)
        raise RuntimeError(f"screenshot too large ({stat.st_size} bytes)")
    data = screen.read_bytes()
    screen.unlink(missing_ok=True)
    if not data.startswith(PNG):
        raise RuntimeError("the screenshot is not a PNG")
    logger.info("Screenshot taken: %d bytes", len(data))
    return data
