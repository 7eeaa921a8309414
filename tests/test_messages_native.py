"""``POST /v1/messages`` routed to an Anthropic backend: the client's body goes upstream as
it came (only ``model`` and ``stream`` set by the router), and the upstream's message,
error or event stream comes back untouched, driven by the official anthropic SDK against a
fake Anthropic server on loopback. A fallback from it to an OpenAI-compatible backend takes
the chat translation; the log row keeps usage and answer either way."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import orjson
import pytest

from fakes.llm import anthropic_event, anthropic_message, anthropic_stream
from fakes.server import Reply

HISTORY = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "use the tool", "signature": "sig"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"a": 1}},
        ],
    },
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}],
    },
]
TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    "cache_control": {"type": "ephemeral"},
}
BUSY = Reply.json({"error": {"message": "busy"}}, status=503)


def client(router: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=router.url, api_key="sk-client", max_retries=0)


def anthropic_first(policy: dict[str, Any]) -> dict[str, Any]:
    """The strong tier with its Anthropic backend before the OpenAI-compatible one."""
    backends = policy["tiers"]["strong"]["backends"]
    backends.reverse()
    assert backends[0]["type"] == "anthropic"
    return policy


def test_body_goes_upstream_untranslated_and_the_message_comes_back_as_sent(
    fakes, policy, make_router
):
    router = make_router(anthropic_first(policy))
    upstream = anthropic_message("Sunny.", "claude-fake")
    upstream["content"].insert(0, {"type": "thinking", "thinking": "hm", "signature": "s1"})
    upstream["usage"]["cache_read_input_tokens"] = 100
    fakes.anthropic.script(Reply.json(upstream))
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    raw = client(router).messages.with_raw_response.create(
        model="strong",
        max_tokens=300,
        system=system,  # type: ignore[arg-type]
        messages=HISTORY,  # type: ignore[arg-type]
        tools=[TOOL],  # type: ignore[list-item]
        extra_body={"top_k": 5},  # this SDK no longer names it; the API still takes it
        thinking={"type": "enabled", "budget_tokens": 200},
        metadata={"user_id": "u-1"},
    )
    sent = fakes.anthropic.calls[-1]
    assert sent.path == "/v1/messages"
    assert sent.json() == {
        "model": "claude-fake",  # the backend's model, not the client's "strong"
        "max_tokens": 300,
        "system": system,
        "messages": HISTORY,  # thinking and tool blocks exactly as the client sent them
        "tools": [TOOL],
        "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 200},
        "metadata": {"user_id": "u-1"},
    }
    assert sent.headers["x-api-key"] == "sk-test-anthropic"
    assert orjson.loads(raw.http_response.content) == upstream  # relayed byte for byte
    message = raw.parse()
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.id == "msg_fake" and message.usage.cache_read_input_tokens == 100
    assert raw.headers["x-router-tier"] == "strong"
    assert raw.headers["x-router-model"] == "claude-fake"
    assert "x-router-fallback" not in raw.headers
    assert fakes.strong.calls == []
    (row,) = router.rows()
    assert row["backend"] == "strong-anthropic" and row["status"] == 200
    assert (row["prompt_tokens"], row["completion_tokens"]) == (111, 5)
    assert row["answer"] == "Sunny." and row["extra"]["endpoint"] == "messages"
    assert row["messages"][:2] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
    ]  # the log keeps the chat view every API shares


def test_stream_events_are_relayed_untouched(fakes, policy, make_router):
    router = make_router(policy)
    fakes.strong.script(BUSY, BUSY)  # strong-openai fails over to strong-anthropic, twice
    body = {
        "model": "strong",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with httpx.stream("POST", f"{router.url}/v1/messages", json=body, timeout=30) as r:
        assert r.status_code == 200 and r.headers["x-router-model"] == "claude-fake"
        assert r.headers["x-router-fallback"].startswith("strong/strong-openai")
        relayed = b"".join(r.iter_bytes())
    expected = b"".join(anthropic_stream(["hello ", "from ", "claude"], "claude-fake"))
    assert relayed == expected  # every upstream event, ping included, as it arrived
    sent = fakes.anthropic.calls[-1].json()
    assert sent["stream"] is True and sent["model"] == "claude-fake"
    assert "stream_options" not in sent  # no chat translation on this path
    with client(router).messages.stream(
        model="strong", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert stream.get_final_text() == "hello from claude"
    rows = router.rows()
    assert [r["backend"] for r in rows] == ["strong-anthropic"] * 2
    assert rows[0]["answer"] == "hello from claude"
    assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"]) == (11, 5)


def test_upstream_client_error_comes_back_in_its_own_envelope_not_retried(
    fakes, policy, make_router
):
    router = make_router(anthropic_first(policy))
    error = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "thinking.budget_tokens: must be < max_tokens (key sk-test-anthropic)",
        },
    }
    fakes.anthropic.script(Reply.json(error, status=400))
    with pytest.raises(anthropic.BadRequestError) as info:
        client(router).messages.create(
            model="strong",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            thinking={"type": "enabled", "budget_tokens": 200},
        )
    body = info.value.response.json()
    assert body["error"]["type"] == "invalid_request_error"
    assert "budget_tokens" in body["error"]["message"]
    assert "sk-test-anthropic" not in info.value.response.text  # the key is redacted
    assert fakes.strong.calls == []  # a client error fails on every tier: not retried
    (row,) = router.rows()
    assert row["status"] == 400 and row["backend"] == "strong-anthropic"


def test_native_failure_falls_back_to_the_chat_translation(fakes, policy, make_router):
    router = make_router(anthropic_first(policy))
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "later"}}
    fakes.anthropic.script(Reply.json(overloaded, status=529))
    raw = client(router).messages.with_raw_response.create(
        model="strong",
        max_tokens=30,
        messages=HISTORY,  # type: ignore[arg-type]
    )
    message = raw.parse()
    assert raw.headers["x-router-model"] == "strong-model"
    assert raw.headers["x-router-fallback"].startswith("strong/strong-anthropic")
    assert message.content[0].text == "hello from strong"  # rendered from the chat answer
    sent = fakes.strong.calls[-1]
    assert sent.path == "/v1/chat/completions" and sent.json()["max_completion_tokens"] == 30


def test_mid_stream_error_event_ends_the_client_stream_with_an_error(fakes, policy, make_router):
    router = make_router(anthropic_first(policy))
    events = anthropic_stream(["Par"], "claude-fake")[:4]  # start, block, ping, one delta
    events.append(anthropic_event("error", error={"type": "overloaded_error", "message": "gone"}))
    fakes.anthropic.script(Reply(chunks=events, content_type="text/event-stream"))
    with (
        pytest.raises(anthropic.APIStatusError, match="gone"),
        client(router).messages.stream(
            model="strong", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        for _ in stream:
            pass
    (row,) = router.rows()
    assert row["status"] == 502 and "gone" in row["error"]


def test_a_stream_cut_before_message_stop_is_a_failure(fakes, policy, make_router):
    router = make_router(anthropic_first(policy))
    events = anthropic_stream(["Par"], "claude-fake")[:4]
    fakes.anthropic.script(Reply(chunks=events, content_type="text/event-stream"))
    body = {
        "model": "strong",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    r = httpx.post(f"{router.url}/v1/messages", json=body, timeout=30)
    assert r.status_code == 200  # committed: the failure is the stream's last event
    last = r.text.strip().split("\n\n")[-1]
    assert last.startswith("event: error") and "message_stop" in last
    (row,) = router.rows()
    assert row["status"] == 502


def test_a_bare_upstream_error_body_gets_anthropics_envelope_and_type(fakes, policy, make_router):
    router = make_router(anthropic_first(policy))
    fakes.anthropic.script(Reply(chunks=[b"request too big"], status=413))
    r = httpx.post(
        f"{router.url}/v1/messages",
        json={"model": "strong", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert r.status_code == 413
    assert r.json() == {
        "type": "error",
        "error": {"type": "request_too_large", "message": "request too big"},
    }
