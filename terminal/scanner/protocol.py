"""The lines the reader process sends the daemon: one JSON object per line, its kind as its only key.

::

    {"ready": {"pid": 1234, "priority": "SCHED_RR 10"}}         once, when the reader runs
    {"read": {"device": ..., "text": ..., "layout": ..., "monotonic": ..., "wall": ...}}
    {"discard": {"device": ..., "text": ..., "reason": ..., "monotonic": ..., "wall": ...}}
    {"devices": [...]}                                            what ``ScannerReader.devices()`` says, on change
    {"stall": {"count": ..., "p999_ms": ..., "max_ms": ..., ...}}  the reader's lateness, each second it changes

The daemon sends nothing: the reader process watches its end of the socket only to see it close (the daemon
is gone, so the reader ends and releases its grab). Times stay ``time.monotonic()`` and ``time.time()``
values, which the two processes share on one machine.

>>> line = encode_read(ScanRead("virtual", "126", "fr", 12.5, 1.7e9))
>>> decode(line)
('read', ScanRead(device='virtual', text='126', layout='fr', monotonic=12.5, wall=1700000000.0))
>>> decode(b'{"stall": {"count": 3}}')
('stall', {'count': 3})
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from terminal.scanner.reader import ScanDiscard, ScanRead


def _line(kind: str, body: Any) -> bytes:
    return json.dumps({kind: body}, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def encode_read(read: ScanRead) -> bytes:
    return _line("read", dataclasses.asdict(read))


def encode_discard(discard: ScanDiscard) -> bytes:
    return _line("discard", dataclasses.asdict(discard))


def encode(kind: str, body: Any) -> bytes:
    """``ready``, ``devices`` or ``stall`` lines."""
    return _line(kind, body)


def decode(line: bytes) -> tuple[str, Any]:
    """``(kind, body)`` of one line; reads and discards come back as :class:`ScanRead` / :class:`ScanDiscard`.

    Raises ValueError for a line that is not one of ours.
    """
    doc = json.loads(line)
    if not isinstance(doc, dict) or len(doc) != 1:
        raise ValueError(f"not a reader line: {line[:80]!r}")
    [(kind, body)] = doc.items()
    try:
        if kind == "read":
            return kind, ScanRead(**body)
        if kind == "discard":
            return kind, ScanDiscard(**body)
    except TypeError as error:
        raise ValueError(f"bad {kind} line: {error}") from error
    return kind, body
