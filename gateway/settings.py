"""Process settings: environment variables with the prefix ``XOEV_GATEWAY_`` (or a .env file)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.shipped import example_config_dir, schemas_dir

SHIPPED_SCHEMAS = schemas_dir()
SHIPPED_MUNICIPALITY_LIST = SHIPPED_SCHEMAS / "codelists" / "ags.tsv"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XOEV_GATEWAY_", env_file=".env", extra="ignore")

    data_dir: Path = Path("var")
    config_dir: Path | None = None
    """The configuration directory. None: the shipped example configuration, which a running
    gateway copies to ``data_dir/example-config`` (see ``example_config``)."""
    database_url: str | None = None
    """SQLAlchemy URL; default: SQLite in ``data_dir``. PostgreSQL: postgresql+asyncpg://…"""
    broker: Literal["embedded", "rabbitmq"] = "embedded"
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    sqlite_busy_seconds: float = Field(default=30.0, gt=0)
    """How long a write waits for the SQLite lock before the API answers 503."""
    schema_dirs: Annotated[list[Path], NoDecode] = []
    """Extra schema catalog directories, on top of the shipped ``schemas/``: a path list
    separated by ``:`` (like ``PATH``) or a JSON list."""
    municipality_list: Path = SHIPPED_MUNICIPALITY_LIST
    """The AGS list; by default the one imported into the config (``codelists import``),
    else the shipped derived copy (``gateway.municipality.municipality_list``)."""

    host: str = "127.0.0.1"
    port: int = 8080
    tls_certfile: Path | None = None
    """Serve HTTPS with this certificate (PEM, with its chain); needs ``tls_keyfile``."""
    tls_keyfile: Path | None = None
    tls_client_ca: Path | None = None
    """Require client certificates signed by this CA (mTLS); ``client_certificates`` in
    the configuration maps a certificate to a sender."""
    forwarded_allow_ips: str | None = None
    """Behind a TLS-terminating proxy: the proxy addresses (comma-separated) whose
    X-Forwarded-For/-Proto are believed; the client address then comes from them."""
    auth_failures_per_minute: int = Field(default=20, ge=1)
    """Failed authentications one client address may have per minute before it gets 429."""
    max_xml_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_body_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    header_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client has to send a request's line and headers (slow clients are cut)."""
    max_header_bytes: int = Field(default=64 * 1024, gt=0)
    body_timeout: float = Field(default=20.0, gt=0)
    body_min_rate: int = Field(default=500, gt=0)
    """A request body must arrive within ``body_timeout`` seconds plus one second for every
    ``body_min_rate`` bytes received (Apache mod_reqtimeout's ``body=20,MinRate=500``)."""
    keep_alive_timeout: int = Field(default=5, ge=1)
    """Seconds an idle kept-alive connection stays open (uvicorn's ``timeout_keep_alive``)."""
    max_connections: int = Field(default=1000, ge=1)
    """Above this many open connections a request gets 503 and its connection is closed."""
    zip_max_entries: int = Field(default=1000, ge=1)
    """Entries a ZIP submission may hold (``application/zip``)."""
    zip_max_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    """Total uncompressed size of a ZIP submission's entries, counted while unpacking."""
    zip_max_ratio: float = Field(default=100.0, gt=1)
    """Uncompressed / compressed size an entry may reach (above 1 MiB): zip-bomb guard."""
    intake_processes: int | None = Field(default=None, ge=0)
    """Processes that parse and validate submissions for the API; 0: on the event loop.
    Default: one per core but one (none on a single core), at most 4."""
    opentelemetry: bool = False
    """FastAPI's native OpenTelemetry (traces, metrics, logs to the global providers). Off
    by default: looking for configured providers on every request cost ~5 % of the loop."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    """``auto``: readable text when stderr is a terminal, else one JSON object per line."""
    access_log: bool = False
    """Log every HTTP request (client, method, path, status) of ``serve``/``api``."""
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """``worker`` and ``relay``: serve ``/metrics`` on this port (they have no API; off when
    unset). ``serve`` and ``api`` export theirs on the API port."""
    metrics_host: str = "127.0.0.1"
    """Bind address of ``metrics_port`` (``0.0.0.0`` in a container)."""
    otlp_endpoint: str | None = None
    """Export traces over OTLP/HTTP to this collector (``http://collector:4318``); needs the
    ``tracing`` extra. Unset: no traces, and nothing of OpenTelemetry's SDK is loaded."""
    intake_timeout: float = Field(default=30.0, gt=0)
    """How long one message may take to validate before its process is restarted (503)."""
    min_free_bytes: int = Field(default=1024**3, ge=0)
    min_free_percent: float = Field(default=5.0, ge=0, le=100)
    """``/readyz`` reports not ready while the file system of the data directory (or of the
    SQLite file) has less free space than either floor: take the instance out of rotation
    before a full disk refuses submissions (507)."""

    startup_wait: float = Field(default=60.0, ge=0)
    """How long a starting process retries PostgreSQL or RabbitMQ while down before it
    exits with the cause (0: fail at once)."""

    retention_interval_seconds: float = Field(default=3600.0, ge=0)
    """How often the worker applies retention and sweeps orphan blobs (0: never)."""
    blob_grace_seconds: float = Field(default=3600.0, ge=0)
    """A blob nothing references is removed by the sweep only once older than this: far
    longer than any upload takes, so one in flight is never removed."""
    sources: bool = True
    """Run the inbound sources (FIT-Connect polling) in ``serve`` and ``api`` processes. Every
    process polling is safe (answers are idempotent by submission id) but does the work N
    times; with many ``api`` processes set it false in all but one or two."""

    console_session_seconds: float = Field(default=1800.0, gt=0)
    """How long an admin console login lasts (from the login, not sliding)."""
    console_secret: SecretStr | None = None
    """Key that signs console sessions; unset: a random key per process (every login ends
    with a restart, and with several ``api`` processes a session works only on its own)."""

    worker_concurrency: int = Field(default=16, ge=1)
    lease_seconds: float = Field(default=30.0, gt=0)
    """Embedded queue: how long a claimed item stays a worker's without a renewal. The
    worker renews its items every third of it while their deliveries run, so a killed
    worker's items are claimable again after at most this long."""
    poll_seconds: float = Field(default=1.0, gt=0)

    # Scaled mode (broker=rabbitmq, database_url=postgresql+asyncpg://…)
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    rabbitmq_prefix: str = "xoev"
    """Prefix of every exchange and queue name: several gateways can share one vhost."""
    rabbitmq_prefetch: int = Field(default=8, ge=1)
    """Unacked messages per destination queue and worker process."""
    rabbitmq_confirm_timeout: float = Field(default=10.0, gt=0)
    rabbitmq_delay_tiers: list[float] = [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]
    """Retry delays (seconds) available as TTL queues; a retry waits the next tier up."""
    relay_in_api: bool = True
    """Run the outbox relay inside every ``api`` process (else run ``xoev-gateway relay``)."""
    relay_batch: int = Field(default=500, ge=1)
    demo: bool = False
    """Demo mode: ``serve``/``api`` accept a configuration with the public demo tokens
    (``demo-sender-token``, ``demo-admin-token``), which they refuse otherwise."""

    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gateway.db').resolve()}"

    @property
    def config_source(self) -> Path:
        """The configuration to read: ``config_dir`` or the shipped example itself."""
        return self.config_dir or example_config_dir()

    @property
    def example_config(self) -> Path:
        return self.data_dir / "example-config"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("schema_dirs", mode="before")
    @classmethod
    def _path_list(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list: {exc}") from None
        return [part for part in text.split(os.pathsep) if part.strip()]

    @property
    def all_schema_dirs(self) -> list[Path]:
        return [SHIPPED_SCHEMAS, *self.schema_dirs]
