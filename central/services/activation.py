"""Activation of a kit and authentication of devices.

A kit (a terminal as shipped to an organisation) carries a kit number and a single-use activation code,
valid 7 days by default. Trading both for a device token is the only way in:

* unknown kit or wrong code: 403 (the same answer, so kit numbers cannot be probed); each wrong code counts,
  and the fifth in a row locks the kit for 15 minutes (429 with ``Retry-After``);
* a code already used: 409, until the central re-issues one (``aptic-central reissue-code``);
* an expired code: 403 ``activation_code_expired``.

The token is 256 random bits (``secrets.token_urlsafe(32)``); only its sha256 is stored. Activating a kit
again (with a re-issued code) revokes the devices it activated before. A revoked device's token gets 401.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from central import schema as t
from central.db import utc, write_transaction
from central.services.admin import hash_secret, normalise_code
from central.services.common import ServiceError, organisation_dict, point_dict

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)


def _refused() -> ServiceError:
    return ServiceError(403, "invalid_activation", "Numéro de kit ou code d'activation incorrect.")


def activate(engine: Engine, kit_number: str, code: str, device: dict[str, str], now: datetime) -> dict[str, Any]:
    """Trade a kit number and its activation code for a device token. See the module docstring."""
    with write_transaction(engine) as conn:
        result = _activate(conn, kit_number, code, device, now)
    if result is None:
        raise _refused()
    return result


def _activate(
    conn: Connection, kit_number: str, code: str, device: dict[str, str], now: datetime
) -> dict[str, Any] | None:
    """The activation inside its transaction; None for a wrong code (after counting it), so it commits."""
    given = hash_secret(normalise_code(code))
    kit = conn.execute(select(t.kits).where(t.kits.c.kit_number == kit_number.strip().upper())).first()
    if kit is None:
        hmac.compare_digest(given, given)  # same work as a real comparison
        raise _refused()
    locked_until = utc(kit.locked_until)
    if locked_until is not None and locked_until > now:
        seconds = int((locked_until - now).total_seconds()) + 1
        raise ServiceError(
            429,
            "kit_locked",
            f"Trop d'essais : kit verrouillé, réessayez dans {(seconds + 59) // 60} min.",
            retry_after=seconds,
        )
    expected = kit.code_hash or ""
    if not hmac.compare_digest(given, expected):
        failures = kit.failed_attempts + 1
        values: dict[str, Any] = {"failed_attempts": failures}
        if failures >= MAX_FAILURES:
            values = {"failed_attempts": 0, "locked_until": now + LOCKOUT}
        conn.execute(update(t.kits).where(t.kits.c.id == kit.id).values(**values))
        return None  # committed: the failure counts even though we refuse
    if kit.code_used_at is not None:
        raise ServiceError(409, "kit_already_activated", "Ce kit est déjà activé : demandez un nouveau code.")
    expires = utc(kit.code_expires_at)
    if expires is not None and expires <= now:
        raise ServiceError(403, "activation_code_expired", "Code d'activation expiré : demandez un nouveau code.")
    used = conn.execute(
        update(t.kits)
        .where(t.kits.c.id == kit.id, t.kits.c.code_used_at.is_(None))
        .values(code_used_at=now, failed_attempts=0, locked_until=None)
    ).rowcount
    if used != 1:  # another request won the race for this code
        raise ServiceError(409, "kit_already_activated", "Ce kit est déjà activé : demandez un nouveau code.")
    conn.execute(
        update(t.devices).where(t.devices.c.kit_id == kit.id, t.devices.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    token = secrets.token_urlsafe(32)
    device_id = conn.execute(
        insert(t.devices)
        .values(
            kit_id=kit.id,
            organisation_id=kit.organisation_id,
            token_hash=hash_secret(token),
            serial=device["serial"],
            model=device["model"],
            software_version=device["software_version"],
            activated_at=now,
        )
        .returning(t.devices.c.id)
    ).scalar_one()
    org = conn.execute(select(t.organisations).where(t.organisations.c.id == kit.organisation_id)).one()
    pts = conn.execute(
        select(t.points).where(t.points.c.organisation_id == kit.organisation_id).order_by(t.points.c.id)
    ).all()
    return {
        "device_id": int(device_id),
        "token": token,
        "organisation": organisation_dict(org),
        "points_de_presence": [point_dict(p) for p in pts],
    }


_BY_TOKEN = select(
    t.devices.c.id, t.devices.c.organisation_id, t.devices.c.token_hash, t.devices.c.revoked_at, t.devices.c.generation
).where(t.devices.c.token_hash == bindparam("digest"))


def authenticate(conn: Connection, token: str) -> Any:
    """The active device holding ``token``, or a 401 ServiceError.

    The lookup is by the token's sha256 (an index probe on a hash reveals nothing about the token), then the
    stored hash is compared in constant time.
    """
    digest = hash_secret(token)
    return check_device(conn.execute(_BY_TOKEN, {"digest": digest}).first(), digest)


def check_device(row: Any, digest: str) -> Any:
    """``row`` (with ``token_hash`` and ``revoked_at``) if it is an active device's for ``digest``, else a 401."""
    if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None:
        raise ServiceError(401, "unauthorized", "Appareil non reconnu ou révoqué : activez-le à nouveau.")
    return row
