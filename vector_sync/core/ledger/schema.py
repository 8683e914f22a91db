"""The ledger's schema revision: brought to this version's by the Alembic migrations in
`migrations/` when a ledger is opened for writing, only checked when it is opened read-only."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect, text

from vector_sync.core.ledger.db import VERSION_TABLE, write_transaction
from vector_sync.core.ledger.outages import LedgerUnavailable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# the newest migration (a test checks that Alembic agrees): a ledger already there is opened
# without Alembic
HEAD_REVISION = "0005"


class MigrationFailed(Exception):
    """Alembic could not bring the schema to the current revision."""


class SchemaNotCurrent(LedgerUnavailable):
    """A ledger opened read-only is not at this version's schema revision: `revision` None
    means it has no tables yet (nothing was synced into it)."""

    def __init__(self, url: str, revision: str | None) -> None:
        self.revision = revision
        super().__init__(
            f"the ledger at {url} has no tables yet" if revision is None else
            f"the ledger at {url} is at schema revision {revision}, older than this "
            f"version's ({HEAD_REVISION}): run `vector-sync sync` first, which upgrades it "
            "(plan, status and verify never change the ledger)")


def migrate(engine: Engine) -> None:
    """Bring the schema to HEAD_REVISION (creating the tables in an empty database)."""
    if revision(engine) == HEAD_REVISION:
        return  # the usual case: no Alembic to import, no migration scripts to read
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    config = Config()
    # ConfigParser interpolates '%', which a folder name may contain
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            # processes opening a fresh database at once must not both create the tables
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('vector_sync.ledger'))"))
        config.attributes["connection"] = conn
        try:
            command.upgrade(config, "head")
        except CommandError as error:
            raise MigrationFailed(str(error)) from None


def check_schema(engine: Engine, masked_url: str) -> None:
    """SchemaNotCurrent unless the database is at HEAD_REVISION; changes nothing."""
    found = revision(engine)
    if found != HEAD_REVISION:
        raise SchemaNotCurrent(masked_url, found)


def revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None before the first migration). An
    unreachable database raises: it must be waited for, not read as "no tables" (which would
    let Alembic try to create them)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    return str(versions[0][0]) if len(versions) == 1 else None
