"""``POST /v1/messages`` over real HTTP, driven by the official anthropic SDK
(``client.messages.create``, ``stream=True``, the ``messages.stream`` helper, raw responses
for the headers) against the fake chat upstreams: what each backend receives (the chat
translation, also through the Ollama backend), what the client gets back
(Anthropic's message and its events), the tool-use round trip, stop reasons, mid-stream
failures and disconnects. Auth, errors, privacy, the books: ``test_messages_routing``;
Anthropic backends (untranslated): ``test_messages_native``."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from fakes.llm import hanging_stream, openai_chunk, openai_completion, sse
from fakes.process import free_port
from fakes.server import Reply

ARGS = '{"city": "Paris"}'
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CARD = "4111 1111 1111 1111"


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def client(router: Any, key: str = "sk-client") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=router.url, api_key=key, max_retries=0)


def post(router: Any, body: Any, path: str = "/v1/messages", **kw: Any) -> httpx.Response:
    return httpx.post(f"{router.url}{path}", json=body, timeout=30, **kw)


def tool_call_completion(text: str | None = None, finish: str = "tool_calls") -> dict[str, Any]:
    done = openai_completion(text or "", "primary-model")
    message = done["choices"][0]["message"]
    message["content"] = text
    message["tool_calls"] = [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ARGS}}
    ]
    done["choices"][0]["finish_reason"] = finish
    return done


def assert_anthropic_error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == kind, body
    assert set(body) == {"type", "error"}
    return str(body["error"]["message"])


# -- non-streaming -----------------------------------------------------------------------
def test_plain_text_message_with_router_headers(fakes, policy, make_router):
    router = make_router(policy)
    raw = client(router).messages.with_raw_response.create(
        model="local",
        max_tokens=64,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-version": "2023-06-01"},
    )
    message = raw.parse()
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.role == "assistant" and message.model == "local-model"
    assert [(b.type, b.text) for b in message.content] == [("text", "hello from local")]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 3)
    assert raw.headers["x-router-tier"] == "local"
    assert raw.headers["x-router-model"] == "local-model"
    for name in ("x-router-intent", "x-router-request-id", "x-router-decision-us"):
        assert raw.headers.get(name), name
    sent = fakes.local.calls[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json() == {
        "model": "local-model",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 64,
    }


def test_system_multi_turn_and_parameters_reach_the_upstream(fakes, policy, make_router):
    router = make_router(policy)
    message = client(router).messages.create(
        model="primary",
        max_tokens=5,
        system=[{"type": "text", "text": "Answer in French."}, {"type": "text", "text": "Brief."}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
            {"role": "assistant", "content": "Bonjour"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/c.png"}},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                    },
                ],
            },
        ],
        stop_sequences=["END", "STOP"],
        metadata={"user_id": "u-1"},
        # this SDK version has no sampling arguments; older ones and raw HTTP send them
        extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 40},
    )
    assert message.content[0].text == "hello from primary"
    assert fakes.primary.calls[-1].json() == {
        "model": "primary-model",
        "messages": [
            {"role": "system", "content": "Answer in French.\n\nBrief."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Bonjour"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x.test/c.png"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                ],
            },
        ],
        "max_completion_tokens": 5,  # max_tokens -> the chat cap; top_k dropped
        "stop": ["END", "STOP"],
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-1",
    }


def test_tool_use_round_trip(fakes, policy, make_router):
    router = make_router(policy)
    c = client(router)
    fakes.primary.script(Reply.json(tool_call_completion("Let me check.")))
    first = c.messages.create(
        model="primary",
        max_tokens=100,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    )
    assert first.stop_reason == "tool_use"
    text, use = first.content
    assert text.type == "text" and text.text == "Let me check."
    assert use.type == "tool_use" and use.id == "call_1" and use.name == "get_weather"
    assert use.input == {"city": "Paris"}
    sent = fakes.primary.calls[-1].json()
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    second = c.messages.create(
        model="primary",
        max_tokens=100,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
        tools=[WEATHER],
        tool_choice={"type": "any"},
    )
    assert second.content[0].text == "hello from primary"
    sent = fakes.primary.calls[-1].json()
    assert sent["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert sent["tool_choice"] == "required" and "parallel_tool_calls" not in sent


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [("length", "max_tokens"), ("stop", "end_turn"), ("content_filter", "refusal")],
)
def test_stop_reason_mapping(fakes, policy, make_router, finish, stop_reason):
    router = make_router(policy)
    capped = openai_completion("partial", "primary-model")
    capped["choices"][0]["finish_reason"] = finish
    fakes.primary.script(Reply.json(capped))
    message = client(router).messages.create(
        model="primary", max_tokens=3, messages=[{"role": "user", "content": "long story"}]
    )
    assert message.stop_reason == stop_reason


# -- streaming ---------------------------------------------------------------------------
def test_stream_event_order_and_text(fakes, policy, make_router):
    router = make_router(policy)
    with client(router).messages.create(
        model="primary",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
    ) as stream:
        events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}  # the ping is skipped by the SDK
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == "hello from primary"
    delta = events[-2]
    assert delta.type == "message_delta" and delta.delta.stop_reason == "end_turn"
    sent = fakes.primary.calls[-1].json()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    raw = post(router, {"model": "primary", "max_tokens": 5, "stream": True, "messages": [
        {"role": "user", "content": "hi"}]})  # fmt: skip
    names = [line[7:] for line in raw.text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-1] == "message_stop" and raw.headers["x-router-tier"] == "primary"


def test_stream_helper_tool_use_with_input_json_deltas(fakes, policy, make_router):
    router = make_router(policy)
    first = {"index": 0, "id": "call_9", "type": "function"}
    first["function"] = {"name": "get_weather", "arguments": ""}
    chunks = [
        sse(openai_chunk({"role": "assistant", "content": "Checking."})),
        sse(openai_chunk({"tool_calls": [first]})),
        *(
            sse(openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}))
            for p in ('{"city"', ': "Par', 'is"}')
        ),
        sse(openai_chunk({}, finish="tool_calls")),
        sse(
            {
                **openai_chunk({}),
                "choices": [],
                "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
            }
        ),
        b"data: [DONE]\n\n",
    ]
    fakes.primary.script(Reply(chunks=chunks, content_type="text/event-stream"))
    with client(router).messages.stream(
        model="primary",
        max_tokens=50,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert "input_json" in kinds and kinds.count("content_block_stop") == 2
    assert final.stop_reason == "tool_use"
    text, use = final.content
    assert text.type == "text" and text.text == "Checking."
    assert use.type == "tool_use" and use.id == "call_9" and use.input == {"city": "Paris"}
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 6)


def test_mid_stream_failure_ends_with_an_error_event(fakes, policy, make_router):
    router = make_router(policy)
    chunks = [
        sse(openai_chunk({"role": "assistant", "content": "Par"})),
        sse({"error": {"message": "model crashed", "type": "server_error"}}),
    ]
    fakes.primary.script(Reply(chunks=chunks, content_type="text/event-stream"))
    c = client(router)
    messages = [{"role": "user", "content": "hi"}]
    with (
        pytest.raises(anthropic.APIStatusError, match="model crashed"),
        c.messages.stream(model="primary", max_tokens=50, messages=messages) as stream,
    ):
        for _ in stream:
            pass
    (row,) = router.rows()
    assert row["status"] == 502 and "model crashed" in row["error"]


def test_ollama_backend_through_the_chat_translation(fakes, policy, make_router):
    """Ollama (the local tier's second backend) is reached through the chat translation,
    streamed; Anthropic backends get the client's request untranslated
    (``test_messages_native``)."""
    router = make_router(policy)
    fakes.local.script(Reply.json({"error": {"message": "down"}}, status=503))
    with client(router).messages.stream(
        model="local", max_tokens=30, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert stream.get_final_text() == "hello from ollama"
    assert fakes.ollama.calls[-1].json()["options"]["num_predict"] == 30


def test_tool_result_errors_images_and_thinking_translate(fakes, policy, make_router):
    router = make_router(policy)
    client(router).messages.create(
        model="primary",
        max_tokens=20,
        messages=[
            {"role": "user", "content": "Screenshot the page."},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "use the tool", "signature": "sig"},
                    {"type": "tool_use", "id": "t1", "name": "shot", "input": {}},
                    {"type": "tool_use", "id": "t2", "name": "shot", "input": {"full": True}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [
                            {"type": "text", "text": "taken"},
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "AA",
                                },
                            },
                        ],
                    },
                    {"type": "tool_result", "tool_use_id": "t2", "content": "no", "is_error": True},
                ],
            },
        ],
    )
    assert fakes.primary.calls[-1].json()["messages"] == [
        {"role": "user", "content": "Screenshot the page."},
        {
            "role": "assistant",
            "content": None,  # the thinking block is not forwarded
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "shot", "arguments": "{}"}},
                {
                    "id": "t2",
                    "type": "function",
                    "function": {"name": "shot", "arguments": '{"full":true}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "taken"},
        {"role": "tool", "tool_call_id": "t2", "content": "Error: no"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}],
        },
    ]


def test_client_disconnect_mid_stream_cancels_the_upstream(fakes, policy, make_router):
    fakes.local.script(hanging_stream())
    router = make_router(policy)
    body = {"model": "local", "max_tokens": 9, "stream": True, "messages": [
        {"role": "user", "content": "hi"}]}  # fmt: skip
    with httpx.stream("POST", f"{router.url}/v1/messages", json=body, timeout=30) as r:
        chunks, seen = r.iter_bytes(), b""
        while b"text_delta" not in seen:
            seen += next(chunks)
        assert not fakes.local.disconnected.is_set(), "still streaming while the client reads"
    assert fakes.local.disconnected.wait(5), "upstream request was not cancelled"
    (row,) = router.rows()
    assert row["status"] == 499 and row["extra"]["endpoint"] == "messages"
