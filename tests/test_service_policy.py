"""Policy files: the shipped default loads; mistakes name the file and the field;
API-key variables decide which backends are enabled; settings come from ROUTER_*."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from router_service.api.state import REPO_ROOT
from router_service.app import create_app
from router_service.policy import PolicyError, load_policy, model_index, resolve_backends
from router_service.routing import RoutingPolicy
from router_service.settings import Settings

DEFAULT = REPO_ROOT / "policies" / "default.yaml"
MINIMAL = {
    "tiers": {
        "local": {
            "backends": [
                {"name": "l", "type": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m"}
            ]
        }
    }
}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def test_built_in_thresholds_are_the_committed_policys() -> None:
    """A policy without ``routing.intents`` (or missing an intent) gets the built-in cuts:
    they must be what ``policies/default.yaml`` was calibrated to, not an older model's."""
    committed = load_policy(DEFAULT).routing.intents
    built_in = RoutingPolicy().intents
    assert {k: (v.local_below, v.strong_above) for k, v in committed.items()} == {
        k: (v.local_below, v.strong_above) for k, v in built_in.items()
    }


def test_default_policy_loads_and_matches_the_documented_layout():
    policy = load_policy(DEFAULT)
    local = [(b.type, b.base_url) for b in policy.tiers["local"].backends]
    assert local == [("openai", "http://127.0.0.1:8081/v1"), ("ollama", "http://127.0.0.1:11434")]
    assert [b.model for b in policy.tiers["primary"].backends] == ["gpt-4o-mini"]
    assert {b.type for b in policy.tiers["strong"].backends} == {"openai", "anthropic"}
    assert policy.fallback["local"] == ["primary", "strong"]
    backends = resolve_backends(policy, {})
    assert [b.name for b in backends if b.enabled] == ["llamacpp", "ollama"]
    with_keys = resolve_backends(policy, {"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": " "})
    enabled = {b.name: b.enabled for b in with_keys}
    assert enabled["openai-mini"] and enabled["openai-4o"]
    assert not enabled["anthropic-sonnet"], "a blank key does not enable a backend"
    assert model_index(with_keys)["gpt-4o"].tier == "strong"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p["tiers"]["local"]["backends"][0].update(type="grpc"), "backends[0].type"),
        (lambda p: p["tiers"].update(turbo={"backends": []}), "tiers.turbo"),
        (lambda p: p["tiers"]["local"]["backends"][0].update(base_url="ftp://x"), "base_url"),
        (lambda p: p["tiers"]["local"]["backends"][0].pop("model"), "backends[0].model"),
        (lambda p: p["tiers"]["local"]["backends"][0].update(colour="red"), "colour"),
        (
            lambda p: p["tiers"]["local"]["backends"][0].update(timeouts={"connect": -1}),
            "timeouts.connect",
        ),
        (lambda p: p.update(fallback={"local": ["local"]}), "lists itself"),
        (lambda p: p.update(latency={"budgets_ms": {"poetry": 5}}), "latency.budgets_ms"),
        (
            lambda p: p.update(
                routing={"intents": {"poetry": {"local_below": 0.1, "strong_above": 0.2}}}
            ),
            "routing",
        ),
        (
            lambda p: p["tiers"]["local"]["backends"].append(
                dict(p["tiers"]["local"]["backends"][0])
            ),
            "used twice",
        ),
    ],
)
def test_mistakes_name_the_file_and_the_field(tmp_path, mutate, expected):
    import copy

    data = copy.deepcopy(MINIMAL)
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    assert str(path) in str(exc.value)
    assert expected in str(exc.value)


def test_unreadable_or_non_yaml_files(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(write(tmp_path, "tiers: [unclosed"))
    with pytest.raises(PolicyError, match="must be a mapping"):
        load_policy(write(tmp_path, "- a\n- b\n"))


def test_create_app_fails_fast_on_a_bad_policy(tmp_path):
    path = write(tmp_path, {"tiers": {"local": {"backends": [{"name": "x"}]}}})
    with pytest.raises(PolicyError, match=r"tiers\.local\.backends\[0\]\.type"):
        create_app(Settings(policy=path, sqlite_path=tmp_path / "l.db"), env={})


def test_settings_from_arguments_and_key_lists():
    s = Settings(api_keys="a, b,,c", max_body_bytes=2048)
    assert s.api_keys == ["a", "b", "c"]
    assert s.max_body_bytes == 2048
    assert Settings().port == 8080
