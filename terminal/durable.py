"""Durable file primitives under the terminal's store: atomic replacement, orphan sweep, quarantine.

A bus may lose power at every stop, so a file the store depends on must hold, after any instant, either its
old bytes or its new ones. Three rules give that on Linux:

1. write a new version to a temporary file in the same directory and ``fsync`` it;
2. ``rename`` it over the old one (atomic within one file system);
3. ``fsync`` the directory, without which the rename itself may be forgotten by a power cut.

>>> import tempfile
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as directory:
...     path = Path(directory) / "state.json"
...     atomic_write_bytes(path, b'{"a": 1}')
...     path.read_bytes()
b'{"a": 1}'

:mod:`terminal.store` re-exports everything here; import from there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"


class StoreError(Exception):
    """Base class of the store's errors. ``message_fr`` says it on screen."""

    message_fr = "Erreur d'enregistrement."


class ReadOnly(StoreError):
    """A write through a store opened read-only."""

    message_fr = "Lecture seule : rien n'a été enregistré."


def fsync_directory(directory: Path) -> None:
    """Make a rename or an unlink in ``directory`` durable (POSIX needs the directory itself fsync'd)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = 0o600) -> None:
    """Replace ``path`` with ``data`` so that, whatever happens, the file holds either the old or the new bytes.

    Temporary files are made in the same directory (a rename is atomic only within a file system) and named
    ``<name>.<random>.tmp``; a kill leaves them behind, and :func:`sweep_orphans` removes them. ``mode=None``
    leaves the mode alone: on FAT (a boot partition) a chmod to a mode the mount cannot show fails with EPERM.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(path.parent)


def sweep_orphans(directory: Path) -> list[Path]:
    """Delete the temporary files that writes killed half-way left in ``directory``; return them."""
    swept = []
    for tmp in Path(directory).glob("*" + TMP_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            swept.append(tmp)
    if swept:
        fsync_directory(Path(directory))
        logger.info("Removed %d temporary file(s) left by interrupted writes in %s", len(swept), directory)
    return swept


def corrupt_name(path: Path) -> Path:
    """A free name beside ``path`` for its unreadable bytes: ``<name>.corrupt-<UTC timestamp>[-n]``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    return target


def quarantine(path: Path, why: str) -> Path:
    """Move an unreadable file aside as ``<name>.corrupt-<UTC timestamp>`` and say so in the log."""
    target = corrupt_name(path)
    os.replace(path, target)
    fsync_directory(path.parent)
    logger.error("Store file %s is unreadable (%s): moved aside to %s; continuing with an empty %s",
                 path, why, target.name, path.name)  # fmt: skip
    return target
