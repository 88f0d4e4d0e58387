"""Accounts of the web console: users, passwords, memberships, invitation and reset links, the login rate
limit and the audit log.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile) and must follow
the CNIL's recommendation 2022-100 for a password guarded by a rate limit: at least 12 characters from at
least 3 of the 4 classes (lower case, upper case, digits, others), or a passphrase of at least 20 characters.
A login is refused, whatever the password, after ``MAX_FAILURES`` failures in ``FAILURE_WINDOW`` for the same
e-mail or the same client address.

Links (invitation, password reset) carry a random token; the database keeps only its sha256, with an expiry
and the time it was used, so a link works once and a stolen database holds no working link.

Every function takes ``now`` (the app's clock) and runs in its own transaction, like the other services.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from central import schema as t
from central.db import utc, write_transaction
from central.services.common import ServiceError, load_organisation

ROLES = ("member", "admin")
MIN_LENGTH = 12
PASSPHRASE_LENGTH = 20
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
INVITATION_TTL = timedelta(days=7)
RESET_TTL = timedelta(hours=1)

_hasher = PasswordHasher()  # argon2id, t=3, m=64 MiB, p=4


def use_hasher(hasher: PasswordHasher) -> None:
    """Replace the password hasher (tests use argon2's cheapest profile: the default costs ~0.4 s a hash)."""
    global _hasher
    _hasher = hasher


@dataclass(frozen=True, slots=True)
class User:
    """A console user as the views see it (never with their password hash)."""

    id: int
    email: str
    name: str
    is_operator: bool
    session_version: int
    memberships: dict[int, str]  # organisation id → role
    funders: dict[int, str] = field(default_factory=dict)  # commanditaire id → role (reader | admin)

    def role_in(self, organisation_id: int) -> str | None:
        return self.memberships.get(organisation_id)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def password_problem(password: str) -> str | None:
    """Why a new password is refused (a French sentence for the form), or None when it is strong enough."""
    if len(password) >= PASSPHRASE_LENGTH:
        return None
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if len(password) < MIN_LENGTH or classes < 3:
        return (
            f"Le mot de passe doit compter au moins {MIN_LENGTH} caractères dont trois types parmi minuscules, "
            f"majuscules, chiffres et caractères spéciaux, ou être une phrase d’au moins {PASSPHRASE_LENGTH} "
            "caractères."
        )
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _load_user(conn: Connection, user_id: int) -> User | None:
    row = conn.execute(select(t.users).where(t.users.c.id == user_id, t.users.c.disabled_at.is_(None))).first()
    if row is None:
        return None
    roles = {
        r.organisation_id: r.role for r in conn.execute(select(t.memberships).where(t.memberships.c.user_id == user_id))
    }
    funders = {
        r.commanditaire_id: r.role
        for r in conn.execute(select(t.funder_memberships).where(t.funder_memberships.c.user_id == user_id))
    }
    return User(row.id, row.email, row.name, bool(row.is_operator), row.session_version, roles, funders)


def load_user(engine: Engine, user_id: int) -> User | None:
    """The user, or None if unknown or disabled."""
    with engine.connect() as conn:
        return _load_user(conn, user_id)


def audit(
    conn: Connection,
    now: datetime,
    user_id: int | None,
    action: str,
    *,
    organisation_id: int | None = None,
    target: str = "",
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    """Append to the audit log, in the caller's transaction (so the entry exists iff the change does)."""
    conn.execute(
        insert(t.audit_log).values(
            at=now, user_id=user_id, organisation_id=organisation_id, action=action, target=target,
            details=details or {}, ip=ip,
        )
    )  # fmt: skip


def create_user(
    engine: Engine,
    email: str,
    now: datetime,
    *,
    password: str | None = None,
    name: str = "",
    organisation_id: int | None = None,
    role: str = "member",
    is_operator: bool = False,
) -> int:
    """Create a user (the CLI's ``add-user``); with an organisation, its membership too. An existing e-mail
    gets the membership added instead. Returns the user id."""
    email = normalise_email(email)
    if "@" not in email:
        raise ServiceError(400, "invalid_email", "Adresse e-mail invalide.", {"email": "invalid"})
    if role not in ROLES:
        raise ServiceError(400, "invalid_role", "Rôle inconnu.", {"role": "member or admin"})
    if password is not None and (problem := password_problem(password)):
        raise ServiceError(400, "weak_password", problem, {"password": "too weak"})
    with write_transaction(engine) as conn:
        row = conn.execute(select(t.users.c.id).where(t.users.c.email == email)).first()
        if row is None:
            user_id = conn.execute(
                insert(t.users).values(
                    email=email, name=name, is_operator=is_operator, created_at=now, session_version=1,
                    password_hash=hash_password(password) if password else None,
                    password_changed_at=now if password else None,
                )
            ).inserted_primary_key[0]  # fmt: skip
        else:
            user_id = row.id
            if is_operator:
                conn.execute(update(t.users).where(t.users.c.id == user_id).values(is_operator=True))
        if organisation_id is not None:
            load_organisation(conn, organisation_id)
            _set_membership(conn, user_id, organisation_id, role, now)
        audit(conn, now, None, "user.created", organisation_id=organisation_id, target=email,
              details={"role": role, "operator": is_operator})  # fmt: skip
        return int(user_id)


def _set_membership(conn: Connection, user_id: int, organisation_id: int, role: str, now: datetime) -> None:
    updated = conn.execute(
        update(t.memberships)
        .where(t.memberships.c.user_id == user_id, t.memberships.c.organisation_id == organisation_id)
        .values(role=role)
    ).rowcount
    if not updated:
        conn.execute(
            insert(t.memberships).values(user_id=user_id, organisation_id=organisation_id, role=role, created_at=now)
        )


def _failures(conn: Connection, key: str, now: datetime) -> int:
    return conn.execute(
        select(func.count()).where(t.login_failures.c.key == key, t.login_failures.c.at > now - FAILURE_WINDOW)
    ).scalar_one()


def authenticate(engine: Engine, email: str, password: str, ip: str, now: datetime) -> User:
    """The user whose e-mail and password these are. Raises ServiceError 401 (wrong e-mail or password, one
    message for both) or 429 (too many failures for this e-mail or this address)."""
    email = normalise_email(email)
    keys = (f"email:{email}"[:300], f"ip:{ip}")
    with write_transaction(engine) as conn:
        if any(_failures(conn, key, now) >= MAX_FAILURES for key in keys):
            audit(conn, now, None, "login.throttled", target=email, ip=ip)
            raise ServiceError(
                429, "too_many_attempts",
                "Trop de tentatives de connexion. Réessayez dans un quart d’heure ou réinitialisez votre "
                "mot de passe.",
            )  # fmt: skip
        row = conn.execute(select(t.users).where(t.users.c.email == email, t.users.c.disabled_at.is_(None))).first()
        ok = False
        if row is not None and row.password_hash:
            try:
                ok = _hasher.verify(row.password_hash, password)
            except (VerificationError, InvalidHashError):
                ok = False
        if not ok:
            for key in keys:
                conn.execute(insert(t.login_failures).values(key=key, at=now))
            audit(conn, now, row.id if row else None, "login.failed", target=email, ip=ip)
    # The failure rows must be committed, so the refusal is raised out of the transaction.
    if not ok:
        raise ServiceError(401, "bad_credentials", "Adresse e-mail ou mot de passe incorrect.")
    assert row is not None
    with write_transaction(engine) as conn:
        conn.execute(delete(t.login_failures).where(t.login_failures.c.key == keys[0]))
        if _hasher.check_needs_rehash(row.password_hash):
            conn.execute(update(t.users).where(t.users.c.id == row.id).values(password_hash=hash_password(password)))
        audit(conn, now, row.id, "login", target=email, ip=ip)
        user = _load_user(conn, row.id)
    assert user is not None
    return user


def check_password(engine: Engine, user_id: int, password: str) -> bool:
    """Whether this is the user's password (re-authentication before a sensitive change)."""
    with engine.connect() as conn:
        stored = conn.execute(select(t.users.c.password_hash).where(t.users.c.id == user_id)).scalar()
    if not stored:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def set_password(engine: Engine, user_id: int, password: str, now: datetime, *, ip: str | None = None) -> User:
    """Set a new password and end every session of the user (their session version moves on)."""
    if problem := password_problem(password):
        raise ServiceError(400, "weak_password", problem, {"password": "too weak"})
    with write_transaction(engine) as conn:
        conn.execute(
            update(t.users)
            .where(t.users.c.id == user_id)
            .values(password_hash=hash_password(password), password_changed_at=now,
                    session_version=t.users.c.session_version + 1)
        )  # fmt: skip
        audit(conn, now, user_id, "password.changed", ip=ip)
        user = _load_user(conn, user_id)
    if user is None:
        raise ServiceError(404, "unknown_user", "Compte inconnu.")
    return user


def end_sessions(engine: Engine, user_id: int, now: datetime) -> None:
    """ "Log out everywhere": every cookie of this user stops working."""
    with write_transaction(engine) as conn:
        conn.execute(
            update(t.users).where(t.users.c.id == user_id).values(session_version=t.users.c.session_version + 1)
        )
        audit(conn, now, user_id, "sessions.ended")


def new_link(
    engine: Engine,
    kind: str,
    email: str,
    now: datetime,
    *,
    organisation_id: int | None = None,
    role: str | None = None,
    created_by: int | None = None,
) -> str | None:
    """A fresh single-use token for an invitation (to an organisation, with a role) or a password reset.
    A reset for an unknown e-mail returns None (the page says the same either way)."""
    email = normalise_email(email)
    if kind == "invitation" and role not in ROLES:
        raise ServiceError(400, "invalid_role", "Rôle inconnu.", {"role": "member or admin"})
    token = secrets.token_urlsafe(32)
    with write_transaction(engine) as conn:
        if kind == "reset":
            exists = conn.execute(
                select(t.users.c.id).where(t.users.c.email == email, t.users.c.disabled_at.is_(None))
            ).first()
            if exists is None:
                return None
        conn.execute(
            insert(t.account_tokens).values(
                token_hash=_token_hash(token), kind=kind, email=email, organisation_id=organisation_id, role=role,
                created_by=created_by, created_at=now,
                expires_at=now + (INVITATION_TTL if kind == "invitation" else RESET_TTL),
            )
        )  # fmt: skip
        audit(conn, now, created_by, f"{kind}.sent", organisation_id=organisation_id, target=email,
              details={"role": role} if role else {})  # fmt: skip
    return token


def peek_link(engine: Engine, kind: str, token: str, now: datetime) -> Any:
    """The link's row if it can still be used (for the page that asks for the new password), else raises 404."""
    with engine.connect() as conn:
        row = conn.execute(
            select(t.account_tokens).where(
                t.account_tokens.c.token_hash == _token_hash(token), t.account_tokens.c.kind == kind
            )
        ).first()
    if row is None or row.used_at is not None or utc(row.expires_at) <= now:
        raise ServiceError(404, "link_invalid", "Ce lien n’est plus valable : demandez-en un nouveau.")
    return row


def use_link(engine: Engine, kind: str, token: str, password: str, now: datetime, *, name: str = "") -> User:
    """Use an invitation (creates the account or adds the membership, sets the password) or a reset link
    (sets the password, ending other sessions). The link is spent in the same transaction, once."""
    if problem := password_problem(password):
        raise ServiceError(400, "weak_password", problem, {"password": "too weak"})
    digest = _token_hash(token)
    with write_transaction(engine) as conn:
        row = conn.execute(
            select(t.account_tokens).where(t.account_tokens.c.token_hash == digest, t.account_tokens.c.kind == kind)
        ).first()
        if row is None or row.used_at is not None or utc(row.expires_at) <= now:
            raise ServiceError(404, "link_invalid", "Ce lien n’est plus valable : demandez-en un nouveau.")
        spent = conn.execute(
            update(t.account_tokens)
            .where(t.account_tokens.c.token_hash == digest, t.account_tokens.c.used_at.is_(None))
            .values(used_at=now)
        ).rowcount
        if spent != 1:  # a concurrent use won
            raise ServiceError(404, "link_invalid", "Ce lien n’est plus valable : demandez-en un nouveau.")
        user = conn.execute(select(t.users).where(t.users.c.email == row.email)).first()
        values = {"password_hash": hash_password(password), "password_changed_at": now}
        if user is None:
            user_id = conn.execute(
                insert(t.users).values(email=row.email, name=name, created_at=now, session_version=1, **values)
            ).inserted_primary_key[0]
        else:
            user_id = user.id
            changes: dict[str, Any] = dict(values, session_version=t.users.c.session_version + 1)
            if name:
                changes["name"] = name
            conn.execute(update(t.users).where(t.users.c.id == user_id).values(**changes))
        if kind == "invitation" and row.organisation_id is not None:
            _set_membership(conn, user_id, row.organisation_id, row.role or "member", now)
        audit(conn, now, user_id, f"{kind}.used", organisation_id=row.organisation_id, target=row.email)
        loaded = _load_user(conn, user_id)
    assert loaded is not None
    return loaded


def set_role(engine: Engine, by: int, organisation_id: int, user_id: int, role: str | None, now: datetime) -> None:
    """Change a member's role, or remove them (``role=None``). An organisation keeps at least one admin."""
    if role is not None and role not in ROLES:
        raise ServiceError(400, "invalid_role", "Rôle inconnu.", {"role": "member or admin"})
    with write_transaction(engine) as conn:
        current = conn.execute(
            select(t.memberships.c.role).where(
                t.memberships.c.user_id == user_id, t.memberships.c.organisation_id == organisation_id
            )
        ).scalar()
        if current is None:
            raise ServiceError(404, "unknown_member", "Membre inconnu.")
        if current == "admin" and role != "admin":
            admins = conn.execute(
                select(func.count()).where(
                    t.memberships.c.organisation_id == organisation_id, t.memberships.c.role == "admin"
                )
            ).scalar_one()
            if admins <= 1:
                raise ServiceError(409, "last_admin", "L’organisation doit garder au moins un administrateur.")
        where = (t.memberships.c.user_id == user_id, t.memberships.c.organisation_id == organisation_id)
        if role is None:
            conn.execute(delete(t.memberships).where(*where))
        else:
            conn.execute(update(t.memberships).where(*where).values(role=role))
        # No session to end: every request loads the user's memberships afresh (console.access).
        audit(conn, now, by, "member.removed" if role is None else "member.role", organisation_id=organisation_id,
              target=str(user_id), details={"role": role} if role else {})  # fmt: skip
