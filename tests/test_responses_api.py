"""``POST /v1/responses`` over real HTTP, driven by the official openai SDK
(``client.responses.create``, ``stream=True``, the ``responses.stream`` helper, the async
client, raw responses for the headers) against the fake chat upstreams: what each backend
receives (the chat translation), what the client gets back (the Responses object and its
typed events), the function-tool round trip and mid-stream failures. Routing, privacy,
refusals and the books: ``test_responses_routing``."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai

from fakes.headers import ROUTER_HEADERS
from fakes.llm import hanging_stream, openai_chunk, openai_completion, sse
from fakes.server import Reply

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": True,
}
ARGS = '{"city": "Paris"}'


def client(router: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key="sk-client", max_retries=0)


def post(router: Any, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(f"{router.base_url}/responses", json=body, timeout=30, **kw)


def tool_call_completion(call_id: str = "call_abc", text: str | None = None) -> dict[str, Any]:
    done = openai_completion(text or "", "primary-model")
    message = done["choices"][0]["message"]
    message["content"] = text
    message["tool_calls"] = [
        {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": ARGS}}
    ]
    done["choices"][0]["finish_reason"] = "tool_calls"
    return done


def tool_call_stream(call_id: str = "call_abc") -> list[bytes]:
    first = {"index": 0, "id": call_id, "type": "function"}
    first["function"] = {"name": "get_weather", "arguments": ""}
    pieces = ['{"city"', ': "Par', 'is"}']
    return [
        sse(openai_chunk({"role": "assistant", "content": None, "tool_calls": [first]})),
        *(
            sse(openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}))
            for p in pieces
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


# -- non-streaming -----------------------------------------------------------------------
def test_string_input_answers_a_response_object_with_router_headers(fakes, policy, make_router):
    router = make_router(policy)
    raw = client(router).responses.with_raw_response.create(model="local", input="hi")
    response = raw.parse()
    assert response.output_text == "hello from local"
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.incomplete_details is None
    (item,) = response.output
    assert item.type == "message" and item.role == "assistant" and item.id.startswith("msg_")
    assert item.content[0].type == "output_text"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (7, 3)
    assert response.usage.total_tokens == 10
    for name in ROUTER_HEADERS:
        assert raw.headers.get(name), name
    assert raw.headers["x-router-tier"] == "local"
    assert raw.headers["x-router-model"] == "local-model"
    sent = fakes.local.calls[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json() == {"model": "local-model", "messages": [{"role": "user", "content": "hi"}]}


def test_items_with_instructions_become_chat_messages(fakes, policy, make_router):
    router = make_router(policy)
    response = client(router).responses.create(
        model="primary",
        instructions="Answer in French.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
            {
                "type": "message",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "Bon", "annotations": []},
                    {"type": "output_text", "text": "jour", "annotations": []},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {
                        "type": "input_image",
                        "image_url": "https://example.com/cat.png",
                        "detail": "low",
                    },
                ],
            },
            {"role": "developer", "content": "Be brief."},
        ],
        temperature=0.2,
        top_p=0.9,
        user="u-1",
        metadata={"team": "docs"},
        store=True,
    )
    assert response.output_text == "hello from primary"
    assert response.instructions == "Answer in French."
    assert response.metadata == {"team": "docs"}
    sent = fakes.primary.calls[-1].json()
    assert sent["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Bonjour"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
                },
            ],
        },
        {"role": "developer", "content": "Be brief."},
    ]
    assert (sent["temperature"], sent["top_p"], sent["user"]) == (0.2, 0.9, "u-1")
    # Responses-only fields are consumed, not forwarded; nothing was stored
    for name in ("instructions", "input", "store", "metadata"):
        assert name not in sent
    raw = post(router, {"model": "primary", "input": "x", "store": True}).json()
    assert raw["store"] is False


def test_max_output_tokens_reaches_each_backend_as_the_cap_it_reads(fakes, policy, make_router):
    policy["tiers"]["local"]["backends"][0]["token_limit_param"] = "max_tokens"
    router = make_router(policy)
    c = client(router)
    c.responses.create(model="local", input="hi", max_output_tokens=5)
    assert fakes.local.calls[-1].json()["max_tokens"] == 5
    assert "max_completion_tokens" not in fakes.local.calls[-1].json()
    c.responses.create(model="primary", input="hi", max_output_tokens=7)
    assert fakes.primary.calls[-1].json()["max_completion_tokens"] == 7
    c.responses.create(model="llama-fake", input="hi", max_output_tokens=9)  # Ollama
    assert fakes.ollama.calls[-1].json()["options"]["num_predict"] == 9
    c.responses.create(model="claude-fake", input="hi", max_output_tokens=11)  # Anthropic
    assert fakes.anthropic.calls[-1].json()["max_tokens"] == 11
    # the backend stopped at the cap -> an incomplete response, as OpenAI reports it
    capped = openai_completion("hel", "primary-model")
    capped["choices"][0]["finish_reason"] = "length"
    fakes.primary.script(Reply.json(capped))
    response = c.responses.create(model="primary", input="hi", max_output_tokens=1)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete" and response.output_text == "hel"
    assert response.max_output_tokens == 1


def test_other_parameters_and_unknown_fields(fakes, policy, make_router):
    router = make_router(policy)
    client(router).responses.create(
        model="primary",
        input="hi",
        reasoning={"effort": "low"},
        text={"verbosity": "low"},
        truncation="auto",
        include=["message.output_text.logprobs"],
        extra_body={"seed": 7, "top_k": 40, "n": 3},
    )
    sent = fakes.primary.calls[-1].json()
    assert sent["reasoning_effort"] == "low" and sent["verbosity"] == "low"
    assert sent["seed"] == 7 and sent["top_k"] == 40  # unknown fields pass, as on chat
    for name in ("reasoning", "text", "truncation", "include", "n"):  # Responses-only, or
        assert name not in sent, name  # one that would change what is translated back


def test_text_format_reaches_upstream_as_response_format(fakes, policy, make_router):
    router = make_router(policy)
    c = client(router)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fmt = {"type": "json_schema", "name": "count", "schema": schema, "strict": True}
    response = c.responses.create(model="primary", input="count", text={"format": fmt})
    assert fakes.primary.calls[-1].json()["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "count", "schema": schema, "strict": True},
    }
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_schema"
    c.responses.create(model="primary", input="x", text={"format": {"type": "json_object"}})
    assert fakes.primary.calls[-1].json()["response_format"] == {"type": "json_object"}
    c.responses.create(model="primary", input="x", text={"format": {"type": "text"}})
    assert "response_format" not in fakes.primary.calls[-1].json()


# -- tools -------------------------------------------------------------------------------
def test_function_tool_round_trip(fakes, policy, make_router):
    router = make_router(policy)
    c = client(router)
    fakes.primary.script(Reply.json(tool_call_completion()))
    question = {"role": "user", "content": "Weather in Paris?"}
    first = c.responses.create(
        model="primary",
        input=[question],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
    )
    sent = fakes.primary.calls[-1].json()
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": WEATHER_TOOL["description"],
                "parameters": WEATHER_TOOL["parameters"],
                "strict": True,
            },
        }
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    (call,) = first.output
    assert call.type == "function_call" and call.id is not None and call.id.startswith("fc_")
    assert (call.call_id, call.name, call.arguments) == ("call_abc", "get_weather", ARGS)
    assert first.output_text == "" and first.status == "completed"
    assert first.tools[0].type == "function" and first.tools[0].name == "get_weather"
    # the client runs the tool and sends the history back with the result
    second = c.responses.create(
        model="primary",
        input=[
            question,
            *first.output,
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'},
        ],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == "hello from primary"
    messages = fakes.primary.calls[-1].json()["messages"]
    assert messages == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ARGS},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": '{"temp": 21}'},
    ]


def test_text_and_tool_calls_together_and_tool_choice_without_tools(fakes, policy, make_router):
    router = make_router(policy)
    c = client(router)
    fakes.primary.script(Reply.json(tool_call_completion(text="Let me check.")))
    response = c.responses.create(model="primary", input="Weather?", tools=[WEATHER_TOOL])
    assert [item.type for item in response.output] == ["message", "function_call"]
    assert response.output_text == "Let me check."
    # the answer's text and its call are one assistant turn on the way back
    c.responses.create(
        model="primary",
        input=[
            *response.output,
            {
                "type": "function_call_output",
                "call_id": "call_abc",
                "output": [{"type": "input_text", "text": "21C"}],
            },
        ],
        tool_choice="auto",
    )
    sent = fakes.primary.calls[-1].json()
    assert sent["messages"][0]["content"] == "Let me check."
    assert sent["messages"][0]["tool_calls"][0]["id"] == "call_abc"
    assert sent["messages"][1] == {"role": "tool", "tool_call_id": "call_abc", "content": "21C"}
    assert "tool_choice" not in sent and "tools" not in sent  # chat refuses one without other


# -- streaming ---------------------------------------------------------------------------
EXPECTED_TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def test_streaming_events_in_order_and_deltas_make_the_text(fakes, policy, make_router):
    router = make_router(policy)
    with client(router).responses.with_streaming_response.create(
        model="local", input="hi", stream=True
    ) as raw:
        assert raw.headers["x-router-tier"] == "local"
        assert raw.headers["content-type"].startswith("text/event-stream")
        events = list(raw.parse())
    assert [e.type for e in events] == EXPECTED_TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "hello from local"
    done = events[-1].response
    assert done.status == "completed" and done.output_text == deltas
    assert events[0].response.id == done.id and events[0].response.status == "in_progress"
    item_ids = {e.item_id for e in events if hasattr(e, "item_id")}
    assert item_ids == {done.output[0].id}
    sent = fakes.local.calls[-1].json()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_stream_helper_and_translating_backends(fakes, policy, make_router):
    router = make_router(policy)
    c = client(router)
    with c.responses.stream(model="local", input="hi") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == "hello from local"
    # Ollama's NDJSON and Anthropic's events, translated to chat, then to Responses
    for model, text in (("llama-fake", "hello from ollama"), ("claude-fake", "hello from claude")):
        with c.responses.stream(model=model, input="hi") as stream:
            final = stream.get_final_response()
        assert final.output_text == text, model
        assert final.usage is not None and final.usage.output_tokens > 0


def test_streamed_tool_call_events(fakes, policy, make_router):
    router = make_router(policy)
    fakes.primary.script(Reply(chunks=tool_call_stream(), content_type="text/event-stream"))
    c = client(router)
    with c.responses.stream(model="primary", input="Weather?", tools=[WEATHER_TOOL]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert done.arguments == '{"city": "Paris"}'
    (call,) = final.output
    assert call.type == "function_call"
    assert (call.call_id, call.name, call.arguments) == ("call_abc", "get_weather", ARGS)
    assert final.usage is not None and final.usage.input_tokens == 12


def test_async_client_streams_too(fakes, policy, make_router):
    router = make_router(policy)

    async def run() -> tuple[str, list[str]]:
        c = openai.AsyncOpenAI(base_url=router.base_url, api_key="x", max_retries=0)
        plain = await c.responses.create(model="strong", input="hi")
        stream = await c.responses.create(model="strong", input="hi", stream=True)
        kinds = [event.type async for event in stream]
        await c.close()
        return plain.output_text, kinds

    text, kinds = asyncio.run(run())
    assert text == "hello from strong" and kinds == EXPECTED_TEXT_EVENTS


def test_mid_stream_failure_ends_with_error_and_response_failed(fakes, policy, make_router):
    chunks = [sse(openai_chunk({"content": "par"})), b"data: {broken\n\n"]
    fakes.local.script(Reply(chunks=chunks, content_type="text/event-stream"))
    router = make_router(policy)
    events = list(client(router).responses.create(model="local", input="hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-2:] == ["error", "response.failed"]
    assert "malformed SSE" in events[-2].message and events[-2].code == "protocol_error"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None
    assert "malformed SSE" in failed.error.message
    assert not fakes.ollama.calls, "no fallback once bytes reached the client"
    (row,) = router.rows()
    assert row["status"] == 502 and "mid-stream" in row["error"]


def test_log_wait_commits_the_row_before_the_final_event(fakes, policy, make_router):
    router = make_router(policy, log_wait=True)
    client(router).responses.create(model="local", input="hi")
    assert router.state.log.count() == 1  # the whole body arrived: its row is committed
    body = {"model": "local", "input": "hi", "stream": True}
    seen: list[str] = []
    with httpx.stream("POST", f"{router.base_url}/responses", json=body, timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("event: "):
                seen.append(line[len("event: ") :])
                if seen[-1] == "response.completed":  # held back until the row committed
                    assert router.state.log.count() == 2
    assert seen == EXPECTED_TEXT_EVENTS


def test_client_disconnect_cancels_the_upstream_request(fakes, policy, make_router):
    fakes.local.script(hanging_stream())
    router = make_router(policy)
    body = {"model": "local", "input": "hi", "stream": True}
    with httpx.stream("POST", f"{router.base_url}/responses", json=body, timeout=30) as r:
        chunks, seen = r.iter_bytes(), b""
        while b"response.output_text.delta" not in seen:
            seen += next(chunks)
        assert not fakes.local.disconnected.is_set(), "still streaming while the client reads"
    assert fakes.local.disconnected.wait(5), "upstream request was not cancelled"
    (row,) = router.rows()
    assert row["status"] == 499 and "disconnected" in row["error"]


def test_an_error_event_from_the_backend_fails_the_response(fakes, policy, make_router):
    error = {"error": {"message": "context length exceeded", "type": "server_error"}}
    chunks = [sse(openai_chunk({"content": "par"})), sse(error), b"data: [DONE]\n\n"]
    fakes.local.script(Reply(chunks=chunks, content_type="text/event-stream"))
    router = make_router(policy)
    events = list(client(router).responses.create(model="local", input="hi", stream=True))
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert "context length exceeded" in events[-2].message
    assert events[-1].response.output == []  # the open message never completed
    (row,) = router.rows()
    assert row["status"] == 502 and "context length exceeded" in row["error"]
