"""``POST /v1/responses`` routed as chat is: forced tiers and fallback, the privacy pin
over every field of the Responses body (fail closed: cloud fakes receive nothing), the
refusals of a stateless router and bad input (OpenAI's 400 envelope, never a 500, also
under schemathesis with routable models), and the books (log row, metrics)."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from fakes.fuzz import assert_routable_bodies_answered
from fakes.server import Reply

TOOL = {"type": "function", "name": "pay", "parameters": {"type": "object"}, "strict": True}


def client(router: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key="sk-client", max_retries=0)


def post(router: Any, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(f"{router.base_url}/responses", json=body, timeout=30, **kw)


# -- routing, as on chat -----------------------------------------------------------------
def test_forcing_and_fallback_as_on_chat(fakes, policy, make_router):
    router = make_router(policy)
    c = client(router)
    raw = c.responses.with_raw_response.create(
        model="auto", input="hi", extra_headers={"X-Force-Route": "strong"}
    )
    assert raw.headers["x-router-tier"] == "strong" and len(fakes.strong.calls) == 1
    fakes.local.script(Reply.json({"error": {"message": "busy"}}, status=503))
    fakes.ollama.script(Reply(status=500, chunks=[b'{"error":"model crashed"}']))
    raw = c.responses.with_raw_response.create(model="auto", input="hi")  # policy: local
    assert raw.parse().output_text == "hello from primary"
    assert raw.headers["x-router-tier"] == "primary"
    assert raw.headers["x-router-fallback"] == (
        "local/local-llamacpp: http_503; local/local-ollama: http_500"
    )
    # a client error from the backend is the client's: passed through, not retried
    bad = {"error": {"message": "bad tool schema", "type": "invalid_request_error"}}
    fakes.primary.script(Reply.json(bad, status=400))
    with pytest.raises(openai.BadRequestError, match="bad tool schema"):
        c.responses.create(model="primary", input="hi")
    assert len(fakes.strong.calls) == 1 and len(fakes.primary.calls) == 2


CARD = "4111 1111 1111 1111"


def assert_no_cloud_traffic(fakes: Any) -> None:
    for f in fakes.cloud():
        assert f.requests == [], f"{f.name} was contacted"


@pytest.mark.parametrize(
    "where",
    [
        {"instructions": f"Bill card {CARD}.", "input": "hi"},
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": CARD}]}]},
        {
            "input": [
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "pay",
                    "arguments": f'{{"card": "{CARD}"}}',
                }
            ]
        },
        {"input": [{"type": "function_call_output", "call_id": "c1", "output": CARD}]},
        {"input": "hi", "tools": [{**TOOL, "description": f"card {CARD}"}]},
        {"input": "hi", "metadata": {"note": "mail jane.doe@example.com"}},
        {
            "input": "hi",
            "text": {
                "format": {"type": "json_schema", "name": "x", "schema": {"description": CARD}}
            },
        },
        {"input": "hi", "x_vendor_field": {"nested": [f"iban {CARD}"]}},
        # split over two parts of an earlier answer: joined, it is a card on the wire
        {
            "input": [
                {
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": "4111 1111 "},
                        {"type": "output_text", "text": "1111 1111"},
                    ],
                }
            ]
        },
    ],
    ids=[
        "instructions",
        "input_text",
        "arguments",
        "tool_output",
        "tool",
        "metadata",
        "schema",
        "unknown_field",
        "split_parts",
    ],
)
def test_sensitive_data_in_any_field_pins_local(fakes, policy, make_router, where):
    router = make_router(policy)
    r = post(router, {"model": "strong", **where})
    assert r.status_code == 200, r.text
    assert r.headers["x-router-tier"] == "local"
    assert r.headers["x-router-sensitive"] == "true"
    assert_no_cloud_traffic(fakes)


def test_sensitive_instructions_with_local_down_is_503_and_no_cloud_call(
    fakes, policy, make_router
):
    fakes.local.script(Reply.json({"error": {"message": "x"}}, status=500))
    fakes.ollama.script(Reply(status=503, chunks=[b"{}"]))
    router = make_router(policy)
    with pytest.raises(openai.InternalServerError) as exc:
        client(router).responses.create(
            model="strong", instructions=f"Charge {CARD} and prove it is fair.", input="hi"
        )
    assert exc.value.status_code == 503
    err = exc.value.body
    assert isinstance(err, dict) and err["code"] == "sensitive_local_unavailable"
    assert "not sent to any cloud" in err["message"]
    assert_no_cloud_traffic(fakes)


def test_client_flag_in_metadata_pins_local(fakes, policy, make_router):
    router = make_router(policy)
    raw = client(router).responses.with_raw_response.create(
        model="strong", input="Prove the Riemann hypothesis.", metadata={"sensitivity": "high"}
    )
    assert raw.headers["x-router-tier"] == "local"
    assert_no_cloud_traffic(fakes)


# -- refusals and bad input --------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "param", "says"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id", "stateless"),
        ({"conversation": "conv_1"}, "conversation", "stateless"),
        ({"conversation": {"id": "conv_1"}}, "conversation", "stateless"),
        ({"background": True}, "background", "stateless"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt", "stores no prompts"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type", "stateless"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type", "message"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "function tools"),
        ({"input": None}, "input", "required"),
        ({"input": []}, "input", "non-empty"),
        ({"input": 5}, "input", "string"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
            "Field required",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "input[0].content[0].type",
            "input_text",
        ),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role", "user"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0]",
            "Files API",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_url": "u"}]}]},
            "input[0].content[0]",
            "file_data",
        ),
        (
            {"input": [{"type": "function_call_output", "output": "x"}]},
            "input[0].call_id",
            "Field required",
        ),
        ({"tool_choice": "sometimes"}, "tool_choice", "auto"),
        (
            {"text": {"format": {"type": "json_schema", "name": "x"}}},
            "text.format.schema",
            "Field required",
        ),
        ({"max_output_tokens": 0}, "max_output_tokens", "greater than or equal to 1"),
        ({"temperature": 3}, "temperature", "less than or equal to 2"),
        ({"model": ""}, "model", "at least 1 character"),
    ],
)
def test_unsupported_or_invalid_requests_get_a_400_envelope(
    fakes, policy, make_router, extra, param, says
):
    router = make_router(policy)
    r = post(router, {"model": "primary", "input": "hi", **extra})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["param"] == param
    assert says in err["message"], err["message"]
    assert r.headers["x-router-tier"] == "none"  # failed before routing, same header set
    assert not any(f.calls for f in fakes.all())


def test_previous_response_id_through_the_sdk(fakes, policy, make_router):
    router = make_router(policy)
    with pytest.raises(openai.BadRequestError) as exc:
        client(router).responses.create(
            model="primary", input="and then?", previous_response_id="resp_abc"
        )
    body = exc.value.body
    assert isinstance(body, dict) and body["param"] == "previous_response_id"
    assert body["code"] == "unsupported_parameter"
    assert "Resend the whole conversation as input items" in body["message"]


def test_malformed_bodies_get_an_envelope_never_a_500(fakes, policy, make_router):
    router = make_router(policy)
    for content, code in (
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b"\xff\xfe", "invalid_encoding"),
    ):
        r = httpx.post(f"{router.base_url}/responses", content=content, timeout=30)
        assert r.status_code == 400 and r.json()["error"]["code"] == code
    r = post(router, {"model": "no-such-model", "input": "hi"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


# -- the books ---------------------------------------------------------------------------
def test_log_rows_and_metrics_record_the_responses_endpoint(fakes, policy, make_router):
    router = make_router(policy, admin_key="adm", log_redaction="pii")
    c = client(router)
    c.responses.create(model="primary", input="hi", instructions="mail jane.doe@example.com")
    list(c.responses.create(model="local", input="yo", stream=True))
    post(router, {"model": "primary", "input": "x", "previous_response_id": "resp_1"})
    prom = httpx.get(f"{router.url}/metrics", headers={"X-Admin-Key": "adm"}).text
    assert 'router_requests_total{endpoint="/v1/responses",status="200"} 2.0' in prom
    assert 'router_requests_total{endpoint="/v1/responses",status="400"} 1.0' in prom
    plain, streamed, refused = sorted(router.rows(), key=lambda r: r["created_at"])
    assert all(row["extra"]["endpoint"] == "responses" for row in (plain, streamed, refused))
    # sensitive (an email in the instructions): pinned local, and the log is redacted
    assert plain["tier"] == "local" and plain["sensitive"] is True
    assert plain["messages"] == [
        {"role": "system", "content": "mail [REDACTED:email]"},
        {"role": "user", "content": "hi"},
    ]
    assert plain["extra"]["requested_model"] == "primary"
    assert plain["answer"] == "hello from local" and plain["prompt_tokens"] == 7
    assert streamed["stream"] is True and streamed["answer"] == "hello from local"
    assert streamed["status"] == 200 and streamed["ttfb_ms"] is not None
    assert refused["status"] == 400 and "previous_response_id" in refused["error"]


def test_schema_valid_bodies_with_a_routable_model_are_answered(fakes, policy, make_router):
    """The generic fuzz (test_openapi_fuzz) mostly draws unknown model names (404); here every
    schema-valid body names a tier, so it is routed, translated and answered: each must be a
    200 whose body (JSON or every SSE event) matches the published schema."""
    router = make_router(policy)
    assert_routable_bodies_answered(router, "/v1/responses", max_examples=120)
