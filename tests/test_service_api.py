"""The router over real HTTP, driven by the official openai SDK (sync, async, streaming):
routing, forced tiers, pass-through of the body, headers, models, health, metrics, log."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest

from fakes.headers import ROUTER_HEADERS


def client(router: Any, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key="sk-client", max_retries=0, **kw)


def test_forced_tiers_reach_their_backend_with_configured_model(fakes, policy, make_router):
    router = make_router(policy)
    c = client(router)
    for tier, fake, model, text in [
        ("local", fakes.local, "local-model", "hello from local"),
        ("primary", fakes.primary, "primary-model", "hello from primary"),
        ("strong", fakes.strong, "strong-model", "hello from strong"),
    ]:
        raw = c.chat.completions.with_raw_response.create(
            model=tier, messages=[{"role": "user", "content": "hi"}]
        )
        completion = raw.parse()
        assert completion.choices[0].message.content == text
        assert raw.headers["x-router-tier"] == tier
        assert raw.headers["x-router-model"] == model
        sent = fake.calls[-1]
        assert sent.json()["model"] == model
        assert sent.path == "/v1/chat/completions"
    # cloud keys come from the policy's api_key_env, never from the client
    assert fakes.primary.calls[-1].headers["authorization"] == "Bearer sk-test-openai"
    assert "authorization" not in fakes.local.calls[-1].headers


def test_header_force_and_concrete_model_names(fakes, policy, make_router):
    router = make_router(policy)
    c = client(router)
    raw = c.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"X-Force-Route": "strong"},
    )
    assert raw.headers["x-router-tier"] == "strong"
    assert len(fakes.strong.calls) == 1
    # a model name configured on a tier goes to that tier, to the backend serving it
    raw = c.chat.completions.with_raw_response.create(
        model="claude-fake", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-router-tier"] == "strong"
    assert raw.headers["x-router-model"] == "claude-fake"
    assert raw.parse().choices[0].message.content == "hello from claude"
    assert len(fakes.anthropic.calls) == 1


def test_auto_route_matches_classify_and_every_header_is_set(fakes, policy, make_router):
    router = make_router(policy)
    prompt = "Prove that the square root of 2 is irrational, step by step."
    decision = httpx.post(f"{router.base_url}/classify", json={"prompt": prompt}).json()
    raw = client(router).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": prompt}]
    )
    for name in ROUTER_HEADERS:
        assert raw.headers.get(name), name
    assert raw.headers["x-router-tier"] == decision["tier"]
    assert raw.headers["x-router-intent"] == decision["intent"]
    assert raw.headers["x-router-scorer"] == "heuristic"
    assert "x-router-fallback" not in raw.headers
    float(raw.headers["x-router-decision-us"])
    fake = {"local": fakes.local, "primary": fakes.primary, "strong": fakes.strong}[
        decision["tier"]
    ]
    assert len(fake.calls) == 1


def test_body_passes_through_untouched_and_response_bytes_are_the_backends(
    fakes, policy, make_router
):
    router = make_router(policy)
    body = {
        "model": "primary",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": {"type": "object"}},
            }
        ],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "stop": ["\n\n"],
        "temperature": 0.3,
        "x_vendor_field": {"nested": [1, 2, 3]},
        "seed": 42,
    }
    r = httpx.post(f"{router.base_url}/chat/completions", json=body)
    assert r.status_code == 200
    sent = fakes.primary.calls[-1].json()
    assert sent == {**body, "model": "primary-model"}
    # non-streaming openai-type answers are forwarded byte for byte
    assert r.content == fakes.primary.responder(fakes.primary.calls[-1]).chunks[0]


def test_streaming_sync_sdk(fakes, policy, make_router):
    router = make_router(policy)
    stream = client(router).chat.completions.create(
        model="primary", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    assert text == "hello from primary"
    assert fakes.primary.calls[-1].json()["stream"] is True


def test_streaming_bytes_are_forwarded_and_end_with_done(fakes, policy, make_router):
    router = make_router(policy)
    body = {"model": "local", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", f"{router.base_url}/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-router-tier"] == "local"
        raw = b"".join(r.iter_bytes())
    expected = b"".join(fakes.local.responder(fakes.local.calls[-1]).chunks)
    assert raw == expected
    assert raw.endswith(b"data: [DONE]\n\n")


def test_async_sdk_plain_and_streaming(fakes, policy, make_router):
    router = make_router(policy)

    async def run() -> tuple[str, str]:
        c = openai.AsyncOpenAI(base_url=router.base_url, api_key="x", max_retries=0)
        done = await c.chat.completions.create(
            model="strong", messages=[{"role": "user", "content": "hi"}]
        )
        parts = []
        stream = await c.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async for chunk in stream:
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
        await c.close()
        return done.choices[0].message.content or "", "".join(parts)

    plain, streamed = asyncio.run(run())
    assert plain == "hello from strong"
    assert streamed == "hello from local"


def test_models_lists_auto_and_tiers(fakes, policy, make_router):
    router = make_router(policy)
    ids = [m.id for m in client(router).models.list()]
    assert ids[:4] == ["auto", "local", "primary", "strong"]
    assert {"local-model", "primary-model", "strong-model", "claude-fake"} <= set(ids)


def test_cloud_tier_disabled_without_key(fakes, policy, make_router):
    router = make_router(policy, env={})  # no API keys at all
    models = httpx.get(f"{router.base_url}/models").json()["data"]
    enabled = {m["id"]: m["enabled"] for m in models if m["id"] in ("local", "primary", "strong")}
    assert enabled == {"local": True, "primary": False, "strong": False}
    # forcing a disabled tier: 503 naming the missing variable, nothing sent anywhere
    r = httpx.post(
        f"{router.base_url}/chat/completions",
        json={"model": "strong", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "no_backend_available"
    assert "FAKE_OPENAI_KEY" in r.json()["error"]["message"]
    # auto routing still answers, from the only enabled tier
    r = httpx.post(
        f"{router.base_url}/chat/completions",
        json={
            "model": "auto",
            "messages": [{"role": "user", "content": "Prove Fermat's little theorem rigorously."}],
        },
    )
    assert r.status_code == 200
    assert r.headers["x-router-tier"] == "local"
    assert all(not f.calls for f in fakes.cloud())


def test_health_reports_each_backend(fakes, policy, make_router):
    policy["tiers"]["local"]["backends"][0]["base_url"] = "http://127.0.0.1:9/v1"  # dead
    router = make_router(policy)
    health = httpx.get(f"{router.url}/health").json()
    assert health["status"] == "ok"
    b = health["backends"]
    assert b["local-llamacpp"]["reachable"] is False
    assert b["local-ollama"]["reachable"] is True
    assert b["primary-openai"]["reachable"] is True
    assert b["strong-anthropic"]["reachable"] is True
    assert health["tiers"] == {"local": True, "primary": True, "strong": True}
    assert fakes.anthropic.requests[-1].headers["x-api-key"] == "sk-test-anthropic"


def test_health_is_cached(fakes, policy, make_router):
    router = make_router(policy, health_cache_seconds=3600)
    httpx.get(f"{router.url}/health")
    httpx.get(f"{router.url}/health")
    assert len([r for r in fakes.primary.requests if r.method == "GET"]) == 1


def test_metrics_endpoints(fakes, policy, make_router):
    router = make_router(policy, admin_key="adm")
    client(router).chat.completions.create(
        model="primary", messages=[{"role": "user", "content": "hi"}]
    )
    assert httpx.get(f"{router.url}/metrics").status_code == 401
    prom = httpx.get(f"{router.url}/metrics", headers={"Authorization": "Bearer adm"})
    assert prom.status_code == 200
    assert "router_requests_total" in prom.text
    assert 'backend="primary-openai"' in prom.text
    js = httpx.get(f"{router.url}/v1/metrics", headers={"X-Admin-Key": "adm"}).json()
    assert js["backends"]["primary-openai"]["circuit"] == "closed"
    assert "metrics" in js


def test_client_api_keys(fakes, policy, make_router):
    router = make_router(policy, api_keys=["good-key"])
    bad = openai.OpenAI(base_url=router.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.chat.completions.create(model="local", messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["code"] == "invalid_api_key"
    good = openai.OpenAI(base_url=router.base_url, api_key="good-key", max_retries=0)
    out = good.chat.completions.create(model="local", messages=[{"role": "user", "content": "x"}])
    assert out.choices[0].message.content == "hello from local"


def test_every_request_is_logged(fakes, policy, make_router):
    router = make_router(policy, log_redaction="pii")
    c = client(router)
    c.chat.completions.create(
        model="primary",
        messages=[{"role": "user", "content": "hi"}],
    )
    list(
        c.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "yo"}], stream=True
        )
    )
    httpx.post(f"{router.base_url}/chat/completions", content=b"{not json")
    httpx.post(f"{router.base_url}/classify", json={"prompt": "mail me at jane.doe@example.com"})
    rows = router.rows()
    assert len(rows) == 4
    by_status = sorted(rows, key=lambda r: r["created_at"])
    plain, streamed, bad, classified = by_status
    assert plain["tier"] == "primary" and plain["backend"] == "primary-openai"
    assert plain["prompt_tokens"] == 7 and plain["completion_tokens"] == 3
    assert plain["answer"] == "hello from primary"
    assert streamed["stream"] is True and streamed["answer"] == "hello from local"
    assert streamed["ttfb_ms"] is not None
    assert bad["status"] == 400 and bad["tier"] is None
    assert classified["extra"]["endpoint"] == "classify"
    assert classified["sensitive"] is True
    assert "jane.doe@example.com" not in str(classified["messages"])


def test_background_logging_is_drained_at_shutdown(fakes, policy, make_router):
    router = make_router(policy, log_wait=False)
    c = client(router)
    for _ in range(5):
        c.chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}])
    rows = router.rows()
    assert len(rows) == 5 and all(r["backend"] == "local-llamacpp" for r in rows)


def test_log_wait_commits_each_row_before_the_exchange_ends(fakes, policy, make_router):
    router = make_router(policy, log_wait=True)
    c = client(router)
    msgs = [{"role": "user", "content": "hi"}]
    for i in range(3):
        c.chat.completions.create(model="local", messages=msgs)
        # The whole answer arrived, so its row is committed (read without stopping).
        assert router.state.log.count() == 2 * i + 1
        chunks = list(c.chat.completions.create(model="local", messages=msgs, stream=True))
        assert chunks  # iteration ended at [DONE], which waited for the commit
        assert router.state.log.count() == 2 * i + 2


def test_classify_works_without_any_backend(fakes, make_router):
    router = make_router({"tiers": {}})
    r = httpx.post(
        f"{router.base_url}/classify",
        json={"messages": [{"role": "user", "content": "Write a SQL query for top customers"}]},
    )
    assert r.status_code == 200
    d = r.json()
    assert set(d) >= {
        "intent",
        "intent_confidence",
        "intent_scores",
        "strong_win_rate",
        "tier",
        "model",
        "reason",
        "scorer",
        "sensitivity",
        "decision_us",
    }
    assert d["model"] is None and d["sensitivity"] == {"sensitive": False, "kinds": []}
    assert abs(sum(d["intent_scores"].values()) - 1) < 1e-6
    assert r.headers["x-router-intent"] == d["intent"]
    chat = httpx.post(
        f"{router.base_url}/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 503 and "none configured" in chat.json()["error"]["message"]


def test_one_tier_everywhere_when_the_chosen_tier_is_disabled(fakes, policy, make_router):
    """No cloud keys: the policy picks primary, the plan starts on local. The body, the
    header, the metric and the log row all say local; the policy's pick stays visible."""
    policy["routing"] = {"heuristic": {"threshold": 0, "strong_threshold": 100}}
    router = make_router(policy, env={})
    r = httpx.post(f"{router.base_url}/classify", json={"prompt": "hi"})
    body = r.json()
    assert (body["tier"], r.headers["x-router-tier"], body["decided_tier"]) == (
        "local",
        "local",
        "primary",
    )
    assert "routed to local" in body["reason"]
    chat = httpx.post(
        f"{router.base_url}/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.headers["x-router-tier"] == "local"
    prom = httpx.get(f"{router.url}/metrics").text
    decided = [line for line in prom.splitlines() if line.startswith("router_decisions_total{")]
    assert decided and all('tier="local"' in line for line in decided), decided
    rows = router.rows()
    assert {row["tier"] for row in rows} == {"local"}
    assert {row["extra"]["decided_tier"] for row in rows} == {"primary"}
    assert sorted(row["extra"]["endpoint"] for row in rows) == ["chat", "classify"]


def test_models_retrieve_with_the_sdk(fakes, policy, make_router):
    router = make_router(policy)
    client = openai.OpenAI(base_url=router.base_url, api_key="x", max_retries=0)
    auto = client.models.retrieve("auto")
    assert auto.id == "auto" and auto.owned_by == "learned-router"
    assert client.models.retrieve("local").id == "local"
    assert client.models.retrieve("primary-model").owned_by == "primary-openai"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("no-such-model")
    assert missing.value.body["code"] == "model_not_found"
    assert not any(f.calls for f in fakes.all())  # (legacy completions: test_completions_api)
