"""Full-text search over candidates: SQLite FTS5 or PostgreSQL tsvector behind one filter clause.

SQLite: ``candidates_fts``, an external-content FTS5 table over title, summary, text and organisations
(tokenizer ``unicode61 remove_diacritics 2``), kept in sync by three triggers on ``candidates``.
PostgreSQL: ``candidates.search_vector``, a stored generated ``tsvector`` with the ``simple`` configuration
(records come in six UN languages: no stemming, no stop words) and a GIN index. Both are created by
migration 0007 and live outside the ORM models (``MIGRATION_ONLY``, excluded from autogenerate).

User input never reaches either query syntax as such: it is cut into word tokens (and ``"quoted
phrases"``), each quoted, combined with AND; the last bare word also matches as a prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, false, func, literal_column, select, table, text
from sqlalchemy.dialects.postgresql import TSVECTOR

from storage.models import Candidate

FTS_TABLE = "candidates_fts"
SEARCH_COLUMN = "search_vector"
SEARCH_INDEX = "ix_candidates_search_vector"
FTS_COLUMNS = ("title", "summary", "text", "organisations")
PG_TEXT_LIMIT = 500_000  # characters of ``text`` indexed on PostgreSQL: a tsvector is capped at 1 MB
MIN_PREFIX = 2
MAX_TERMS = 32

_WORD = re.compile(r"[^\W_]+")
_PART = re.compile(r'"([^"]*)"?|(\S+)')


@dataclass(frozen=True)
class SearchQuery:
    """Parsed search input: phrases of word tokens (a bare word is a one-word phrase), all required."""

    phrases: tuple[tuple[str, ...], ...]
    prefix_last: bool

    def fts5(self) -> str:
        """FTS5 MATCH syntax: ``"a" "b c" "d"*``. Tokens hold only letters and digits, so quoting is enough."""
        parts = ['"' + " ".join(p) + '"' for p in self.phrases]
        if self.prefix_last:
            parts[-1] += "*"
        return " ".join(parts)

    def tsquery(self) -> str:
        """``to_tsquery`` syntax: ``'a' & 'b' <-> 'c' & 'd':*``."""
        parts = [" <-> ".join(f"'{w}'" for w in p) for p in self.phrases]
        if self.prefix_last:
            parts[-1] += ":*"
        return " & ".join(f"({p})" for p in parts)


def parse_query(raw: str) -> SearchQuery | None:
    """The words of a curator's search box; None when it holds no searchable word."""
    phrases: list[tuple[str, ...]] = []
    last_bare = False
    for match in _PART.finditer(raw):
        quoted, bare = match.group(1), match.group(2)
        words = tuple(w.lower() for w in _WORD.findall(quoted if quoted is not None else bare))
        if words:
            phrases.append(words)
            last_bare = bare is not None and len(words) == 1
    if not phrases:
        return None
    phrases = phrases[:MAX_TERMS]
    prefix = last_bare and not raw[-1:].isspace() and len(phrases[-1][0]) >= MIN_PREFIX
    return SearchQuery(tuple(phrases), prefix)


def match_clause(dialect: str, raw: str) -> ColumnElement[bool]:
    """A WHERE clause on ``candidates`` true for the rows matching ``raw`` (none when it has no word)."""
    query = parse_query(raw)
    if query is None:
        return false()
    if dialect == "postgresql":
        vector = literal_column(f"candidates.{SEARCH_COLUMN}", TSVECTOR)
        return vector.op("@@")(func.to_tsquery(literal_column("'simple'::regconfig"), query.tsquery()))
    matching = (
        select(literal_column("rowid"))
        .select_from(table(FTS_TABLE))
        .where(literal_column(FTS_TABLE).op("MATCH")(query.fts5()))
    )
    return Candidate.id.in_(matching)


def _pg_vector_expression() -> str:
    fields = [f"coalesce({name}, '')" for name in ("title", "summary")]
    fields += [f"left(coalesce(text, ''), {PG_TEXT_LIMIT})", "coalesce(organisations::text, '')"]
    return "to_tsvector('simple'::regconfig, " + " || ' ' || ".join(fields) + ")"


def _sqlite_statements() -> list[str]:
    cols = ", ".join(FTS_COLUMNS)
    new = ", ".join(f"new.{c}" for c in FTS_COLUMNS)
    old = ", ".join(f"old.{c}" for c in FTS_COLUMNS)
    delete = f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {cols}) VALUES ('delete', old.id, {old});"
    insert = f"INSERT INTO {FTS_TABLE}(rowid, {cols}) VALUES (new.id, {new});"
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5({cols}, content='candidates', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
        f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_ai AFTER INSERT ON candidates BEGIN {insert} END",
        f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_ad AFTER DELETE ON candidates BEGIN {delete} END",
        f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_au AFTER UPDATE OF {cols} ON candidates BEGIN {delete} {insert} END",
    ]


def create_search_structures(conn: Connection) -> None:
    """Create the full-text structures for this database and index the rows already there (migration 0007)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                f"ALTER TABLE candidates ADD COLUMN {SEARCH_COLUMN} tsvector "
                f"GENERATED ALWAYS AS ({_pg_vector_expression()}) STORED"
            )
        )
        conn.execute(text(f"CREATE INDEX {SEARCH_INDEX} ON candidates USING gin ({SEARCH_COLUMN})"))
        return
    for statement in _sqlite_statements():
        conn.execute(text(statement))
    conn.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')"))


def drop_search_structures(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"DROP INDEX IF EXISTS {SEARCH_INDEX}"))
        conn.execute(text(f"ALTER TABLE candidates DROP COLUMN IF EXISTS {SEARCH_COLUMN}"))
        return
    for suffix in ("ai", "ad", "au"):
        conn.execute(text(f"DROP TRIGGER IF EXISTS {FTS_TABLE}_{suffix}"))
    conn.execute(text(f"DROP TABLE IF EXISTS {FTS_TABLE}"))


def sqlite_triggers_present(conn: Connection) -> bool:
    """False after a table rebuild (an Alembic batch migration re-creates ``candidates`` without them)."""
    names = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'candidates'"))
    return {f"{FTS_TABLE}_{s}" for s in ("ai", "ad", "au")} <= {n for (n,) in names}
