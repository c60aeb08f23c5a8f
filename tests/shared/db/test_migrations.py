"""The one Alembic revision builds exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from shared.db import migrate
from shared.db.models import Base
from shared.db.session import make_engine

TABLES = {"users", "vtons", "jobs", "garment_assets", "notification_outbox", "api_keys", "webhook_deliveries"}


def schema_diffs(url: str, metadata: sa.MetaData = Base.metadata) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def head() -> str:
    heads = ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, heads
    return str(heads[0])


def test_revisions_form_one_line() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    revisions = list(script.walk_revisions())
    pairs = [(r.revision, r.down_revision) for r in revisions]  # newest first
    assert pairs[-1] == ("0001", None)
    assert all(down == older for (_, down), (older, _) in zip(pairs, pairs[1:], strict=False)), pairs
    assert len(script.get_heads()) == 1 and ("0005", "0004") in pairs


def test_upgrade_matches_the_models_and_round_trips(database_url: str) -> None:
    assert migrate.current_revision(database_url) is None
    migrate.upgrade(database_url)
    assert table_names(database_url) == TABLES
    assert migrate.current_revision(database_url) == head()
    assert schema_diffs(database_url) == []

    # The comparison is not blind: a model change the migration lacks is reported.
    changed = sa.MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["jobs"].append_column(sa.Column("priority", sa.Integer, nullable=True))
    changed.tables["vtons"].c.category.type = sa.String(64)
    kinds = {diff[0] if isinstance(diff, tuple) else diff[0][0] for diff in schema_diffs(database_url, changed)}
    assert {"add_column", "modify_type"} <= kinds

    migrate.upgrade(database_url)  # a second run is a no-op
    migrate.downgrade(database_url, "base")
    assert table_names(database_url) == set()
    migrate.upgrade(database_url)
    assert schema_diffs(database_url) == []


def test_cli_upgrades_the_configured_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    url = f"sqlite:///{tmp_path}/cli/proteus.db"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PROTEUS_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PROTEUS_ENV", "development")
    assert migrate.main([]) == 0
    assert table_names(url) == TABLES
    assert migrate.main(["current"]) == 0
    assert capsys.readouterr().out.strip() == head()


def test_0002_keeps_the_category_asked_for(database_url: str) -> None:
    """Rows made before 0002 get category_requested = their category."""
    migrate.upgrade(database_url, "0001")
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (id, user_name, email, password_hash, token_version, created_at, "
                "updated_at) VALUES ('u1', 'a', 'a@x.test', 'h', 0, :t, :t)"
            ),
            {"t": "2026-01-01 00:00:00+00"},
        )
        conn.execute(
            sa.text(
                "INSERT INTO vtons (id, user_id, user_snap, uncleaned_outfit, category, status, created_at, "
                "updated_at) VALUES ('v1', 'u1', 'uploads/u1/a', 'uploads/u1/b', 'auto', 'queued', :t, :t)"
            ),
            {"t": "2026-01-01 00:00:00+00"},
        )
    migrate.upgrade(database_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT category_requested FROM vtons WHERE id = 'v1'")).scalar() == "auto"
    engine.dispose()
