"""A throw-away PostgreSQL cluster (Debian's ``postgresql`` binaries) for the test suite and the bench.

``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres`` user in a
directory it owns. The cluster listens on 127.0.0.1 on a free port, trusts local connections, and is
deleted on ``stop()``. Not for production: fsync is off.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

PG_BIN = Path(os.environ.get("APTIC_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresUnavailable(RuntimeError):
    """The cluster could not be created or started; the message says why (server log included)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class TempCluster:
    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.directory = directory
        self._names = itertools.count(1)

    @classmethod
    def start(cls) -> TempCluster:
        if not (PG_BIN / "initdb").exists():
            raise PostgresUnavailable(f"PostgreSQL binaries not found in {PG_BIN}: run `scripts/bootstrap test`")
        directory = Path(tempfile.mkdtemp(prefix="aptic-pg-"))
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres", "postgres")
        data, log, port = directory / "data", directory / "server.log", free_port()
        init = subprocess.run(
            _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]),
            capture_output=True,
            text=True,
        )
        if init.returncode != 0:
            shutil.rmtree(directory, ignore_errors=True)
            raise PostgresUnavailable(f"initdb failed: {init.stdout}{init.stderr}")
        options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        started = subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]),
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            text = log.read_text() if log.exists() else ""
            shutil.rmtree(directory, ignore_errors=True)
            raise PostgresUnavailable(f"PostgreSQL did not start: {started.stdout}{started.stderr}\n{text}")
        return cls(port, directory)

    def admin_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def new_database(self) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        name = f"central_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(self.directory, ignore_errors=True)
