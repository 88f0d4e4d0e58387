"""The daemon's own recent log, and the archive the fleet's ``upload_logs`` sends to the central.

Why a file besides the journal: the daemon runs unprivileged and cannot read the journal, and what an operator
needs after "the terminal restarted" is the log of the crash *before* the restart. So ``aptic-terminal run``
also writes its log to ``aptic-terminal.log`` in ``APTIC_TERMINAL_LOG_DIR`` (the ``log_dir`` setting; unset, no
file). The unit sets ``/run/aptic-terminal``: in RAM, so the SD card does not wear, and kept across the
daemon's restarts (``RuntimeDirectoryPreserve=yes``), gone at reboot. Bounded: the file and one older one,
512 KiB each.

``upload_logs`` packs those files and the update guard's rollback logs (``logs/*.log`` under
``APTIC_UPDATES_DIR``, ``/var/lib/aptic/updates`` by default; none, when the directory is missing) as a
``.tar.gz`` in memory, at most :data:`ARCHIVE_MAX` bytes.

No secret goes into these logs: the project never logs the device token, and the file's formatter hides an
``Authorization: Bearer`` value should a library ever print one (tests/terminal/test_terminal_fleet.py
checks an uploaded archive for the token).
"""

from __future__ import annotations

import io
import logging
import os
import re
import tarfile
from collections.abc import Mapping
from logging.handlers import RotatingFileHandler
from pathlib import Path

logger = logging.getLogger(__name__)

LOG_NAME = "aptic-terminal.log"
MAX_BYTES = 512 * 1024  # per file; the file and BACKUPS older ones
BACKUPS = 1
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
UPDATES_DIR = Path("/var/lib/aptic/updates")
FILE_MAX = 1024 * 1024  # read of one file, from its end: a rotated log overshoots MAX_BYTES by one record at most
ARCHIVE_MAX = 4 * 1024 * 1024  # under the central's 5 MiB for an artifact
_BEARER = re.compile(r"(Bearer\s+)[^\s'\"]+", re.IGNORECASE)


class RedactingFormatter(logging.Formatter):
    """The usual format, with any bearer token replaced by ``[hidden]``."""

    def format(self, record: logging.LogRecord) -> str:
        return _BEARER.sub(r"\1[hidden]", super().format(record))


def install(directory: Path | None) -> RotatingFileHandler | None:
    """Add the file log in ``directory`` to the root logger (None: no file); returns the handler."""
    if directory is None:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(directory / LOG_NAME, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    except OSError as error:  # a log that cannot be written must not stop the terminal
        logger.error("Log file in %s not opened (%s): journal only", directory, error)
        return None
    handler.setFormatter(RedactingFormatter(FORMAT))
    logging.getLogger().addHandler(handler)
    return handler


def updates_dir(env: Mapping[str, str] | None = None) -> Path:
    """``APTIC_UPDATES_DIR``, as the update guard reads it."""
    env = os.environ if env is None else env
    return Path(env.get("APTIC_UPDATES_DIR") or UPDATES_DIR)


def log_files(log_dir: Path | None, updates: Path | None) -> list[tuple[str, Path]]:
    """(name in the archive, path) of each log there is: the daemon's, oldest first, then the rollbacks'."""
    found: list[tuple[str, Path]] = []
    if log_dir is not None:
        for suffix in [f".{n}" for n in range(BACKUPS, 0, -1)] + [""]:
            path = log_dir / (LOG_NAME + suffix)
            if path.is_file():
                found.append((f"aptic-terminal/{path.name}", path))
    if updates is not None:
        try:
            rollbacks = sorted((updates / "logs").glob("*.log"))
        except OSError:  # unreadable: the guard's, not ours
            rollbacks = []
        found += [(f"updates/{path.name}", path) for path in rollbacks if path.is_file()]
    return found


def _tail(path: Path, limit: int) -> tuple[bytes, float]:
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - limit))
        return f.read(limit), os.fstat(f.fileno()).st_mtime


def archive(files: list[tuple[str, Path]], *, limit: int = ARCHIVE_MAX) -> bytes:
    """The files as a .tar.gz in memory, each cut to its last :data:`FILE_MAX` bytes; RuntimeError when there
    is none, or when the archive would pass ``limit``."""
    if not files:
        raise RuntimeError("no log file on this terminal (APTIC_TERMINAL_LOG_DIR unset, no update log)")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6) as tar:
        for name, path in files:
            try:
                data, mtime = _tail(path, FILE_MAX)
            except OSError as error:  # rotated away meanwhile, or not ours to read: the others still go
                logger.warning("Log %s not packed: %s", path, error)
                continue
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(mtime), 0o600
            tar.addfile(info, io.BytesIO(data))
            if out.tell() > limit:
                break
    if out.tell() > limit:
        raise RuntimeError(f"logs too large to send ({out.tell()} bytes packed, {limit} at most)")
    return out.getvalue()
