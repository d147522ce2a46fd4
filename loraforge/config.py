"""One Settings class for every part of LoRA Forge, read from LORAFORGE_* variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from loraforge.errors import ConfigError

ENV_PREFIX = "LORAFORGE_"


class Settings(BaseSettings):
    """Everything configurable. Defaults give the embedded mode: SQLite, a local folder, local Ray."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("loraforge", appauthor=False)),
        description="Data directory for the embedded catalog, objects and caches.",
    )
    catalog_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<home>/catalog.sqlite3."
    )
    storage_url: str | None = Field(
        default=None, description="file:///path or s3://bucket; default a folder <home>/objects."
    )
    s3_endpoint: str | None = Field(default=None, description="host:port of the S3/MinIO endpoint.")
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_secure: bool = Field(default=True, description="Use TLS to reach the S3 endpoint.")
    s3_region: str | None = None
    storage_retries: int = Field(
        default=5,
        ge=0,
        le=30,
        description="Retries of an object-store call after a transient error (connection refused or reset, "
        "timeout, HTTP 5xx, SlowDown); client errors such as 404 or 403 are never retried.",
    )
    storage_retry_backoff_s: float = Field(
        default=0.5, ge=0, description="Wait before the first object-store retry; it doubles on each retry."
    )
    storage_retry_max_backoff_s: float = Field(
        default=8.0, ge=0, description="Longest wait between two object-store retries."
    )
    storage_timeout_s: float = Field(
        default=60.0, gt=0, description="Connect and read timeout of one object-store request."
    )
    ray_address: str | None = Field(
        default=None,
        description="GCS address (host:6379) of a Ray cluster this process joins as a driver; "
        "default: start Ray locally.",
    )
    ray_num_cpus: int | None = Field(default=None, ge=1, description="CPUs for a locally started Ray.")
    prefect_api_url: str | None = Field(
        default=None, description="Prefect API; default: none, flows run locally (see orchestration)."
    )
    model_dir: Path | None = Field(default=None, description="Folder holding offline model weights.")
    executor: Literal["auto", "ray", "inline"] = Field(
        default="auto",
        description="Where per-image work runs: a Ray cluster, this process, or auto: Ray when an address "
        "is set or a stage has more than inline_max_images pictures, else this process.",
    )
    inline_max_images: int = Field(
        default=64,
        ge=0,
        description="With the auto executor and no Ray address, a stage with this many pictures or fewer "
        "runs in this process: starting a local Ray costs more than the work.",
    )
    orchestration: Literal["auto", "prefect", "local"] = Field(
        default="auto",
        description="Who runs the flows: Prefect, recording every run, or local, the same flow code called "
        "as plain functions (no Prefect server); auto is Prefect when a Prefect API is configured.",
    )
    shard_size: int = Field(default=1000, ge=1, le=100_000, description="Images per retryable task.")
    max_image_pixels: int = Field(default=80_000_000, ge=1, description="Larger pictures are refused.")
    max_file_bytes: int = Field(default=100 * 1024 * 1024, ge=1, description="Larger files are refused.")
    max_zip_ratio: float = Field(
        default=200.0, gt=1, description="Refuse zip entries compressed beyond this."
    )
    max_zip_total_bytes: int = Field(default=20 * 1024**3, ge=1, description="Cap on a zip's unpacked size.")
    url_timeout_s: float = Field(default=20.0, gt=0)
    url_deadline_s: float = Field(
        default=60.0,
        gt=0,
        description="Wall-clock limit of one URL download: connect, headers and body, redirects included.",
    )
    url_max_redirects: int = Field(default=3, ge=0)
    allow_private_urls: bool = Field(
        default=False, description="Allow URL ingest from loopback and private networks."
    )
    import_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Server folders the API may import from (comma-separated); none by default.",
    )
    caption_endpoint: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint of the openai captioner; its key is OPENAI_API_KEY.",
    )
    public_url: str | None = Field(
        default=None,
        description="The API's address as the internet reaches it (https://forge.example.com); when set, "
        "trainings ask Replicate to call <public_url>/api/v1/webhooks/replicate.",
    )
    replicate_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Replicate's webhook signing secret (whsec_...); calls not signed with it get 401.",
    )
    task_heartbeat_s: float = Field(default=10.0, gt=0, description="How often a running task says it lives.")
    task_stale_after_s: float = Field(
        default=60.0, gt=0, description="A running task silent this long is marked CRASHED."
    )
    api_token: str | None = Field(default=None, description="Bearer token the API requires, if set.")
    # The API's threads each hold at most one catalog connection, so the pool (size + overflow) is at
    # least the thread count: no request waits for a connection another waiting request holds.
    api_threads: int = Field(default=40, ge=1, le=1000, description="Worker threads per API process.")
    catalog_pool_size: int = Field(default=20, ge=1, le=1000, description="Catalog connections kept open.")
    catalog_max_overflow: int = Field(default=30, ge=0, le=1000, description="Extra connections under load.")
    catalog_pool_timeout_s: float = Field(
        default=10.0, gt=0, description="Wait for a free connection this long, then answer 503."
    )
    max_request_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="Cap on one upload request's body (all its files)."
    )
    max_json_bytes: int = Field(default=1024 * 1024, ge=1, description="Cap on a JSON request body.")
    api_url: str = Field(default="http://127.0.0.1:8000", description="Where the dashboard finds the API.")
    # Scheduled flows served by `loraforge worker`: seconds between runs, a cron expression, or "off".
    schedule_reap_tasks: str = Field(default="60", description="Stale-task reaper schedule.")
    schedule_sync_sources: str = Field(default="900", description="Watched-source sync schedule.")
    schedule_sync_trainings: str = Field(default="60", description="Training-status sync schedule.")
    schedule_check_integrity: str = Field(default="0 3 * * *", description="Integrity check schedule.")
    integrity_sample: int = Field(
        default=100, ge=0, description="Originals whose bytes the integrity check re-hashes per run."
    )
    orphan_grace_s: float = Field(
        default=24 * 3600.0,
        ge=0,
        description="Objects no catalog row names are removed once older than this.",
    )
    # Image-search providers (loraforge.sources.search): each one's API address and key are settings only,
    # never part of a request, so a client can never make the server call another address with a key.
    openverse_url: str = Field(default="https://api.openverse.org", description="Openverse API.")
    openverse_api_key: SecretStr | None = Field(default=None, description="Openverse OAuth access token.")
    wikimedia_url: str = Field(default="https://commons.wikimedia.org", description="Wikimedia Commons.")
    wikimedia_api_key: SecretStr | None = Field(default=None, description="Wikimedia access token.")
    danbooru_url: str = Field(default="https://danbooru.donmai.us", description="Danbooru.")
    danbooru_api_key: SecretStr | None = Field(default=None, description="Danbooru `login:api_key`.")
    gelbooru_url: str = Field(default="https://gelbooru.com", description="Gelbooru.")
    gelbooru_api_key: SecretStr | None = Field(default=None, description="Gelbooru `user_id:api_key`.")
    safebooru_url: str = Field(default="https://safebooru.org", description="Safebooru.")
    safebooru_api_key: SecretStr | None = Field(default=None, description="Unused: Safebooru has none.")
    brave_url: str = Field(default="https://api.search.brave.com", description="Brave Search API.")
    brave_api_key: SecretStr | None = Field(default=None, description="Brave X-Subscription-Token.")
    search_contact: str = Field(
        default="https://github.com/loraforge/loraforge",
        description="How a provider's operators reach whoever runs this (a URL or e-mail); sent in the "
        "User-Agent, as Wikimedia's policy asks.",
    )
    search_min_interval_s: float | None = Field(
        default=None, ge=0, description="Seconds between two calls to one provider; default: its own."
    )
    search_max_retries: int = Field(default=4, ge=0, le=20, description="Retries after a 429 or 503.")
    search_max_wait_s: float = Field(
        default=120.0, ge=0, description="Longest Retry-After honoured; a longer one fails that provider."
    )

    @field_validator("import_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("ray_address")
    @classmethod
    def _check_ray_address(cls, value: str | None) -> str | None:
        if value and value.startswith("ray://"):
            # Ray Client drivers cannot run Ray Data actor pools ("'Worker' object has no attribute
            # 'core_worker'"), which every model stage needs.
            raise ValueError(
                "Ray Client addresses (ray://) cannot run the model stages; give the cluster's GCS "
                "address, host:6379, and run this process on a Ray node (see docs/deploy.md)"
            )
        return value

    @field_validator(
        "schedule_reap_tasks", "schedule_sync_sources", "schedule_sync_trainings", "schedule_check_integrity"
    )
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        from loraforge.schedules import parse_schedule

        parse_schedule(value)  # raises ValueError naming the problem
        return value.strip()

    @field_validator(
        "openverse_url", "wikimedia_url", "danbooru_url", "gelbooru_url", "safebooru_url", "brave_url"
    )
    @classmethod
    def _check_provider_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else None

    @field_validator("catalog_url")
    @classmethod
    def _check_catalog_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql+psycopg:// URL")
        return value

    @field_validator("storage_url")
    @classmethod
    def _check_storage_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("file://", "s3://")):
            raise ValueError("must be file:///path or s3://bucket")
        if value is not None and value.startswith("s3://") and len(value[5:].strip("/")) < 3:
            raise ValueError("an S3 bucket name needs at least 3 characters")
        return value

    @model_validator(mode="after")
    def _check_s3(self) -> Settings:
        if self.storage_url and self.storage_url.startswith("s3://") and not self.s3_endpoint:
            raise ValueError(f"{ENV_PREFIX}S3_ENDPOINT is required when storage_url is s3://")
        return self

    @property
    def resolved_catalog_url(self) -> str:
        if self.catalog_url:
            return normalise_postgres_url(self.catalog_url)
        return f"sqlite:///{self.home / 'catalog.sqlite3'}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file://{self.home / 'objects'}"


def normalise_postgres_url(url: str) -> str:
    """Point plain postgresql:// URLs at the psycopg 3 driver we ship."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning a validation failure into a ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            problems.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
