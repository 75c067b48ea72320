"""Typed application settings, read from ``HARVESTER_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
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
    recall_target: float = Field(
        default=0.95,
        gt=0,
        lt=1,
        description="Share of the relevant candidates triage must keep in the queue: "
        "the exclusion threshold is the calibrated score that keeps this share of a labelled set's relevant "
        "records (HARVESTER_PENDING_THRESHOLD overrides it with a fixed score).",
    )
    audit_sample_size: int = Field(
        default=10,
        ge=0,
        description="Recall audit: filtered candidates each scheduled crawl puts into the queue "
        "at random, flagged as audit samples (0: no audit).",
    )
    quarantine_factor: float = Field(
        default=3.0,
        ge=0,
        description="Over-harvest quarantine: hold a run whose new records exceed this many "
        "times the median of the source's last 10 finished runs (0 turns the quarantine off).",
    )
    quarantine_min_records: int = Field(
        default=50, ge=1, description="Over-harvest quarantine: never hold a run with fewer new records than this."
    )
    crawl_max_minutes: float = Field(
        default=360,
        gt=0,
        description="Wall-clock limit of one crawl child process unless its registry entry "
        "sets max_run_minutes; past it the child gets SIGTERM, then SIGKILL after the grace.",
    )
    crawl_kill_grace_seconds: float = Field(
        default=30, ge=0, description="Seconds between SIGTERM and SIGKILL for a crawl over its wall-clock limit."
    )
    alert_webhook_url: str | None = Field(
        default=None, description="Alerts are POSTed here as JSON, once each (none: no webhook)."
    )
    alert_smtp_host: str | None = Field(default=None, description="SMTP server for alert e-mails (none: no e-mail).")
    alert_smtp_port: int = Field(default=587, description="SMTP port for alert e-mails.")
    alert_smtp_starttls: bool = Field(default=True, description="Use STARTTLS for alert e-mails.")
    alert_smtp_user: str | None = Field(default=None, description="SMTP login for alert e-mails (none: no login).")
    alert_smtp_password: SecretStr | None = Field(default=None, description="SMTP password for alert e-mails.")
    alert_email_from: str = Field(default="chm-harvester@localhost", description="Sender of alert e-mails.")
    alert_email_to: str | None = Field(default=None, description="Recipients of alert e-mails, comma-separated.")
    redis_url: str | None = Field(
        default=None,
        description="Distributed mode: Redis URL of the shared scrapy-redis scheduler and dupefilter; every "
        "crawl process of a source then works on one shared crawl (redis://host:6379/0).",
    )
    stage_pool: str = Field(
        default="auto",
        pattern=r"^(auto|\d+)$",
        description="Worker processes for the CPU-heavy stages (extract, language, hashes, classify): a number, 0 "
        "runs them in the crawl process; auto: one per CPU when there is more than one CPU, else 0.",
    )
    stage_pool_max_tasks: int = Field(
        default=5000,
        ge=1,
        description="Items per stage worker before the pool's workers are renewed (keeps their memory flat).",
    )
    stage_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds one item may spend in the stage pool (queue included); past it the item is dropped "
        "as an error and the pool restarted, so one pathological page cannot hang a crawl.",
    )
    reference_dir: Path = Field(
        default=PROJECT_ROOT.parent / "shared" / "reference",
        description="CHM reference data (schema field tables under chm/), read-only.",
    )
    chm_api_base: str = Field(
        default="https://api.cbddev.xyz",
        description="KM API base URL for `chm push` (the CBD development API by default).",
    )
    chm_realm: str = Field(default="CHM-DEV", description="CHM realm sent as the Realm header (CHM-DEV by default).")
    chm_auth_scheme: str = Field(
        default="Bearer", description="Authorization scheme in front of the KM token (Bearer, Ticket, Token)."
    )
    chm_email: str | None = Field(default=None, description="CBD account e-mail that `chm push` signs in with.")
    chm_password: SecretStr | None = Field(default=None, description="Password of the CBD account (a secret).")
    chm_timeout: float = Field(default=30.0, gt=0, description="Seconds before one KM API call times out.")
    chm_max_attempts: int = Field(
        default=4,
        ge=1,
        description="Tries per KM API call on 5xx, timeouts and connection errors, with exponential backoff.",
    )
    chm_retry_backoff: float = Field(default=2.0, ge=0, description="First retry delay in seconds (doubles).")
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="Review app behind a reverse proxy: comma-separated addresses (or *) of the proxies whose "
        "X-Forwarded-For and X-Forwarded-Proto `harvester serve` trusts, so the app sees the client's address "
        "(login throttling) and https (Secure cookie). None: proxy headers are ignored.",
    )
    db_retry_seconds: float = Field(
        default=60,
        ge=0,
        description="Seconds one crawl write keeps retrying a transient database error (connection "
        "lost, server restarting, SQLite locked past its busy timeout, disk full) on a fresh connection before its "
        "record counts as not stored; the run then fails and the page is read again by the next crawl.",
    )
    db_retry_backoff: float = Field(
        default=0.5,
        gt=0,
        description="First wait in seconds between two tries of a database write (doubles, at most 10 s).",
    )
    download_timeout: float = Field(
        default=30,
        gt=0,
        description="Seconds one crawl request may take, body included, before it is retried "
        "or given up (Scrapy DOWNLOAD_TIMEOUT).",
    )

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
