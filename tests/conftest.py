"""Fixtures shared by several test folders.

* ``pg_server`` (session): a throw-away PostgreSQL cluster from Debian's ``postgresql`` on a free port, one
  for the whole run (the central's and the console's tests share it). As root, ``initdb``/``pg_ctl`` run as
  the ``postgres`` user. If it cannot start, the PostgreSQL tests fail with the server's log; they are never
  skipped silently.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from central.pgtemp import PostgresUnavailable, TempCluster


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TempCluster]:
    """The session's PostgreSQL cluster; a clear failure (never a skip) if it cannot start."""
    try:
        cluster = TempCluster.start()
    except PostgresUnavailable as error:
        pytest.fail(str(error))
    try:
        yield cluster
    finally:
        cluster.stop()
