"""Typed application settings, read from ``HARVESTER_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HARVESTER_", extra="ignore")

    data_dir: Path = Field(
        default=Path("var"),
        description="Working directory for the SQLite database, replay cache and recordings.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/harvester.sqlite3 (PostgreSQL: "
        "postgresql+psycopg://user@host/db).",
    )
    fixtures_dir: Path = Field(
        default=PROJECT_ROOT.parent / "shared" / "fixtures",
        description="Recorded partner captures the replay and tests are built from (read-only).",
    )
    registry_dir: Path = Field(
        default=Path(__file__).resolve().parent / "sources",
        description="Folder of source registry YAML files, one per source.",
    )
    contact_url: str = Field(
        default="https://github.com/chm-harvester/chm-harvester",
        description="Contact URL sent in the User-Agent so partner operators can reach us.",
    )
    langdetect_seed: int = Field(default=0, description="Seed that makes langdetect deterministic.")

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "harvester.sqlite3"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    @property
    def replay_cache_dir(self) -> Path:
        return self.data_dir / "replay"

    @property
    def user_agent(self) -> str:
        from harvester import __version__

        return f"CHM-Harvester/{__version__} (+{self.contact_url})"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
