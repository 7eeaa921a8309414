"""The legacy ``POST /v1/completions`` over real HTTP with the openai SDK
(``client.completions.create``, streaming too): the prompt reaches the chat backend as one
user message, the answer comes back as a ``text_completion``; routed, pinned and logged as
chat is; what a chat backend cannot do is refused with a 400 naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from fakes.fuzz import assert_routable_bodies_answered
from fakes.llm import openai_chunk, sse
from fakes.server import Reply


def client(router: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key="x", max_retries=0)


def test_prompt_is_one_user_message_and_the_answer_a_text_completion(fakes, policy, make_router):
    policy["tiers"]["local"]["backends"][0]["token_limit_param"] = "max_tokens"
    router = make_router(policy)
    raw = client(router).completions.with_raw_response.create(
        model="local", prompt="Say hi", max_tokens=5, temperature=0.1, stop=["\n"], seed=3
    )
    completion = raw.parse()
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    (choice,) = completion.choices
    assert choice.text == "hello from local" and choice.finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 10
    assert raw.headers["x-router-tier"] == "local" and raw.headers["x-router-model"]
    assert fakes.local.calls[-1].json() == {
        "model": "local-model",
        "messages": [{"role": "user", "content": "Say hi"}],
        "max_tokens": 5,
        "temperature": 0.1,
        "stop": ["\n"],
        "seed": 3,
    }
    # a one-string list is the same prompt; Ollama gets the cap as num_predict
    client(router).completions.create(model="llama-fake", prompt=["Say hi"], max_tokens=4)
    sent = fakes.ollama.calls[-1].json()
    assert sent["messages"] == [{"role": "user", "content": "Say hi"}]
    assert sent["options"]["num_predict"] == 4


def test_streaming_text_chunks_end_in_done(fakes, policy, make_router):
    router = make_router(policy)
    chunks = list(client(router).completions.create(model="strong", prompt="hi", stream=True))
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "hello from strong"
    assert chunks[-1].choices[0].finish_reason == "stop"
    body = {"model": "claude-fake", "prompt": "hi", "stream": True}
    with httpx.stream("POST", f"{router.base_url}/completions", json=body, timeout=30) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert '"object":"text_completion"' in lines[0]


def test_mid_stream_failure_is_an_error_event(fakes, policy, make_router):
    chunks = [sse(openai_chunk({"content": "par"})), b"data: {broken\n\n"]
    fakes.local.script(Reply(chunks=chunks, content_type="text/event-stream"))
    router = make_router(policy)
    with pytest.raises(openai.APIError, match="malformed SSE"):
        for _ in client(router).completions.create(model="local", prompt="hi", stream=True):
            pass
    (row,) = router.rows()
    assert row["status"] == 502 and row["extra"]["endpoint"] == "completions"


def test_sensitive_prompt_is_pinned_local(fakes, policy, make_router):
    router = make_router(policy)
    raw = client(router).completions.with_raw_response.create(
        model="strong", prompt="Charge 4111 1111 1111 1111 and explain the fee."
    )
    assert raw.headers["x-router-tier"] == "local"
    assert raw.headers["x-router-sensitive"] == "true"
    for fake in fakes.cloud():
        assert fake.requests == []


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"echo": True}, "echo"),
        ({"suffix": "end"}, "suffix"),
        ({"logprobs": 2}, "logprobs"),
        ({"best_of": 3}, "best_of"),
        ({"n": 99}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"prompt": None}, "prompt"),
    ],
)
def test_what_chat_cannot_do_is_refused(fakes, policy, make_router, extra, param):
    router = make_router(policy)
    r = httpx.post(
        f"{router.base_url}/completions", json={"model": "local", "prompt": "hi", **extra}
    )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error"
    assert not any(f.calls for f in fakes.all())


def test_the_log_row_says_completions(fakes, policy, make_router):
    router = make_router(policy)
    client(router).completions.create(model="primary", prompt="hi")
    (row,) = router.rows()
    assert row["extra"]["endpoint"] == "completions" and row["status"] == 200
    assert row["messages"] == [{"role": "user", "content": "hi"}]
    assert row["answer"] == "hello from primary" and row["backend"] == "primary-openai"


def test_schema_valid_bodies_with_a_routable_model_are_answered(fakes, policy, make_router):
    """As for /v1/responses: every schema-valid body naming a tier is a 200 (JSON or SSE)
    that matches the published schema (the generic fuzz mostly draws unknown models)."""
    router = make_router(policy)
    assert_routable_bodies_answered(router, "/v1/completions", max_examples=80)
