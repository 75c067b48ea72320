"""Alembic environment: the engine comes from ``storage.db.alembic_config``."""

from typing import Any

from alembic import context

from storage.models import MIGRATION_ONLY_COLUMNS, MIGRATION_ONLY_INDEXES, MIGRATION_ONLY_TABLE_PREFIX, Base

config = context.config
engine = config.attributes["engine"]


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Skip the FTS5 table and its shadow tables before reflection (see storage/search.py)."""
    return not (type_ == "table" and name and name.startswith(MIGRATION_ONLY_TABLE_PREFIX))


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Leave the dialect-specific search column and indexes of migration 0007 to that migration."""
    if type_ == "index":
        return name not in MIGRATION_ONLY_INDEXES
    if type_ == "column":
        return (obj.table.name, name) not in MIGRATION_ONLY_COLUMNS
    return True


with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
        include_name=include_name,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
