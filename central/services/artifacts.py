"""What a command brings back: the terminal's logs (``upload_logs``) or its screen (``screenshot``).

The device runs the command, then ``PUT``s one file for it before it reports the command done, so the
operator who sees ``done`` finds the file there. The rules:

- only the device the command was sent to may attach it (any other is told the command does not exist, as
  for an id it never had: a device learns nothing of another's commands);
- only the kinds that produce a file, each with its one content type, and the file must start as that type
  does (an upload cut or mixed up is refused, not handed to the operator as a broken file);
- at most :data:`MAX_BYTES`; at most one per command: the same device sending it again (its answer lost, or
  the command run again after a crash, which ``upload_logs`` and ``screenshot`` may be) replaces it;
- not once the command is finished: what the operator read stays what the device sent.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from central import schema as t
from central.db import utc, write_transaction
from central.services.common import ServiceError

MAX_BYTES = 5 * 2**20  # a screen of 1920×1080 is about 0.3 MiB as a PNG; two rotated logs gzipped, far less
# The kinds that bring a file back, with its content type and the bytes it starts with.
TYPES = {"upload_logs": ("application/gzip", b"\x1f\x8b"), "screenshot": ("image/png", b"\x89PNG\r\n\x1a\n")}
FINISHED = frozenset({"done", "failed", "expired", "interrupted"})


def too_large() -> ServiceError:
    return ServiceError(413, "artifact_too_large", f"Fichier trop volumineux ({MAX_BYTES // 2**20} Mio au plus).",
                        {"body": f"at most {MAX_BYTES} bytes"})  # fmt: skip


def store(
    engine: Engine, device_id: int, command_id: str, content_type: str, data: bytes, now: datetime
) -> tuple[dict[str, Any], bool]:
    """Attach ``data`` to the device's command; returns its description and whether it replaced one."""
    if len(data) > MAX_BYTES:
        raise too_large()
    with write_transaction(engine) as conn:
        command = conn.execute(
            select(t.commands.c.kind, t.commands.c.status).where(
                (t.commands.c.id == command_id) & (t.commands.c.device_id == device_id)
            )
        ).first()
        if command is None:
            raise ServiceError(404, "unknown_command", "Commande inconnue.")
        if command.kind not in TYPES:
            raise ServiceError(409, "artifact_not_expected", f"Une commande {command.kind} ne rapporte pas de fichier.")
        if command.status in FINISHED:
            raise ServiceError(409, "command_finished", "Commande déjà terminée : son fichier ne change plus.")
        expected, magic = TYPES[command.kind]
        if content_type.split(";")[0].strip().lower() != expected or not data.startswith(magic):
            raise ServiceError(415, "unsupported_media_type", f"Attendu : un fichier {expected}.",
                               {"Content-Type": expected})  # fmt: skip
        values = {"content_type": expected, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                  "data": data, "received_at": now}  # fmt: skip
        key = t.command_artifacts.c.command_id == command_id
        replaced = conn.execute(update(t.command_artifacts).where(key).values(**values)).rowcount > 0
        if not replaced:
            conn.execute(insert(t.command_artifacts).values(command_id=command_id, **values))
    return {"command_id": command_id, "content_type": expected, "size": len(data), "sha256": values["sha256"],
            "received_at": utc(now).isoformat()}, replaced  # fmt: skip


def _described(row: Any) -> dict[str, Any]:
    return {"content_type": row.content_type, "size": row.size, "sha256": row.sha256,
            "received_at": utc(row.received_at).isoformat()}  # fmt: skip


def describe(conn: Connection, command_id: str) -> dict[str, Any] | None:
    """The artifact of a command without its bytes, or None."""
    a = t.command_artifacts.c
    row = conn.execute(
        select(a.content_type, a.size, a.sha256, a.received_at).where(a.command_id == command_id)
    ).first()
    return None if row is None else _described(row)


def fetch(engine: Engine, command_id: str) -> tuple[dict[str, Any], bytes]:
    """The artifact of a command (for the operator): its description and its bytes."""
    with engine.connect() as conn:
        row = conn.execute(select(t.command_artifacts).where(t.command_artifacts.c.command_id == command_id)).first()
    if row is None:
        raise ServiceError(404, "no_artifact", "Aucun fichier pour cette commande (pas encore reçu, ou aucun prévu).")
    return _described(row), bytes(row.data)
