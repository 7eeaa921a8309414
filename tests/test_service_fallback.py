"""Fallback order, timeouts, circuit breaker, mid-stream failures, client disconnects and
latency budgets, end to end against fake upstream servers."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import openai
import orjson
import pytest

from fakes.llm import hanging_stream, openai_chunk, sse
from fakes.server import Reply

MSG = [{"role": "user", "content": "hi"}]
ERR_500 = Reply.json({"error": {"message": "boom", "type": "server_error"}}, status=500)


def dead_url() -> str:
    """A loopback port with nothing listening (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def sdk(router: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key="x", max_retries=0)


def post(router: Any, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return httpx.post(f"{router.base_url}/chat/completions", json=body, timeout=30, **kw)


def test_fallback_order_backends_then_tiers(fakes, policy, make_router):
    fakes.local.script(Reply.json({"error": {"message": "busy"}}, status=503))
    fakes.ollama.script(Reply(status=500, chunks=[b'{"error":"model crashed"}']))
    router = make_router(policy)
    assert httpx.post(f"{router.base_url}/classify", json={"prompt": "hi"}).json()["tier"] == (
        "local"
    )
    raw = sdk(router).chat.completions.with_raw_response.create(model="auto", messages=MSG)
    # both local backends fail -> the next tier of local's chain (primary)
    assert raw.headers["x-router-tier"] == "primary"
    assert raw.headers["x-router-fallback"] == (
        "local/local-llamacpp: http_503; local/local-ollama: http_500"
    )
    assert raw.parse().choices[0].message.content == "hello from primary"
    assert [len(f.calls) for f in (fakes.local, fakes.ollama, fakes.primary, fakes.strong)] == [
        1,
        1,
        1,
        0,
    ]
    (row,) = [r for r in router.rows() if r["extra"].get("endpoint") != "classify"]
    assert row["fallbacks"] == [
        "local/local-llamacpp: http_503",
        "local/local-ollama: http_500",
    ]
    assert row["backend"] == "primary-openai" and row["extra"]["decided_tier"] == "local"


def test_connection_error_and_rate_limit_fall_back(fakes, policy, make_router):
    policy["tiers"]["local"]["backends"][0]["base_url"] = dead_url() + "/v1"
    fakes.ollama.script(Reply.json({"error": "slow down"}, status=429))
    router = make_router(policy)
    r = post(router, {"model": "auto", "messages": MSG})
    assert r.status_code == 200
    assert r.headers["x-router-fallback"] == (
        "local/local-llamacpp: connect_error; local/local-ollama: http_429"
    )


def test_slow_first_byte_times_out_then_falls_back(fakes, policy, make_router):
    policy["tiers"]["local"]["backends"][0]["timeouts"]["first_byte"] = 0.3
    fakes.local.script(Reply(first_delay=30, chunks=[b"{}"]))
    router = make_router(policy)
    r = post(router, {"model": "local", "messages": MSG})
    assert r.status_code == 200
    assert r.headers["x-router-model"] == "llama-fake"
    assert r.headers["x-router-fallback"] == "local/local-llamacpp: timeout"
    assert fakes.local.disconnected.wait(5), "the timed-out upstream request was abandoned"


def test_exhausted_timeouts_give_504_and_errors_502(fakes, policy, make_router):
    for b in policy["tiers"]["local"]["backends"]:
        b["timeouts"]["first_byte"] = 0.3
    router = make_router(policy)
    fakes.local.script(Reply(first_delay=30))
    fakes.ollama.script(Reply(first_delay=30))
    r = post(router, {"model": "local", "messages": MSG})  # forced: no other tier
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"
    assert r.headers["x-router-tier"] == "local"
    fakes.local.script(ERR_500)
    fakes.ollama.script(Reply(status=502, chunks=[b"bad gateway"]))
    r = post(router, {"model": "local", "messages": MSG, "stream": True})
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "upstream_error" and "local-ollama: http_502" in err["message"]
    with pytest.raises(openai.InternalServerError):
        fakes.local.script(ERR_500)
        fakes.ollama.script(ERR_500)
        sdk(router).chat.completions.create(model="local", messages=MSG)


def test_rate_limited_everywhere_gives_429(fakes, policy, make_router):
    router = make_router(policy)
    fakes.local.script(Reply.json({"error": {"message": "rl"}}, status=429))
    fakes.ollama.script(Reply.json({"error": "rl"}, status=429))
    with pytest.raises(openai.RateLimitError) as exc:
        sdk(router).chat.completions.create(model="local", messages=MSG)
    assert exc.value.body["code"] == "upstream_rate_limited"


def test_client_errors_from_backend_pass_through_without_fallback(fakes, policy, make_router):
    body = {"error": {"message": "context too long", "type": "invalid_request_error"}}
    fakes.local.script(Reply.json(body, status=400))
    router = make_router(policy)
    r = post(router, {"model": "local", "messages": MSG})
    assert r.status_code == 400
    assert r.content == orjson.dumps(body)
    assert not fakes.ollama.calls


def test_circuit_breaker_opens_after_consecutive_failures(fakes, policy, make_router):
    router = make_router(policy)  # failures: 3, cooldown 60 s
    fakes.local.script(*[ERR_500] * 3)
    for _ in range(3):
        assert post(router, {"model": "local", "messages": MSG}).status_code == 200
    assert len(fakes.local.calls) == 3
    r = post(router, {"model": "local", "messages": MSG})
    assert r.status_code == 200
    assert len(fakes.local.calls) == 3, "open circuit: the backend is not called"
    assert r.headers["x-router-fallback"] == "local/local-llamacpp: circuit_open"
    assert len(fakes.ollama.calls) == 4
    state = httpx.get(f"{router.base_url}/metrics").json()["backends"]["local-llamacpp"]
    assert state["circuit"] == "open"
    assert httpx.get(f"{router.url}/health").json()["backends"]["local-llamacpp"]["circuit"] == (
        "open"
    )


def test_circuit_breaker_half_open_trial_closes_it(fakes, policy, make_router):
    policy["circuit_breaker"] = {"failures": 2, "cooldown_seconds": 0}
    router = make_router(policy)
    fakes.local.script(ERR_500, ERR_500)
    post(router, {"model": "local", "messages": MSG})
    post(router, {"model": "local", "messages": MSG})
    slot = router.state.upstream.slots[0]
    assert slot.breaker.opened_at is not None
    r = post(router, {"model": "local", "messages": MSG})  # cool-down 0: trial request
    assert r.headers["x-router-model"] == "local-model"
    assert slot.breaker.state == "closed"


def test_malformed_sse_before_first_event_falls_back(fakes, policy, make_router):
    fakes.local.script(Reply(chunks=[b"data: {not json\n\n"], content_type="text/event-stream"))
    router = make_router(policy)
    stream = sdk(router).chat.completions.create(model="local", messages=MSG, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "hello from ollama"


def test_malformed_sse_mid_stream_ends_with_error_event(fakes, policy, make_router):
    fakes.local.script(
        Reply(
            chunks=[sse(openai_chunk({"content": "par"})), b"data: {broken\n\n"],
            content_type="text/event-stream",
        )
    )
    router = make_router(policy)
    body = {"model": "local", "messages": MSG, "stream": True}
    with httpx.stream("POST", f"{router.base_url}/chat/completions", json=body) as r:
        raw = b"".join(r.iter_bytes())
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[0] == sse(openai_chunk({"content": "par"})).strip()
    err = orjson.loads(events[1][len(b"data: ") :])["error"]
    assert "malformed SSE" in err["message"] and err["code"] == "protocol_error"
    assert events[2] == b"data: [DONE]"
    assert not fakes.ollama.calls, "no fallback once bytes reached the client"
    # the SDK surfaces it as an APIError
    fakes.local.script(
        Reply(
            chunks=[sse(openai_chunk({"content": "par"})), b"data: {broken\n\n"],
            content_type="text/event-stream",
        )
    )
    with pytest.raises(openai.APIError, match="malformed SSE"):
        for _ in sdk(router).chat.completions.create(model="local", messages=MSG, stream=True):
            pass


def test_stream_cut_before_done_and_idle_timeout(fakes, policy, make_router):
    policy["tiers"]["local"]["backends"][0]["timeouts"]["idle"] = 0.3
    router = make_router(policy)
    body = {"model": "local", "messages": MSG, "stream": True}
    fakes.local.script(
        Reply(chunks=[sse(openai_chunk({"content": "a"}))], content_type="text/event-stream")
    )
    raw = post(router, body).content
    assert b"before [DONE]" in raw and raw.endswith(b"data: [DONE]\n\n")
    fakes.local.script(
        Reply(
            chunks=[sse(openai_chunk({"content": "a"})), sse(openai_chunk({"content": "b"}))],
            chunk_delay=30,
            content_type="text/event-stream",
        )
    )
    raw = post(router, body).content
    assert b"idle timeout" in raw and raw.endswith(b"data: [DONE]\n\n")
    rows = router.rows()
    assert [r["status"] for r in rows] == [502, 502]


def test_client_disconnect_cancels_upstream(fakes, policy, make_router):
    fakes.local.script(hanging_stream())
    router = make_router(policy)
    body = {"model": "local", "messages": MSG, "stream": True}
    with httpx.stream("POST", f"{router.base_url}/chat/completions", json=body) as r:
        chunks = r.iter_bytes()
        assert b'"content":"x"' in next(chunks)
        assert not fakes.local.disconnected.is_set(), "still streaming while the client reads"
    # leaving the block closes the client connection mid-stream
    assert fakes.local.disconnected.wait(5), "upstream request was not cancelled"
    row = router.rows()[0]
    assert row["status"] == 499 and "disconnected" in row["error"]


def test_latency_budget_spills_to_faster_tier(fakes, policy, make_router):
    for tier, ms in (("local", 50), ("primary", 9000), ("strong", 9000)):
        for b in policy["tiers"][tier]["backends"]:
            b["expected_latency_ms"] = ms
    policy["latency"] = {"budgets_ms": {"default": 1000}}
    router = make_router(policy)
    prompt = "Prove rigorously that there are infinitely many primes, then analyse the proof."
    decision = httpx.post(f"{router.base_url}/classify", json={"prompt": prompt}).json()
    assert decision["decided_tier"] != "local" and decision["tier"] == "local"
    assert "latency budget" in decision["latency_budget"]
    assert "routed to local (latency budget" in decision["reason"]
    r = post(router, {"model": "auto", "messages": [{"role": "user", "content": prompt}]})
    assert r.headers["x-router-tier"] == "local"
    # forced routes ignore budgets
    r = post(router, {"model": "strong", "messages": MSG})
    assert r.headers["x-router-tier"] == "strong"
