"""Shadow evaluation: a candidate scores sampled live traffic next to the champion without
touching routing; agreement, tier shares and cost difference are reported."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from fakes.loop_models import write_model
from router_service.decision import Scores
from router_service.intents import INTENTS
from router_service.model_store import default_loader
from router_service.routing import RoutingPolicy
from router_service.shadow import ShadowEvaluator, ShadowTap

ADMIN = "admin-secret"
PRICES = {"local": (0.0, 0.0), "primary": (0.15, 0.6), "strong": (2.5, 10.0)}
MSG = [{"role": "user", "content": "hello there"}]  # 11 chars -> 3 estimated tokens


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    return {
        "champ": write_model(tmp_path / "champ", "v1", intent="chitchat", strong_logit=-4.0),
        "cand": write_model(tmp_path / "cand", "v2", intent="coding", strong_logit=4.0, seed=1),
        "same": write_model(tmp_path / "same", "v3", intent="chitchat", strong_logit=-4.0),
    }


def champion_scores(intent: str = "chitchat", win: float = 0.02) -> Scores:
    scores = dict.fromkeys(INTENTS, 0.0)
    scores[intent] = 1.0
    return Scores(scores, win)


def evaluator(model: Path, **kw: Any) -> ShadowEvaluator:
    return ShadowEvaluator(
        default_loader(model), RoutingPolicy(), PRICES, model_dir=str(model), **kw
    )


def test_disagreeing_candidate_is_measured(models) -> None:
    shadow = evaluator(models["cand"], completion_tokens_estimate=100)
    shadow.start()
    try:
        for _ in range(5):
            assert shadow.offer(MSG, champion_scores(), "v1")
        assert shadow.drain()
    finally:
        shadow.stop()
    rep = shadow.report()
    assert rep["scored"] == 5 and rep["errors"] == 0 and rep["candidate_version"] == "v2"
    assert rep["agreement"] == {"intent": 0.0, "tier": 0.0}
    assert rep["tier_share"]["champion"] == {"local": 1.0, "primary": 0.0, "strong": 0.0}
    assert rep["tier_share"]["candidate"] == {"local": 0.0, "primary": 0.0, "strong": 1.0}
    assert rep["tier_confusion"]["local"]["strong"] == 5
    cost = rep["estimated_cost_usd"]
    assert cost["champion"] == 0.0
    assert cost["candidate"] == pytest.approx(5 * (3 * 2.5 + 100 * 10.0) / 1e6)
    assert cost["difference"] == pytest.approx(cost["candidate"])
    assert rep["champion_versions"] == {"v1": 5}
    assert rep["candidate_decision_us"]["p50"] > 0


def test_agreeing_candidate_and_reported_usage(models) -> None:
    shadow = evaluator(models["same"])
    shadow.start()
    try:
        shadow.offer(MSG, champion_scores(), "v1", prompt_tokens=1000, completion_tokens=10)
        assert shadow.drain()
    finally:
        shadow.stop()
    rep = shadow.report()
    assert rep["agreement"] == {"intent": 1.0, "tier": 1.0}
    assert rep["estimated_cost_usd"]["difference"] == 0.0


def test_sampling_and_a_full_queue_never_block(models) -> None:
    none = evaluator(models["cand"], sample_rate=0.0)
    assert not any(none.offer(MSG, champion_scores()) for _ in range(50))
    assert none.report()["offered"] == 50 and none.report()["sampled"] == 0
    some = evaluator(models["cand"], sample_rate=0.3, seed=1)
    taken = sum(some.offer(MSG, champion_scores()) for _ in range(400))
    assert 60 < taken < 180
    full = evaluator(models["cand"], max_queue=3)  # not started: nothing consumes
    results = [full.offer(MSG, champion_scores()) for _ in range(10)]
    assert results.count(True) == 3 and full.report()["dropped"] == 7


class _Exploding:
    name, version = "learned", "boom"

    def score(self, messages: Any) -> Scores:
        raise RuntimeError("candidate bug")


def test_a_failing_candidate_is_counted_not_raised() -> None:
    shadow = ShadowEvaluator(_Exploding(), RoutingPolicy(), PRICES)
    shadow.start()
    try:
        assert shadow.offer(MSG, champion_scores())
        assert shadow.drain()
    finally:
        shadow.stop()
    assert shadow.report()["errors"] == 1 and shadow.report()["scored"] == 0


def test_tap_returns_the_champions_scores(models) -> None:
    champion = default_loader(models["champ"])
    shadow = evaluator(models["cand"])
    tap = ShadowTap(champion, shadow)
    assert (tap.name, tap.version) == ("learned", "v1")
    assert tap.score(MSG) == champion.score(MSG)
    assert shadow.report()["sampled"] == 1


def ask(router: Any, content: str = "hello there") -> httpx.Headers:
    c = openai.OpenAI(base_url=router.base_url, api_key="sk", max_retries=0)
    raw = c.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": content}]
    )
    raw.parse()
    return raw.headers


def shadow_report(router: Any, want_scored: int) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        rep = httpx.get(f"{router.url}/v1/shadow").json()
        if rep.get("scored", 0) >= want_scored or time.monotonic() > deadline:
            return rep


def test_service_shadow_does_not_change_routing(fakes, policy, make_router, models) -> None:
    router = make_router(
        policy,
        scorer="learned",
        model_dir=models["champ"],
        model_watch_seconds=0,
        shadow_model_dir=models["cand"],
        admin_key=ADMIN,
    )
    for _ in range(4):
        h = ask(router)
        assert (h["x-router-model-version"], h["x-router-intent"]) == ("v1", "chitchat")
        assert h["x-router-tier"] == "local"
    assert len(fakes.strong.calls) == 0
    rep = shadow_report(router, 4)
    assert rep["enabled"] and rep["scored"] == 4 and rep["champion_version"] == "v1"
    assert rep["agreement"] == {"intent": 0.0, "tier": 0.0}
    assert rep["tier_share"]["candidate"]["strong"] == 1.0
    assert rep["estimated_cost_usd"]["difference"] > 0
    auth = {"Authorization": f"Bearer {ADMIN}"}
    metrics = httpx.get(f"{router.url}/v1/metrics", headers=auth).json()["metrics"]
    agreement = {
        s["labels"]["what"]: s["value"] for s in metrics["router_shadow_agreement"]["samples"]
    }
    assert agreement == {"intent": 0.0, "tier": 0.0}
    prom = httpx.get(f"{router.url}/metrics", headers=auth).text
    assert 'router_shadow_tier_share{model="candidate",tier="strong"} 1.0' in prom


def test_admin_starts_and_stops_a_shadow(fakes, policy, make_router, models, tmp_path) -> None:
    router = make_router(
        policy, scorer="learned", model_dir=models["champ"], model_watch_seconds=0, admin_key=ADMIN
    )
    auth = {"Authorization": f"Bearer {ADMIN}"}
    assert httpx.get(f"{router.url}/v1/shadow").json()["enabled"] is False
    body = {"model_dir": str(models["same"]), "sample_rate": 1.0}
    assert httpx.post(f"{router.url}/admin/shadow", json=body).status_code == 401
    r = httpx.post(f"{router.url}/admin/shadow", json=body, headers=auth)
    assert r.status_code == 200 and r.json()["candidate_version"] == "v3"
    ask(router)
    assert shadow_report(router, 1)["agreement"] == {"intent": 1.0, "tier": 1.0}
    bad = {"model_dir": str(tmp_path / "missing")}
    r = httpx.post(f"{router.url}/admin/shadow", json=bad, headers=auth)
    assert r.status_code == 409 and r.json()["error"]["code"] == "model_refused"
    r = httpx.post(f"{router.url}/admin/shadow", json={"sample_rate": 2}, headers=auth)
    assert r.status_code == 422
    r = httpx.delete(f"{router.url}/admin/shadow", headers=auth)
    assert r.status_code == 200 and r.json()["last_report"]["scored"] == 1
    assert httpx.get(f"{router.url}/v1/shadow").json()["enabled"] is False
    assert ask(router)["x-router-model-version"] == "v1"
    relative = httpx.post(f"{router.url}/admin/shadow", json={"model_dir": "same"}, headers=auth)
    assert relative.status_code == 200 and relative.json()["candidate_version"] == "v3"
    # Outside the models root (the served model's parent): refused before the path is
    # touched, with the same answer whether it exists or not.
    for outside in ("/etc", "/no/such/dir", "../../etc", str(tmp_path.parent)):
        r = httpx.post(f"{router.url}/admin/shadow", json={"model_dir": outside}, headers=auth)
        assert r.status_code == 403, outside
        assert r.json()["error"]["code"] == "path_not_allowed"
        assert outside not in r.json()["error"]["message"]
