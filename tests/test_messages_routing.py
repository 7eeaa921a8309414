"""``POST /v1/messages`` and ``/v1/messages/count_tokens`` routed as chat is, answering in
Anthropic's error envelope: ``x-api-key`` as the client key (401 ``authentication_error``
for a wrong one), bad input (400 ``invalid_request_error``, never a 500), a backend's
client error relayed, the privacy pin over every field (fail closed with local down: 503,
cloud fakes receive nothing), an unknown model (404), the log row and metrics, and the
token-count estimate. Driven by the anthropic SDK and raw HTTP."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_messages_api import CARD, WEATHER, assert_anthropic_error, client, dead_url, post

from fakes.server import Reply
from router_service.errors import ApiError
from router_service.messages_api.protocol import parse_count_tokens, parse_messages
from router_service.messages_api.request import chat_body, scan_fields


# -- errors, auth, privacy, the books ----------------------------------------------------
def test_x_api_key_is_the_client_key(fakes, policy, make_router):
    router = make_router(policy, api_keys=["sk-good"])
    ok = client(router, "sk-good").messages.create(
        model="local", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    assert ok.content[0].text == "hello from local"
    with pytest.raises(anthropic.AuthenticationError) as info:
        client(router, "sk-bad").messages.create(
            model="local", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 401
    assert info.value.body["error"]["type"] == "authentication_error"
    r = post(router, {"model": "local", "messages": []}, headers={"x-api-key": "nope"})
    assert "x-api-key" in assert_anthropic_error(r, 401, "authentication_error")
    r = post(router, {"model": "x"}, path="/v1/messages/count_tokens")
    assert_anthropic_error(r, 401, "authentication_error")
    # the OpenAI endpoints keep OpenAI's envelope, and take x-api-key too
    r = httpx.post(f"{router.base_url}/chat/completions", json={}, headers={"x-api-key": "x"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"model": "auto", "max_tokens": 5, "messages": []}, "messages"),
        ({"model": "auto", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]},
         "max_tokens"),
        ({"model": "auto", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
         "messages[0].role"),
        ({"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {}}]}]}, "messages[0].content[0].type"),
        ({"model": "auto", "max_tokens": 5, "messages": [{"role": "assistant", "content": [
            {"type": "tool_use", "id": "t", "name": "f", "input": "nope"}]}]},
         "messages[0].content[0].input"),
        ({"model": "auto", "max_tokens": 5, "temperature": 1.5,
          "messages": [{"role": "user", "content": "x"}]}, "temperature"),
        ({"model": "auto", "max_tokens": 5, "tools": [{"type": "web_search_20250305",
          "name": "web_search"}], "messages": [{"role": "user", "content": "x"}]},
         "tools[0].type"),
        ({"model": "auto", "max_tokens": 5, "tool_choice": {"type": "tool"}, "tools": [WEATHER],
          "messages": [{"role": "user", "content": "x"}]}, "tool_choice.tool.name"),
        ({"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]},
         "messages[0].content[0].type"),
        ({"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": []}]},
         "messages[0].content"),
    ],
)  # fmt: skip
def test_bad_input_is_a_400_in_anthropics_envelope(fakes, policy, make_router, body, param):
    router = make_router(policy)
    message = assert_anthropic_error(post(router, body), 400, "invalid_request_error")
    assert param in message
    assert all(not f.requests for f in fakes.all())


def test_malformed_body_raises_bad_request_in_the_sdk(fakes, policy, make_router):
    router = make_router(policy)
    with pytest.raises(anthropic.BadRequestError) as info:
        client(router).messages.create(
            model="auto",
            max_tokens=5,
            messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "x"}}]}],
        )
    assert info.value.body["error"]["type"] == "invalid_request_error"
    r = httpx.post(f"{router.url}/v1/messages", content=b"{not json", timeout=30)
    assert_anthropic_error(r, 400, "invalid_request_error")
    r = httpx.post(f"{router.url}/v1/messages", content=b"[1]", timeout=30)
    assert_anthropic_error(r, 400, "invalid_request_error")


def test_upstream_client_error_is_relayed_in_anthropics_envelope(fakes, policy, make_router):
    router = make_router(policy)
    bad = {"error": {"message": "bad tool schema", "type": "invalid_request_error"}}
    fakes.primary.script(Reply.json(bad, status=400))
    r = post(router, {"model": "primary", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"}]})  # fmt: skip
    assert "bad tool schema" in assert_anthropic_error(r, 400, "invalid_request_error")


@pytest.mark.parametrize(
    "where",
    [
        {"system": f"Bill card {CARD}."},
        {"system": [{"type": "text", "text": f"card {CARD}"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": CARD}]}]},
        {
            "messages": [
                {"role": "user", "content": "pay"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "t1", "name": "pay", "input": {"c": CARD}}
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
                },
            ]
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [{"type": "text", "text": CARD}],
                        }
                    ],
                }
            ]
        },
        {"tools": [{**WEATHER, "description": f"card {CARD}"}]},
        {"metadata": {"user_id": "jane.doe@example.com"}},
    ],
)
def test_privacy_pin_covers_every_field_and_fails_closed(fakes, policy, make_router, where):
    for b in policy["tiers"]["local"]["backends"]:
        b["base_url"] = dead_url() + ("/v1" if b["type"] == "openai" else "")
    router = make_router(policy)
    body = {
        "model": "strong",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hello"}],
        **where,
    }
    message = assert_anthropic_error(post(router, body), 503, "overloaded_error")
    assert "sensitive" in message and "not sent to any cloud" in message
    r = post(router, {**body, "stream": True})
    assert_anthropic_error(r, 503, "overloaded_error")
    with pytest.raises(anthropic.InternalServerError):
        client(router).messages.create(**body)
    for f in fakes.cloud():
        assert f.requests == [], f"{f.name} was contacted"


def test_log_row_records_the_messages_endpoint(fakes, policy, make_router):
    router = make_router(policy)
    c = client(router)
    c.messages.create(model="primary", max_tokens=5, messages=[{"role": "user", "content": "a"}])
    with c.messages.stream(
        model="auto", max_tokens=5, messages=[{"role": "user", "content": "b"}]
    ) as stream:
        assert stream.get_final_text()
    post(router, {"model": "auto", "messages": []})
    metrics = httpx.get(f"{router.url}/metrics").text
    assert 'endpoint="/v1/messages",status="200"} 2.0' in metrics
    assert 'endpoint="/v1/messages",status="400"} 1.0' in metrics
    rows = sorted(router.rows(), key=lambda r: r["created_at"])
    assert [r["extra"]["endpoint"] for r in rows] == ["messages"] * 3
    plain, streamed, refused = rows
    assert plain["extra"]["requested_model"] == "primary" and plain["tier"] == "primary"
    assert plain["status"] == 200 and not plain["stream"]
    assert streamed["stream"] and streamed["status"] == 200
    assert refused["status"] == 400


def test_count_tokens_is_an_estimate_without_a_backend_call(fakes, policy, make_router):
    router = make_router(policy)
    c = client(router)
    short = c.messages.count_tokens(model="auto", messages=[{"role": "user", "content": "hi"}])
    text = "The quick brown fox jumps over the lazy dog. " * 40
    long = c.messages.count_tokens(
        model="auto", system="Be brief.", messages=[{"role": "user", "content": text}]
    )
    assert 0 < short.input_tokens < 5
    image = {"type": "base64", "media_type": "image/png", "data": "A" * 40_000}
    with_image = c.messages.count_tokens(
        model="auto",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "hi"}, {"type": "image", "source": image}]}],
    )  # fmt: skip
    assert with_image.input_tokens == short.input_tokens  # images are not counted
    assert len(text) / 6 < long.input_tokens < len(text) / 3
    assert all(not f.requests for f in fakes.all())
    r = post(router, {"model": "auto"}, path="/v1/messages/count_tokens")
    assert_anthropic_error(r, 400, "invalid_request_error")


def test_unknown_route_names_the_messages_endpoint(fakes, policy, make_router):
    router = make_router(policy)
    r = httpx.post(f"{router.url}/v1/message", json={}, timeout=30)
    assert r.status_code == 404 and "POST /v1/messages" in r.json()["error"]["message"]


def test_unknown_model_is_not_found_in_anthropics_envelope(fakes, policy, make_router):
    router = make_router(policy)
    with pytest.raises(anthropic.NotFoundError) as info:
        client(router).messages.create(
            model="claude-nope", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.body["error"]["type"] == "not_found_error"
    assert "claude-nope" in info.value.body["error"]["message"]
    assert all(not f.requests for f in fakes.all())


def test_an_oversized_body_is_request_too_large(fakes, policy, make_router):
    router = make_router(policy, max_body_bytes=4096)
    body = {"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 8000}]}
    assert_anthropic_error(post(router, body), 413, "request_too_large")
    assert all(not f.requests for f in fakes.all())


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_a_block_type_that_is_not_a_string_is_a_400(fakes, policy, make_router, path):
    """Found by schemathesis: an unhashable ``type`` ([]) was looked up in a dict (a 500)."""
    router = make_router(policy)
    for content in ([{"type": []}], [{"type": {"a": 1}}], [[]], [None]):
        body = {"model": "auto", "max_tokens": 5, "messages": [
            {"role": "assistant", "content": content}]}  # fmt: skip
        assert_anthropic_error(post(router, body, path), 400, "invalid_request_error")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
block_types = st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "x"])
blocks = st.fixed_dictionaries({"type": block_types | json_values}, optional={
    "text": json_values, "source": json_values, "id": json_values, "name": json_values,
    "input": json_values, "tool_use_id": json_values, "content": json_values,
})  # fmt: skip
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant"]) | json_values},
        optional={"content": st.text(max_size=5) | st.lists(blocks, max_size=3) | json_values},
    ),
    max_size=3,
)
bodies = st.fixed_dictionaries({"model": st.just("auto") | json_values}, optional={
    "max_tokens": st.integers(min_value=-1, max_value=10) | json_values,
    "messages": messages | json_values, "system": json_values | st.lists(blocks, max_size=2),
    "tools": json_values, "tool_choice": json_values, "metadata": json_values,
    "stop_sequences": json_values, "stream": json_values,
})  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(bodies)
def test_any_json_body_parses_or_is_an_api_error(body: dict) -> None:
    """Never a 500 from the parser or the translation: any body is a valid call (which then
    translates) or an ``ApiError`` (a 4xx in Anthropic's envelope)."""
    for parse in (parse_messages, parse_count_tokens):
        try:
            call = parse(body)
        except ApiError as err:
            assert 400 <= err.status < 500
            continue
        chat = chat_body(call)
        assert chat["messages"] and isinstance(scan_fields(body), dict)
