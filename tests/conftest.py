"""Shared fixtures: fake upstream LLM servers on loopback and a factory that serves the
router (built from a policy pointing at them) over real HTTP for the openai SDK."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from fakes.llm import anthropic_responder, ollama_responder, openai_responder
from fakes.server import FakeUpstream, ServedApp
from router_service.api.state import RouterState
from router_service.app import create_app, router_state
from router_service.logstore import create_decision_log
from router_service.settings import Settings

# Generous, so a loaded CI machine never trips them; timeout tests set their own.
REPO_ROOT = Path(__file__).resolve().parents[1]


def routellm_dir() -> Path:
    """Where the RouteLLM outcome data is: ``ROUTER_ROUTELLM_DIR`` or ``../shared/...``."""
    env = os.environ.get("ROUTER_ROUTELLM_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "datasets" / "routellm_evals"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``routellm`` train on the RouteLLM outcome data: skip them, with the
    reason, on machines that do not have it (CI and developers do)."""
    if (routellm_dir() / "mmlu").is_dir():
        return
    skip = pytest.mark.skip(
        reason=f"RouteLLM outcome data not found at {routellm_dir()} (set ROUTER_ROUTELLM_DIR)"
    )
    for item in items:
        if "routellm" in item.keywords:
            item.add_marker(skip)


FAST = {"connect": 2.0, "first_byte": 10.0, "idle": 10.0, "total": 30.0}
TEST_ENV = {"FAKE_OPENAI_KEY": "sk-test-openai", "FAKE_ANTHROPIC_KEY": "sk-test-anthropic"}


@pytest.fixture(scope="session")
def llama_url() -> Iterator[str]:
    """A real llama.cpp server with SmolLM2 (``e2e`` tests only), shared by the session."""
    pytest.importorskip("llama_cpp.server.app", reason="make test-e2e installs llama-cpp-python")
    from fakes.llama import LlamaServerError, llama_server

    try:
        with llama_server() as url:
            yield url
    except LlamaServerError as exc:
        pytest.fail(str(exc))


@dataclass
class Fakes:
    local: FakeUpstream  # openai type (llama.cpp-like)
    ollama: FakeUpstream
    primary: FakeUpstream
    strong: FakeUpstream
    anthropic: FakeUpstream

    def all(self) -> list[FakeUpstream]:
        return [self.local, self.ollama, self.primary, self.strong, self.anthropic]

    def cloud(self) -> list[FakeUpstream]:
        return [self.primary, self.strong, self.anthropic]


@pytest.fixture(scope="session")
def _fake_servers() -> Iterator[Fakes]:
    fakes = Fakes(
        local=FakeUpstream("local", openai_responder("hello from local")),
        ollama=FakeUpstream("ollama", ollama_responder("hello |from |ollama")),
        primary=FakeUpstream("primary", openai_responder("hello from primary")),
        strong=FakeUpstream("strong", openai_responder("hello from strong")),
        anthropic=FakeUpstream("anthropic", anthropic_responder("hello |from |claude")),
    )
    yield fakes
    for f in fakes.all():
        f.stop()


@pytest.fixture
def fakes(_fake_servers: Fakes) -> Fakes:
    for f in _fake_servers.all():
        f.reset()
    return _fake_servers


def backend(name: str, type_: str, url: str, model: str, **kw: Any) -> dict[str, Any]:
    # a copy per backend: tests edit their policy's timeouts, never the shared defaults
    return {
        "name": name,
        "type": type_,
        "base_url": url,
        "model": model,
        "timeouts": dict(FAST),
        **kw,
    }


def base_policy(fakes: Fakes) -> dict[str, Any]:
    """local: llama.cpp-like (openai) then Ollama; primary: openai; strong: openai then
    anthropic. Cloud backends need keys from ``TEST_ENV``."""
    return {
        "tiers": {
            "local": {
                "backends": [
                    backend("local-llamacpp", "openai", f"{fakes.local.url}/v1", "local-model"),
                    backend("local-ollama", "ollama", fakes.ollama.url, "llama-fake"),
                ]
            },
            "primary": {
                "backends": [
                    backend(
                        "primary-openai",
                        "openai",
                        f"{fakes.primary.url}/v1",
                        "primary-model",
                        api_key_env="FAKE_OPENAI_KEY",
                        price={"input_per_1m": 0.15, "output_per_1m": 0.6},
                    )
                ]
            },
            "strong": {
                "backends": [
                    backend(
                        "strong-openai",
                        "openai",
                        f"{fakes.strong.url}/v1",
                        "strong-model",
                        api_key_env="FAKE_OPENAI_KEY",
                        price={"input_per_1m": 2.5, "output_per_1m": 10},
                    ),
                    backend(
                        "strong-anthropic",
                        "anthropic",
                        fakes.anthropic.url,
                        "claude-fake",
                        api_key_env="FAKE_ANTHROPIC_KEY",
                    ),
                ]
            },
        },
        "circuit_breaker": {"failures": 3, "cooldown_seconds": 60},
    }


@pytest.fixture
def policy(fakes: Fakes) -> dict[str, Any]:
    """A fresh copy of ``base_policy`` for the test to edit."""
    return base_policy(fakes)


@dataclass
class RouterHandle:
    served: ServedApp
    settings: Settings
    state: RouterState
    _stopped: bool = field(default=False)

    @property
    def url(self) -> str:
        return self.served.url

    @property
    def base_url(self) -> str:
        return f"{self.served.url}/v1"

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.served.stop()

    def rows(self) -> list[dict[str, Any]]:
        """Stop the router (draining its log) and read every logged decision."""
        self.stop()
        log = create_decision_log(self.settings.database_url, self.settings.sqlite_path)
        try:
            return list(log.iter_rows())
        finally:
            log.close_sync()


MakeRouter = Callable[..., RouterHandle]


@pytest.fixture
def make_router(tmp_path: Path) -> Iterator[MakeRouter]:
    handles: list[RouterHandle] = []

    def make(
        policy: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        tracer_provider: Any = None,
        **settings_kw: Any,
    ) -> RouterHandle:
        assert policy is not None, "pass a policy (e.g. base_policy(fakes))"
        path = tmp_path / f"policy-{len(handles)}.yaml"
        path.write_text(yaml.safe_dump(copy.deepcopy(policy)), encoding="utf-8")
        kw: dict[str, Any] = {
            "policy": path,
            "sqlite_path": tmp_path / f"log-{len(handles)}.db",
            "scorer": "heuristic",
            "health_cache_seconds": 0.0,
        }
        kw.update(settings_kw)
        settings = Settings(**kw)
        app = create_app(
            settings, env=TEST_ENV if env is None else env, tracer_provider=tracer_provider
        )
        handle = RouterHandle(ServedApp(app), settings, router_state(app))
        handles.append(handle)
        return handle

    yield make
    for h in handles:
        h.stop()
