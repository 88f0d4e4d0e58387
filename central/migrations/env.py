"""Alembic environment: runs migrations on the connection ``central.db.migrate`` hands over, or on the
URL of the configuration when Alembic is driven from its own command line."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from central.schema import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
