"""Alembic environment for the ledger.

`Ledger` runs the migrations itself and hands over its connection (already in a
transaction); a URL in an Alembic config (`sqlalchemy.url`) also works, for writing new
revisions with `alembic revision --autogenerate`.
"""

from alembic import context
from sqlalchemy import create_engine

from vector_sync.core.ledger.db import VERSION_TABLE, UtcDateTime, metadata


def render_item(type_, obj, autogen_context):
    # revisions must not import the app's types: they stay valid when the app changes
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection):
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite can only ALTER through table copies
        compare_server_default=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.connect() as new_connection:
        run_migrations(new_connection)
    engine.dispose()
