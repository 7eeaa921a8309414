"""Policy YAML file -> validated ``Policy`` (tiers, backends, fallback chains, budgets, routing).

Any mistake is reported at start-up as one ``PolicyError`` naming the file and the field
(e.g. ``policies/x.yaml: tiers.local.backends[0].type: Input should be 'ollama', ...``).
``resolve`` then decides which backends are enabled: a backend that names an
``api_key_env`` is enabled only when that variable is set and non-empty."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from router_service.decision import TIERS, Tier
from router_service.intents import INTENTS
from router_service.routing import RoutingPolicy

BackendType = Literal["openai", "ollama", "anthropic"]


class PolicyError(ValueError):
    """The policy file is missing, unreadable or invalid."""


class Timeouts(BaseModel):
    """Seconds. ``first_byte``: until the first response byte/event; ``idle``: between
    stream chunks; ``total``: the whole upstream exchange."""

    model_config = ConfigDict(extra="forbid")

    connect: float = Field(default=2.0, gt=0)
    first_byte: float = Field(default=30.0, gt=0)
    idle: float = Field(default=30.0, gt=0)
    total: float = Field(default=300.0, gt=0)


class Price(BaseModel):
    """USD per 1M tokens."""

    model_config = ConfigDict(extra="forbid")

    input_per_1m: float = Field(default=0.0, ge=0)
    output_per_1m: float = Field(default=0.0, ge=0)


class BackendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    type: BackendType
    base_url: str = Field(min_length=1)
    model: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list, description="other model names it serves")
    api_key_env: str | None = None
    enabled: bool = True
    timeouts: Timeouts = Field(default_factory=lambda: Timeouts())
    price: Price = Field(default_factory=lambda: Price())
    expected_latency_ms: float | None = Field(default=None, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    max_connections: int = Field(default=256, ge=1)
    # What an OpenAI-compatible backend accepts (type "openai"; the other types translate
    # every field themselves). token_limit_param: the name it reads for the output cap
    # (OpenAI: max_completion_tokens; llama.cpp and older servers: max_tokens; None: as
    # sent). drop_params: request fields removed before the call (LiteLLM's drop_params).
    # null_content: "empty" sends content "" for content null (llama.cpp answers 500 to null).
    token_limit_param: Literal["max_tokens", "max_completion_tokens"] | None = None
    drop_params: list[str] = Field(default_factory=list)
    null_content: Literal["keep", "empty"] = "keep"
    # Anthropic only: max_tokens is required there; used when the client sends none.
    default_max_tokens: int = Field(default=4096, ge=1)
    anthropic_version: str = "2023-06-01"

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {value!r})")
        return value.rstrip("/")


class TierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backends: list[BackendConfig] = Field(default_factory=list)


class CircuitBreakerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    failures: int = Field(default=5, ge=1, description="consecutive failures that open the circuit")
    cooldown_seconds: float = Field(default=30.0, ge=0, description="open -> half-open after this")


class LatencyConfig(BaseModel):
    """Latency budgets in ms per routing rule (an intent name, ``forced`` or ``default``)."""

    model_config = ConfigDict(extra="forbid")

    budgets_ms: dict[str, float] = Field(default_factory=dict)
    window: int = Field(default=64, ge=1, description="recent requests per backend for the p50")
    min_samples: int = Field(default=5, ge=1, description="below this, expected_latency_ms is used")

    @field_validator("budgets_ms")
    @classmethod
    def _known_rules(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(INTENTS) - {"default"})
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; use an intent name or 'default'")
        bad = [k for k, v in value.items() if v <= 0]
        if bad:
            raise ValueError(f"budgets must be > 0 ms: {bad}")
        return value


def _default_fallback() -> dict[Tier, list[Tier]]:
    return {"local": ["primary", "strong"], "primary": ["strong"], "strong": []}


class Policy(BaseModel):
    """The whole policy file."""

    model_config = ConfigDict(extra="forbid")

    tiers: dict[Tier, TierConfig]
    fallback: dict[Tier, list[Tier]] = Field(default_factory=_default_fallback)
    fallback_on_forced: bool = Field(
        default=False,
        description="may a forced tier (model/X-Force-Route) fall back to other tiers",
    )
    latency: LatencyConfig = Field(default_factory=lambda: LatencyConfig())
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=lambda: CircuitBreakerConfig())
    routing: RoutingPolicy = Field(default_factory=lambda: RoutingPolicy())

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        names: set[str] = set()
        for tier, cfg in self.tiers.items():
            for backend in cfg.backends:
                if backend.name in names:
                    raise ValueError(f"backend name {backend.name!r} is used twice (tier {tier})")
                names.add(backend.name)
        for tier, chain in self.fallback.items():
            if tier in chain:
                raise ValueError(f"fallback.{tier} lists itself")
            if len(set(chain)) != len(chain):
                raise ValueError(f"fallback.{tier} repeats a tier")
        for tier in TIERS:
            self.fallback.setdefault(tier, [])
            self.tiers.setdefault(tier, TierConfig())
        return self


def _format_validation(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = ""
        for part in err.get("loc", ()):
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        lines.append(f"{path}: {loc or '<top level>'}: {err.get('msg')}")
    return "invalid policy file:\n  " + "\n  ".join(lines)


def parse_policy(data: Any, path: Path = Path("<policy>")) -> Policy:
    """Parsed YAML -> ``Policy``; errors name the file and the field."""
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: the policy must be a mapping with a 'tiers:' key")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_format_validation(path, exc)) from None


def load_policy(path: Path) -> Policy:
    """YAML file -> ``Policy`` or ``PolicyError`` naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    return parse_policy(data, Path(path))


@dataclass(frozen=True, slots=True)
class ResolvedBackend:
    """A backend with its tier, its API key looked up, and whether it may be used."""

    tier: Tier
    config: BackendConfig
    api_key: str | None
    enabled: bool
    disabled_reason: str | None

    @property
    def name(self) -> str:
        return self.config.name


def resolve_backends(policy: Policy, env: Mapping[str, str]) -> list[ResolvedBackend]:
    """Policy + environment -> every backend, in tier then file order, enabled or not."""
    out: list[ResolvedBackend] = []
    for tier in TIERS:
        for cfg in policy.tiers[tier].backends:
            key = env.get(cfg.api_key_env, "").strip() if cfg.api_key_env else None
            reason = None
            if not cfg.enabled:
                reason = "disabled in the policy file"
            elif cfg.api_key_env and not key:
                reason = f"${cfg.api_key_env} is not set"
            out.append(ResolvedBackend(tier, cfg, key or None, reason is None, reason))
    return out


def model_index(backends: list[ResolvedBackend]) -> dict[str, ResolvedBackend]:
    """Concrete model name (or alias) -> the first backend serving it."""
    index: dict[str, ResolvedBackend] = {}
    for b in backends:
        for name in (b.config.model, *b.config.aliases):
            index.setdefault(name, b)
    return index
