"""Anthropic and Ollama backends: OpenAI requests translated to their native APIs and
their answers (whole and streamed) translated back, through the SDK and as pure functions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from fakes.llm import anthropic_event, anthropic_message, ollama_line
from fakes.server import Reply
from router_service.backends.anthropic import openai_to_anthropic
from router_service.backends.ollama import OllamaBackend, openai_to_ollama
from router_service.backends.sse import LineParser, SSEParser
from router_service.policy import BackendConfig, ResolvedBackend

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def sdk(router: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key="x", max_retries=0)


# -- Anthropic, end to end -----------------------------------------------------------------
def test_anthropic_round_trip(fakes, policy, make_router):
    router = make_router(policy)
    out = sdk(router).chat.completions.create(
        model="claude-fake",
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "hi"},
        ],
        temperature=1.7,
        stop="END",
    )
    assert out.choices[0].message.content == "hello from claude"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and out.usage.prompt_tokens == 11
    assert out.usage.completion_tokens == 5
    sent = fakes.anthropic.calls[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-test-anthropic"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    body = sent.json()
    assert body["system"] == "Be terse."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert body["max_tokens"] == 4096 and body["temperature"] == 1.0
    assert body["stop_sequences"] == ["END"]
    assert "stream" not in body


def test_anthropic_streaming_with_usage(fakes, policy, make_router):
    router = make_router(policy)
    chunks = list(
        sdk(router).chat.completions.create(
            model="claude-fake",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello from claude"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert fakes.anthropic.calls[-1].json()["stream"] is True


def test_anthropic_tool_calls_both_ways(fakes, policy, make_router):
    fakes.anthropic.script(
        Reply.json(anthropic_message("", tool={"name": "get_weather", "input": {"city": "Oslo"}}))
    )
    router = make_router(policy)
    out = sdk(router).chat.completions.create(
        model="claude-fake",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=TOOLS,
        tool_choice="required",
    )
    call = out.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == {"city": "Oslo"}
    assert out.choices[0].finish_reason == "tool_calls"
    sent = fakes.anthropic.calls[-1].json()
    assert sent["tools"][0]["input_schema"]["properties"]["city"] == {"type": "string"}
    assert sent["tool_choice"] == {"type": "any"}


def test_anthropic_streamed_tool_call(fakes, policy, make_router):
    events = [
        anthropic_event("message_start", message={"id": "msg_1", "usage": {"input_tokens": 3}}),
        anthropic_event(
            "content_block_start",
            index=0,
            content_block={"type": "tool_use", "id": "toolu_9", "name": "get_weather"},
        ),
        anthropic_event(
            "content_block_delta",
            index=0,
            delta={"type": "input_json_delta", "partial_json": '{"city": '},
        ),
        anthropic_event(
            "content_block_delta",
            index=0,
            delta={"type": "input_json_delta", "partial_json": '"Oslo"}'},
        ),
        anthropic_event("message_delta", delta={"stop_reason": "tool_use"}, usage={}),
        anthropic_event("message_stop"),
    ]
    fakes.anthropic.script(Reply(chunks=events, content_type="text/event-stream"))
    router = make_router(policy)
    chunks = list(
        sdk(router).chat.completions.create(
            model="claude-fake",
            messages=[{"role": "user", "content": "Weather?"}],
            tools=TOOLS,
            stream=True,
        )
    )
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id == "toolu_9" and calls[0].function.name == "get_weather"
    args = "".join(tc.function.arguments or "" for tc in calls)
    assert orjson.loads(args) == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_anthropic_overloaded_falls_back_and_stream_error_event(fakes, policy, make_router):
    policy["tiers"]["strong"]["backends"].reverse()  # anthropic first
    fakes.anthropic.script(
        Reply.json(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            status=529,
        )
    )
    router = make_router(policy)
    r = httpx.post(
        f"{router.base_url}/chat/completions",
        json={"model": "strong", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.headers["x-router-fallback"] == "strong/strong-anthropic: http_529"
    assert r.headers["x-router-model"] == "strong-model"
    # an error event after the stream started -> OpenAI-shaped error event, then [DONE]
    fakes.anthropic.script(
        Reply(
            chunks=[
                anthropic_event("message_start", message={"id": "m", "usage": {}}),
                anthropic_event(
                    "error", error={"type": "overloaded_error", "message": "Overloaded"}
                ),
            ],
            content_type="text/event-stream",
        )
    )
    with pytest.raises(openai.APIError, match="Overloaded"):
        for _ in sdk(router).chat.completions.create(
            model="claude-fake", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            pass


def test_anthropic_unexpected_event_shape_ends_with_error_event(fakes, policy, make_router):
    fakes.anthropic.script(
        Reply(
            chunks=[
                anthropic_event("message_start", message={"id": "m", "usage": {}}),
                anthropic_event(
                    "content_block_start", index="first", content_block={"type": "tool_use"}
                ),
            ],
            content_type="text/event-stream",
        )
    )
    router = make_router(policy)
    body = {"model": "claude-fake", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    raw = httpx.post(f"{router.base_url}/chat/completions", json=body).content
    assert b"malformed stream event" in raw and raw.endswith(b"data: [DONE]\n\n")


def test_anthropic_client_error_is_translated(fakes, policy, make_router):
    fakes.anthropic.script(
        Reply.json(
            {"type": "error", "error": {"type": "invalid_request_error", "message": "too long"}},
            status=400,
        )
    )
    router = make_router(policy)
    with pytest.raises(openai.BadRequestError, match="too long") as exc:
        sdk(router).chat.completions.create(
            model="claude-fake", messages=[{"role": "user", "content": "hi"}]
        )
    assert exc.value.body["type"] == "invalid_request_error"


# -- Ollama, end to end --------------------------------------------------------------------
def test_ollama_round_trip(fakes, policy, make_router):
    router = make_router(policy)
    out = sdk(router).chat.completions.create(
        model="llama-fake",
        messages=[{"role": "developer", "content": "terse"}, {"role": "user", "content": "hi"}],
        temperature=0.2,
        max_tokens=50,
        seed=7,
        stop=["\n"],
        response_format={"type": "json_object"},
    )
    assert out.choices[0].message.content == "hello from ollama"
    assert out.usage is not None and (out.usage.prompt_tokens, out.usage.completion_tokens) == (
        9,
        4,
    )
    sent = fakes.ollama.calls[-1]
    assert sent.path == "/api/chat"
    body = sent.json()
    assert body["stream"] is False and body["format"] == "json"
    assert body["options"] == {"temperature": 0.2, "seed": 7, "num_predict": 50, "stop": ["\n"]}
    assert body["messages"][0] == {"role": "system", "content": "terse"}


def test_ollama_streaming(fakes, policy, make_router):
    router = make_router(policy)
    chunks = list(
        sdk(router).chat.completions.create(
            model="llama-fake",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello from ollama"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 13
    assert fakes.ollama.calls[-1].json()["stream"] is True


def test_ollama_error_mid_stream(fakes, policy, make_router):
    fakes.ollama.script(
        Reply(
            chunks=[ollama_line("par"), orjson.dumps({"error": "out of memory"}) + b"\n"],
            content_type="application/x-ndjson",
        )
    )
    router = make_router(policy)
    with pytest.raises(openai.APIError, match="out of memory"):
        for _ in sdk(router).chat.completions.create(
            model="llama-fake", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            pass


# -- pure translation ------------------------------------------------------------------
def test_openai_to_anthropic_messages_tools_and_images():
    body = {
        "messages": [
            {"role": "system", "content": "sys A"},
            {"role": "developer", "content": "sys B"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "user", "content": "thanks"},
        ],
        "max_completion_tokens": 77,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "user": "u-1",
    }
    out = openai_to_anthropic(body, "claude-x", stream=True, default_max_tokens=10)
    assert out["system"] == "sys A\n\nsys B"
    assert out["max_tokens"] == 77 and out["stream"] is True
    assert out["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert out["metadata"] == {"user_id": "u-1"}
    user, assistant, tool_and_user = out["messages"]
    assert user["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"},
    }
    assert user["content"][2]["source"] == {"type": "url", "url": "https://x.test/cat.jpg"}
    assert assistant["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}}
    ]
    # tool result and the next user turn merge into one user message (roles alternate)
    assert tool_and_user["role"] == "user"
    assert tool_and_user["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
        {"type": "text", "text": "thanks"},
    ]


def test_openai_to_ollama_tools_and_images():
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
                ],
            },
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "function": {"name": "f", "arguments": '{"a": 1}'}},
                ],
            },
            {"role": "tool", "content": "42", "name": "f"},
        ],
        "tools": TOOLS,
        "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
    }
    out = openai_to_ollama(body, "m", stream=True)
    assert out["messages"][0] == {"role": "user", "content": "what is this", "images": ["QUJD"]}
    assert out["messages"][1]["tool_calls"] == [{"function": {"name": "f", "arguments": {"a": 1}}}]
    assert out["messages"][2] == {"role": "tool", "content": "42", "tool_name": "f"}
    assert out["tools"] == TOOLS and out["format"] == {"type": "object"}


def test_ollama_stream_tool_calls_are_indexed():
    cfg = BackendConfig(name="o", type="ollama", base_url="http://127.0.0.1:1", model="m")
    backend = OllamaBackend(ResolvedBackend("local", cfg, None, True, None))
    lines = [
        orjson.dumps(
            {
                "message": {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"function": {"name": "a", "arguments": {"x": 1}}},
                        {"function": {"name": "b", "arguments": {}}},
                    ],
                },
                "done": False,
            }
        )
        + b"\n",
        ollama_line("", "m", done=True),
    ]

    async def source() -> AsyncIterator[bytes]:
        for line in lines:
            yield line

    async def collect() -> list[bytes]:
        from router_service.backends import UsageStats

        return [e async for e in backend.stream_events(source(), {}, UsageStats())]

    events = asyncio.run(collect())
    datas = [orjson.loads(e[6:]) for e in events if e != b"data: [DONE]\n\n"]
    calls = [c for d in datas for c in d["choices"][0]["delta"].get("tool_calls", [])]
    assert [(c["index"], c["function"]["name"]) for c in calls] == [(0, "a"), (1, "b")]
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"x": 1}
    assert datas[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-1] == b"data: [DONE]\n\n"


def test_sse_parser_framing():
    p = SSEParser()
    assert p.feed(b'data: {"a"') == []
    evs = p.feed(b": 1}\n\n: keep-alive\n\nevent: x\r\ndata: 2\r\n\r\ndata: [DO")
    assert [(e.event, e.data) for e in evs] == [(None, '{"a": 1}'), (None, None), ("x", "2")]
    assert evs[0].raw == b'data: {"a": 1}\n\n'
    assert [e.data for e in p.feed(b"NE]\n\n")] == ["[DONE]"]
    assert [e.data for e in (p.feed(b"data: tail"), p.close())[1]] == ["tail"]


def test_line_parser_framing():
    p = LineParser()
    assert p.feed(b'{"a":') == []
    assert p.feed(b'1}\n\n{"b":2}\n{"c"') == [b'{"a":1}', b'{"b":2}']
    assert p.close() == [b'{"c"']
