"""Privacy pinning (fail closed): sensitive requests are served by the local tier or
refused with 503; the cloud fake servers receive zero bytes either way."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import openai
import pytest

EMAIL = "Please reply to jane.doe@example.com about the Prove-this-theorem contract."
CARD = "Charge my card 4111 1111 1111 1111 and prove rigorously that the fee is fair."


def dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def assert_no_cloud_traffic(fakes: Any) -> None:
    for f in fakes.cloud():
        assert f.requests == [], f"{f.name} was contacted"
        assert f.bytes_received == 0


def chat(router: Any, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return httpx.post(f"{router.base_url}/chat/completions", json=body, timeout=30, **kw)


@pytest.mark.parametrize("text", [EMAIL, CARD])
@pytest.mark.parametrize("model", ["auto", "strong", "primary-model"])
def test_sensitive_content_is_pinned_local(fakes, policy, make_router, text, model):
    router = make_router(policy)
    r = chat(router, {"model": model, "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200
    assert r.headers["x-router-tier"] == "local"
    assert r.headers["x-router-sensitive"] == "true"
    assert len(fakes.local.calls) == 1
    assert_no_cloud_traffic(fakes)


def test_client_flags_pin_local(fakes, policy, make_router):
    router = make_router(policy)
    msg = [{"role": "user", "content": "Prove the Riemann hypothesis in full rigour."}]
    r = chat(router, {"model": "strong", "messages": msg, "metadata": {"sensitivity": "high"}})
    assert r.headers["x-router-tier"] == "local"
    r = chat(router, {"model": "strong", "messages": msg}, headers={"X-Router-Sensitive": "true"})
    assert r.headers["x-router-tier"] == "local"
    c = openai.OpenAI(base_url=router.base_url, api_key="x", max_retries=0)
    raw = c.chat.completions.with_raw_response.create(
        model="auto", messages=msg, extra_headers={"X-Router-Sensitive": "1"}
    )
    assert raw.headers["x-router-tier"] == "local"
    assert_no_cloud_traffic(fakes)
    rows = router.rows()
    assert all(row["sensitive"] for row in rows)
    assert all("client_flag" in row["extra"]["sensitivity_kinds"] for row in rows)


def test_local_down_gives_503_and_never_touches_cloud(fakes, policy, make_router):
    for b in policy["tiers"]["local"]["backends"]:
        b["base_url"] = dead_url() + ("/v1" if b["type"] == "openai" else "")
    router = make_router(policy)
    body = {"model": "auto", "messages": [{"role": "user", "content": EMAIL}]}
    r = chat(router, body)
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["code"] == "sensitive_local_unavailable"
    assert "sensitive (email)" in err["message"] and "not sent to any cloud" in err["message"]
    r = chat(router, {**body, "stream": True})
    assert r.status_code == 503
    c = openai.OpenAI(base_url=router.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(
            model="strong",
            messages=[{"role": "user", "content": "hello"}],
            extra_headers={"X-Router-Sensitive": "true"},
        )
    assert_no_cloud_traffic(fakes)
    # the same router still uses the cloud for requests that are not sensitive
    ok = chat(router, {"model": "strong", "messages": [{"role": "user", "content": "hello"}]})
    assert ok.status_code == 200 and len(fakes.strong.calls) == 1


def test_messages_api_card_in_system_with_local_down_fails_closed(fakes, policy, make_router):
    """The Anthropic Messages API under the same rule: 503 in Anthropic's envelope, no cloud
    call, whether the secret is in ``system``, a thinking block or an image URL."""
    for b in policy["tiers"]["local"]["backends"]:
        b["base_url"] = dead_url() + ("/v1" if b["type"] == "openai" else "")
    router = make_router(policy)
    hi = {"role": "user", "content": "hello"}
    bodies = [
        {"system": CARD, "messages": [hi]},
        {"messages": [hi, {"role": "assistant", "content": [
            {"type": "thinking", "thinking": EMAIL, "signature": "s"}]}, hi]},
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {
            "type": "url", "url": "https://x.test/?to=jane.doe@example.com"}}]}]},
    ]  # fmt: skip
    for body in bodies:
        for stream in (False, True):
            r = httpx.post(
                f"{router.url}/v1/messages",
                json={"model": "strong", "max_tokens": 16, "stream": stream, **body},
                timeout=30,
            )
            assert r.status_code == 503, r.text
            err = r.json()
            assert err["type"] == "error" and err["error"]["type"] == "overloaded_error"
            assert "not sent to any cloud" in err["error"]["message"]
            assert r.headers["x-router-sensitive"] == "true"
    assert_no_cloud_traffic(fakes)
    rows = router.rows()
    assert len(rows) == 6 and all(row["extra"]["endpoint"] == "messages" for row in rows)


def test_local_tier_failing_midway_does_not_fall_back_to_cloud(fakes, policy, make_router):
    from fakes.server import Reply

    fakes.local.script(Reply.json({"error": {"message": "x"}}, status=500))
    fakes.ollama.script(Reply(status=503, chunks=[b"{}"]))
    router = make_router(policy)
    r = chat(router, {"model": "auto", "messages": [{"role": "user", "content": CARD}]})
    assert r.status_code == 503
    assert r.headers["x-router-fallback"] == (
        "local/local-llamacpp: http_500; local/local-ollama: http_503"
    )
    assert_no_cloud_traffic(fakes)


def test_classify_reports_sensitivity_and_log_is_redacted(fakes, policy, make_router):
    router = make_router(policy, log_redaction="pii")
    d = httpx.post(f"{router.base_url}/classify", json={"prompt": CARD}).json()
    assert d["sensitivity"] == {"sensitive": True, "kinds": ["credit_card"]}
    assert d["tier"] == "local" and d["reason"].startswith("privacy")
    chat(router, {"model": "auto", "messages": [{"role": "user", "content": CARD}]})
    rows = router.rows()
    assert len(rows) == 2
    for row in rows:
        assert "4111" not in str(row["messages"])
        assert "[REDACTED:credit_card]" in str(row["messages"])
    assert_no_cloud_traffic(fakes)


def test_log_redaction_all_keeps_no_text(fakes, policy, make_router):
    router = make_router(policy, log_redaction="all")
    chat(router, {"model": "local", "messages": [{"role": "user", "content": "secret plans"}]})
    (row,) = router.rows()
    assert row["messages"] == [{"role": "user"}]
    assert row["answer"] is None


@pytest.mark.parametrize("endpoint", ["chat", "classify", "responses", "messages"])
def test_large_body_secret_at_the_end_is_still_pinned(fakes, policy, make_router, endpoint):
    """Bodies over 64 KiB are scanned off the event loop; the verdict must not change."""
    router = make_router(policy)
    text = "Summarize this quarterly report and prove every claim.\n" * 4000 + EMAIL
    assert len(text) > 200_000
    body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
    if endpoint == "classify":
        d = httpx.post(f"{router.base_url}/classify", json=body, timeout=30).json()
        assert d["sensitivity"]["sensitive"] is True
        assert d["tier"] == "local"
    elif endpoint == "responses":
        r = httpx.post(
            f"{router.base_url}/responses",
            json={"model": "strong", "instructions": text, "input": "summarize"},
            timeout=30,
        )
        assert r.status_code == 200
        assert r.headers["x-router-tier"] == "local"
    elif endpoint == "messages":
        r = httpx.post(
            f"{router.url}/v1/messages",
            json={"model": "strong", "max_tokens": 16, "system": text, "messages": [
                {"role": "user", "content": "summarize"}]},
            timeout=30,
        )  # fmt: skip
        assert r.status_code == 200 and r.json()["type"] == "message"
        assert r.headers["x-router-tier"] == "local"
    else:
        r = chat(router, body)
        assert r.status_code == 200
        assert r.headers["x-router-tier"] == "local"
    assert_no_cloud_traffic(fakes)
