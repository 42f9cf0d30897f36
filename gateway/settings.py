"""Process settings: environment variables with the prefix ``XOEV_GATEWAY_`` (or a .env file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.shipped import example_config_dir, schemas_dir

SHIPPED_SCHEMAS = schemas_dir()


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
    schema_dirs: list[Path] = []
    """Extra schema catalog directories, on top of the shipped ``schemas/``."""
    municipality_list: Path = SHIPPED_SCHEMAS / "codelists" / "ags.tsv"

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
    intake_timeout: float = Field(default=30.0, gt=0)
    """How long one message may take to validate before its process is restarted (503)."""

    startup_wait: float = Field(default=60.0, ge=0)
    """How long a starting process retries PostgreSQL or RabbitMQ while down before it
    exits with the cause (0: fail at once)."""

    retention_interval_seconds: float = Field(default=3600.0, ge=0)
    """How often the worker applies retention and sweeps orphan blobs (0: never)."""
    blob_grace_seconds: float = Field(default=3600.0, ge=0)
    """A blob nothing references is removed by the sweep only once older than this: far
    longer than any upload takes, so one in flight is never removed."""

    worker_concurrency: int = Field(default=16, ge=1)
    lease_seconds: float = Field(default=300.0, gt=0)
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

    @property
    def all_schema_dirs(self) -> list[Path]:
        return [SHIPPED_SCHEMAS, *self.schema_dirs]
