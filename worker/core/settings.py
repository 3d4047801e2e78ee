"""Typed configuration, read from the environment in one place.

With nothing set the project runs on an *embedded default*: a SQLite file and
kombu's ``filesystem://`` transport, both inside one local data directory, so
``badges demo`` works right after installing.  Production sets
``DATABASE_URL`` (PostgreSQL) and ``BROKER_URL`` (Redis).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Where the embedded default keeps its SQLite file and broker folders.
DEFAULT_DATA_DIR = Path(".badges-data")

#: Redis re-delivers an unacknowledged message after this many seconds.  With
#: ``acks_late`` a task may be running that long before it looks lost, so every
#: retry countdown is kept well below it (see ``max_retry_delay_s``).
DEFAULT_VISIBILITY_TIMEOUT_S = 3600


class Settings(BaseSettings):
    """Everything configurable.  Environment names are the field names, upper-cased."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    database_url: str | None = None
    broker_url: str | None = None
    push_gateway_url: str | None = None
    push_gateway_token: str | None = None
    api_jwt_secret: str | None = None
    #: Checked on user tokens when set (Supabase user tokens: ``authenticated``).
    api_jwt_audience: str | None = None
    #: Checked on user tokens when set; a service role key may also say ``supabase``.
    api_jwt_issuer: str | None = None
    #: JWKS endpoint of asymmetric (ES256/RS256) signing keys, e.g. Supabase's
    #: ``https://<project>.supabase.co/auth/v1/.well-known/jwks.json``.
    api_jwks_url: str | None = None
    #: ``transaction`` when DATABASE_URL points at a transaction-mode pooler
    #: (PgBouncer, Supabase's pooler on port 6543): no server-side prepared
    #: statements, since consecutive transactions may run on different server
    #: connections.  Unset, port 6543 counts as a transaction pooler; ``session``
    #: or ``none`` say it is not.
    database_pooler: Literal["transaction", "session", "none"] | None = None
    timezone: str = "Europe/Oslo"
    badges_data_dir: Path = DEFAULT_DATA_DIR
    broker_visibility_timeout_s: int = Field(default=DEFAULT_VISIBILITY_TIMEOUT_S, ge=1)
    #: How often a worker sweeps Redis for messages whose consumer died
    #: (unacknowledged for longer than the visibility timeout) and requeues them.
    broker_restore_interval_s: int = Field(default=30, ge=1)
    #: Reliable Redis transport: each consumer records a heartbeat this often ...
    broker_consumer_heartbeat_s: float = Field(default=2.0, gt=0, le=60)
    #: ... and any live worker requeues the messages held by a consumer whose
    #: last heartbeat is older than this (a dead or frozen worker).
    broker_consumer_dead_after_s: float = Field(default=15.0, gt=0)
    #: Master name the ``sentinel://`` broker URLs ask the sentinels for.
    broker_sentinel_master: str = "mymaster"
    #: A quarantined message keeps at most this many bytes of its raw body.
    quarantine_max_raw_bytes: int = Field(default=65536, ge=1024)
    #: Celery's soft shutdown: on a cold shutdown (second SIGTERM, SIGQUIT, or
    #: SIGTERM with ``REMAP_SIGTERM=SIGQUIT``) running tasks get this long to
    #: finish before the worker hands their messages back and exits.  Keep it
    #: below the platform's kill grace period (Kubernetes: 30 s by default).
    worker_soft_shutdown_timeout_s: float = Field(default=20.0, ge=0)
    #: Upper bound of any retry countdown: half the visibility timeout, so a
    #: retried task is never re-delivered as "lost" while it waits.
    max_retry_delay_s: int = Field(default=600, ge=1)
    push_max_attempts: int = Field(default=6, ge=1)
    push_connect_timeout_s: float = Field(default=3.0, gt=0)
    push_read_timeout_s: float = Field(default=10.0, gt=0)
    push_backoff_base_s: float = Field(default=2.0, gt=0)
    outbox_relay_interval_s: float = Field(default=30.0, gt=0)
    outbox_grace_period_s: float = Field(default=60.0, ge=0)
    tier_reevaluation_interval_s: float = Field(default=900.0, gt=0)
    #: Ingestion buffers up to this many messages into one unit of work ...
    ingest_batch_size: int = Field(default=100, ge=1, le=5000)
    #: ... or flushes this long after the first buffered message arrived.
    ingest_flush_interval_s: float = Field(default=0.2, gt=0, le=5)
    reconcile_hour: int = Field(default=3, ge=0, le=23)
    reconcile_minute: int = Field(default=15, ge=0, le=59)
    #: Incremental tier re-evaluation looks at mentors whose stats changed after
    #: the previous run's start *minus* this overlap: a unit of work stamps
    #: ``stats_changed_at`` when it starts but becomes visible when it commits
    #: (and worker clocks may differ), so the overlap must exceed the longest
    #: ingest transaction plus clock skew.  Re-evaluating a mentor twice is harmless.
    tier_reevaluation_overlap_s: float = Field(default=3600.0, ge=0)
    #: ``text`` or ``json`` (one JSON object per line) for worker, beat, CLI and web.
    log_format: Literal["text", "json"] = "text"
    #: When set, each worker instance serves Prometheus metrics on this port.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    #: When set, the worker touches this file while its consumer is healthy ...
    worker_heartbeat_file: Path | None = None
    #: ... and beat touches this one on every scheduler tick.
    beat_heartbeat_file: Path | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def embedded(self) -> bool:
        """True when running on the embedded default (no server configured)."""
        return self.database_url is None and self.broker_url is None

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.badges_data_dir / 'badges.sqlite3').resolve()}"

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or "filesystem://localhost/"

    @property
    def broker_folder(self) -> Path:
        """The shared folder of the filesystem transport (embedded default only)."""
        return (self.badges_data_dir / "broker").resolve()

    @property
    def beat_schedule_file(self) -> Path:
        """Celery beat's state file, kept in the data directory rather than the current one."""
        return (self.badges_data_dir / "celerybeat-schedule").resolve()

    def ensure_data_dir(self) -> None:
        if self.database_url is None or self.broker_url is None:
            self.badges_data_dir.mkdir(parents=True, exist_ok=True)
        if self.broker_url is None:
            for sub in ("queue", "processed"):
                (self.broker_folder / sub).mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
