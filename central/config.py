"""Settings of a central: where its data lives, which database it uses, and its secret key.

The secret key makes pass authenticators (``aptic.passnumber.hmac_authenticator``). It comes from the
environment variable ``APTIC_CENTRAL_SECRET`` or, failing that, from ``secret.key`` in the data directory,
created with mode 0600 on first run. It is never written to the database and never logged: whoever holds it
can mint valid pass numbers.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from central.db import default_data_dir, default_url, ensure_data_dir

SECRET_ENV = "APTIC_CENTRAL_SECRET"
SECRET_FILE = "secret.key"


def load_secret(data_dir: Path) -> bytes:
    """The secret key: from ``$APTIC_CENTRAL_SECRET``, else the data directory's key file (made if missing)."""
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return from_env.encode("utf-8")
    ensure_data_dir(data_dir)
    path = data_dir / SECRET_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return path.read_text("ascii").strip().encode("utf-8")


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    db_url: str
    secret: bytes

    def __repr__(self) -> str:  # never print the key
        return f"Settings(data_dir={self.data_dir!s}, db_url={self.db_url!r}, secret=<hidden>)"


def settings(db_url: str | None = None, data_dir: str | Path | None = None) -> Settings:
    """Resolve the settings from command-line values, the environment and defaults."""
    directory = Path(data_dir) if data_dir else default_data_dir()
    url = db_url or os.environ.get("APTIC_CENTRAL_DB") or default_url(ensure_data_dir(directory))
    return Settings(directory, url, load_secret(directory))
