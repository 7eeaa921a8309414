"""Environment (``ROUTER_*``) and arguments -> ``Settings``, the one configuration object.

Built in ``create_app`` (never at import time); tests construct it directly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Service settings; every field can be set as ``ROUTER_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="ROUTER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    policy: Path = Path("policies/default.yaml")
    model_dir: Path | None = None  # None: the repository's models/default
    scorer: Literal["learned", "heuristic"] = "learned"

    # Decision log: a SQLAlchemy URL (PostgreSQL) or, when unset, SQLite at ``sqlite_path``.
    database_url: str | None = None
    sqlite_path: Path = Path("router_logs.db")
    # Where the router writes (the SQLite log): a relative ``sqlite_path`` is taken under
    # it. None: the working directory. Set it when the working directory is read-only
    # (the container image: ROUTER_DATA_DIR=/var/lib/learned-router).
    data_dir: Path | None = None
    # What of the conversation is stored: everything, PII redacted, or nothing.
    log_redaction: Literal["none", "pii", "all"] = "pii"
    log_answers: bool = True
    # False: rows go to the group-commit writer in the background (committed within
    # milliseconds; drained on shutdown; a hard crash can lose only rows not yet committed).
    # True: the row is committed before the answer's last byte (the body; a stream's
    # [DONE]), so a client holding a complete answer can rely on its row; costs one
    # commit (~0.1-0.2 ms) of latency per request.
    log_wait: bool = False

    # Input limits.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_n: int = Field(default=8, ge=1)
    max_inflight: int = Field(default=4096, ge=0, description="0 = unlimited; above it -> 429")

    # Access: client keys for /v1/* (empty = open) and the admin key for /metrics.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    admin_key: str | None = None

    # Model loop: poll the model dir for a new model every N seconds (0 = only on
    # POST /admin/reload); optionally score a sample of traffic with a shadow candidate.
    model_watch_seconds: float = Field(default=5.0, ge=0)
    shadow_model_dir: Path | None = None
    shadow_sample_rate: float = Field(default=1.0, ge=0, le=1)
    # POST /admin/shadow loads candidates from under this directory only (None: the
    # directory holding the served model, e.g. ``models/``).
    models_root: Path | None = None

    # Upstream HTTP client: "fast" (lean keep-alive HTTP/1.1 pool) or "httpx" (its own
    # transport; honours HTTP(S)_PROXY).
    upstream_client: Literal["fast", "httpx"] = "fast"

    # OpenTelemetry spans (router_service.tracing; needs the otel extra). The exporter is
    # configured by the standard OTEL_* variables.
    otel: bool = False

    health_cache_seconds: float = Field(default=10.0, ge=0)
    # A second listener for liveness/readiness probes (router_service.probe_server): GET
    # /health answered from its own thread, so a busy event loop cannot starve it. None = off.
    # Containers probed on the pod IP set ROUTER_PROBE_HOST=0.0.0.0.
    probe_port: int | None = Field(default=None, ge=0, le=65535)
    probe_host: str = "127.0.0.1"
    health_timeout_seconds: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _under_data_dir(self) -> Settings:
        if self.data_dir is not None and not self.sqlite_path.is_absolute():
            self.sqlite_path = self.data_dir / self.sqlite_path
        return self

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value
