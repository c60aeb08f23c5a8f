"""Run the Alembic migrations without an alembic.ini.

python -m shared.db.migrate                  # upgrade DATABASE_URL to head
python -m shared.db.migrate current          # print the current revision
python -m shared.db.migrate downgrade base   # drop everything (development only)
python -m shared.db.migrate revision "add x"  # autogenerate a new revision to review
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from shared.db.session import make_engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    """An Alembic config for `url` with the script location set (no ini file)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision` (a no-op when it is there already)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Take the database at `url` down to `revision` ('base' drops every table)."""
    command.downgrade(alembic_config(url), revision)


def new_revision(url: str, message: str) -> None:
    """Autogenerate a revision from the models' difference to the database at `url`."""
    command.revision(alembic_config(url), message=message, autogenerate=True)


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    from shared.config import Settings

    parser = argparse.ArgumentParser(prog="python -m shared.db.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", default="upgrade", choices=("upgrade", "downgrade", "current", "revision"))
    parser.add_argument(
        "revision", nargs="?", help="target (upgrade: head; downgrade: required) or the new revision's message"
    )
    args = parser.parse_args(argv)
    url = Settings.from_env().database_url
    if args.action == "current":
        print(current_revision(url) or "(none)")
    elif args.action == "upgrade":
        upgrade(url, args.revision or "head")
    elif args.action == "revision":
        if not args.revision:
            parser.error("revision needs a message")
        new_revision(url, args.revision)
    else:
        if not args.revision:
            parser.error("downgrade needs a revision, e.g. 'base'")
        downgrade(url, args.revision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
