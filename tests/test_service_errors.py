"""Every kind of bad input gets the OpenAI error envelope with the right status (never a
bare 500 or an HTML page), over real HTTP; the SDK maps them to its exception classes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

GOOD = {"model": "local", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def router(fakes, policy, make_router):
    return make_router(policy, max_body_bytes=64 * 1024, max_n=4)


def assert_envelope(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-router-request-id"]
    if r.request.method == "POST" and r.url.path in ("/v1/chat/completions", "/v1/classify"):
        for name in ("tier", "model", "intent", "confidence", "decision-us", "scorer"):
            assert r.headers[f"x-router-{name}"], name  # "none" when nothing was decided
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    if code is not None:
        assert err["code"] == code, err
    return err


BAD_BODIES: list[tuple[str, bytes, int, str, str | None]] = [
    ("invalid json", b'{"model": "auto", "messages": [', 400, "invalid_json", None),
    ("empty body", b"", 400, "invalid_json", None),
    (
        "invalid utf-8",
        b'{"model":"auto","messages":[{"role":"user","content":"\xff\xfe"}]}',
        400,
        "invalid_encoding",
        None,
    ),
    ("not an object", b"[1, 2, 3]", 400, "invalid_json", None),
    ("no messages", b'{"model": "auto"}', 400, "invalid_value", "messages"),
    ("empty messages", b'{"model": "auto", "messages": []}', 400, "invalid_value", "messages"),
    (
        "bad role",
        b'{"model":"auto","messages":[{"role":"wizard","content":"x"}]}',
        400,
        "invalid_value",
        "messages[0].role",
    ),
    (
        "content wrong type",
        b'{"model":"auto","messages":[{"role":"user","content":42}]}',
        400,
        "invalid_value",
        None,
    ),
    (
        "n huge",
        b'{"model":"auto","n":1000000,"messages":[{"role":"user","content":"x"}]}',
        400,
        "invalid_value",
        "n",
    ),
    (
        "n zero",
        b'{"model":"auto","n":0,"messages":[{"role":"user","content":"x"}]}',
        400,
        "invalid_value",
        "n",
    ),
    (
        "temperature out of range",
        b'{"model":"auto","temperature":7,"messages":[{"role":"user","content":"x"}]}',
        400,
        "invalid_value",
        "temperature",
    ),
    (
        "unknown model",
        b'{"model":"gpt-99","messages":[{"role":"user","content":"x"}]}',
        404,
        "model_not_found",
        "model",
    ),
]


@pytest.mark.parametrize(("name", "raw", "status", "code", "param"), BAD_BODIES)
def test_bad_chat_bodies(fakes, router, name, raw, status, code, param):
    r = httpx.post(
        f"{router.base_url}/chat/completions",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    err = assert_envelope(r, status, code)
    if param is not None:
        assert err["param"] == param
    assert err["type"] == "invalid_request_error"
    assert not any(f.calls for f in fakes.all()), "bad input never reaches a backend"


def test_body_over_limit_by_content_length(fakes, router):
    payload = (
        b'{"model":"auto","messages":[{"role":"user","content":"' + b"a" * (10 << 20) + b'"}]}'
    )
    r = httpx.post(f"{router.base_url}/chat/completions", content=payload, timeout=30)
    err = assert_envelope(r, 413, "request_too_large")
    assert "65536 bytes" in err["message"]


def test_body_over_limit_when_streamed_without_length(fakes, router):
    def chunks() -> Iterator[bytes]:
        yield b'{"model":"auto","messages":[{"role":"user","content":"'
        for _ in range(160):  # 10 MiB in 64 KiB pieces, no Content-Length (chunked)
            yield b"a" * 65536
        yield b'"}]}'

    r = httpx.post(f"{router.base_url}/chat/completions", content=chunks(), timeout=30)
    err = assert_envelope(r, 413, "request_too_large")
    assert "65536 bytes" in err["message"]


def test_bad_force_header_unknown_route_and_method(fakes, router):
    r = httpx.post(
        f"{router.base_url}/chat/completions", json=GOOD, headers={"X-Force-Route": "turbo"}
    )
    assert assert_envelope(r, 400, "invalid_value")["param"] == "X-Force-Route"
    assert_envelope(httpx.get(f"{router.base_url}/nope"), 404, "not_found")
    assert_envelope(httpx.get(f"{router.base_url}/chat/completions"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "body",
    [{"prompt": "x", "messages": [{"role": "user", "content": "y"}]}, {}, {"prompt": 3}],
)
def test_bad_classify_bodies(fakes, router, body):
    assert_envelope(httpx.post(f"{router.base_url}/classify", json=body), 400, "invalid_value")


def test_sdk_exception_classes(fakes, router):
    c = openai.OpenAI(base_url=router.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="gpt-99", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}], n=99)
    assert "at most 4" in exc.value.message


def test_decision_headers_on_routed_errors(fakes, policy, make_router):
    policy["tiers"]["local"]["backends"] = []
    router = make_router(policy)
    r = httpx.post(f"{router.base_url}/chat/completions", json=GOOD)
    assert_envelope(r, 503, "no_backend_available")
    assert r.headers["x-router-tier"] == "local"
    assert r.headers["x-router-intent"]


def test_capacity_limit_gives_429(fakes, policy, make_router):
    from fakes.llm import openai_chunk, sse
    from fakes.server import Reply

    fakes.local.script(
        Reply(
            chunks=[sse(openai_chunk({"content": "x"}))],
            content_type="text/event-stream",
            hang=True,
        )
    )
    router = make_router(policy, max_inflight=1)
    body = {**GOOD, "stream": True}
    with httpx.stream("POST", f"{router.base_url}/chat/completions", json=body) as open_stream:
        chunks = open_stream.iter_bytes()  # keep a reference: dropping it closes the stream
        next(chunks)  # one request in flight
        r = httpx.post(f"{router.base_url}/chat/completions", json=GOOD)
        assert_envelope(r, 429, "router_overloaded")
    assert fakes.local.disconnected.wait(5)
    ok = httpx.post(f"{router.base_url}/chat/completions", json=GOOD)
    assert ok.status_code == 200
