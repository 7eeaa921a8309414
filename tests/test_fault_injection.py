"""Hostile upstreams and hostile clients -> the router fails closed.

Each test is one scenario of the reliability issue: real HTTP fakes on loopback misbehave on
command, the router is driven over HTTP (the ``openai`` SDK where a client would use it),
and each test checks what the client saw, what every fake received, and the log row.

The scenarios the router already passed before this module have their tests beside the
feature they exercise (each with the same fakes):

* 500s, refused connections, 429s, slow first byte, exhausted timeouts (504) and errors
  (502), client errors not retried, circuit breaker open / half-open / closed, malformed
  SSE before and after the first event, streams cut or stalled mid-way (error event, row
  502), client disconnect mid-stream, latency budgets: ``test_service_fallback.py``;
* privacy pin with local down (503, no cloud call), failing midway, 1 MB bodies with the
  secret at the end, log redaction: ``test_service_privacy.py``;
* bad bodies, oversized bodies (413 by Content-Length and streamed), capacity 429, SDK exception
  classes: ``test_service_errors.py``; fuzzing of every endpoint: ``test_openapi_fuzz.py``;
* kill -9 during traffic with ``ROUTER_LOG_WAIT`` (no acknowledged row lost):
  ``test_logstore_crash.py``; corrupt model files (the old model keeps serving):
  ``test_reload.py``, ``test_reload_service.py``;
* 400 concurrent requests on a saturated local tier (slow): ``test_load_saturation.py``."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.llm import openai_completion
from fakes.process import free_port
from fakes.server import Reply

MSG = [{"role": "user", "content": "hi"}]
CARD = "4111 1111 1111 1111"
ERR_503 = Reply.json({"error": {"message": "overloaded", "type": "server_error"}}, status=503)
OPENAI_KEY = "sk-test-openai"  # conftest.TEST_ENV: what the router sends to the cloud fakes


def post(router: Any, body: dict[str, Any], **kw: Any) -> httpx.Response:
    kw.setdefault("timeout", 30)
    return httpx.post(f"{router.base_url}/chat/completions", json=body, **kw)


def sdk(router: Any, key: str = "x") -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key=key, max_retries=0)


def local_down(fakes: Any) -> None:
    fakes.local.script(ERR_503, ERR_503)
    fakes.ollama.script(ERR_503, ERR_503)


def cloud_calls(fakes: Any) -> int:
    return sum(len(f.calls) for f in fakes.cloud())


# -- client disconnects --------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_disconnect_while_waiting_cancels_upstream_and_tries_no_other_tier(
    fakes, policy, make_router, stream: bool
) -> None:
    """Client gone before the first byte (non-stream, or a stream not started yet): the
    upstream call is cancelled at once, no further tier is called, the row says 499."""
    fakes.local.script(Reply(first_delay=8.0))
    router = make_router(policy)
    body = {"model": "auto", "messages": MSG, "stream": stream}
    with pytest.raises(httpx.ReadTimeout):
        post(router, body, timeout=httpx.Timeout(5.0, read=0.5))
    gone_at = time.monotonic()
    assert fakes.local.disconnected.wait(2.0), "upstream request not cancelled"
    assert time.monotonic() - gone_at < 1.5
    time.sleep(0.5)  # anything still running would have reached the next backend by now
    assert len(fakes.local.calls) == 1 and not fakes.ollama.calls and cloud_calls(fakes) == 0
    [row] = router.rows()
    assert row["status"] == 499 and "disconnected" in row["error"]
    assert row["fallbacks"] == []


# -- timeouts ------------------------------------------------------------------------------
def test_body_stalling_after_headers_fails_over_on_the_idle_timeout(
    fakes, policy, make_router
) -> None:
    for b in policy["tiers"]["local"]["backends"]:
        b["timeouts"].update(first_byte=2.0, idle=0.4, total=20.0)
    body = orjson.dumps(openai_completion("never finished"))
    fakes.local.script(Reply(chunks=[body[:20], body[20:]], chunk_delay=15.0))
    router = make_router(policy)
    started = time.monotonic()
    r = post(router, {"model": "auto", "messages": MSG})
    assert r.status_code == 200, r.text
    assert time.monotonic() - started < 5.0  # the idle timeout, not the 20 s total
    assert r.json()["choices"][0]["message"]["content"] == "hello from ollama"
    assert r.headers["x-router-fallback"] == "local/local-llamacpp: timeout"
    [row] = router.rows()
    assert row["backend"] == "local-ollama" and "stalled" not in (row["error"] or "")


# -- rate limits ---------------------------------------------------------------------------
def test_429_from_every_tier_passes_the_smallest_retry_after(fakes, policy, make_router) -> None:
    def limited(seconds: str) -> Reply:
        body = {"error": {"message": "slow down", "type": "rate_limit"}}
        return Reply.json(body, status=429, headers={"retry-after": seconds})

    fakes.local.script(limited("30"))
    fakes.ollama.script(limited("12"))
    fakes.primary.script(limited("7"))
    fakes.strong.script(limited("40"))
    fakes.anthropic.script(Reply.json({"error": "rl"}, status=429))  # no header at all
    router = make_router(policy)
    with pytest.raises(openai.RateLimitError) as exc:
        sdk(router).chat.completions.create(model="auto", messages=MSG)
    assert exc.value.response.headers["retry-after"] == "7"
    assert exc.value.body["code"] == "upstream_rate_limited"
    assert all(len(f.calls) == 1 for f in fakes.all())


# -- credentials ---------------------------------------------------------------------------
def test_refused_router_key_falls_back_is_redacted_and_shows_in_health(
    fakes, policy, make_router
) -> None:
    """A 401 naming the router's own key: not the client's fault -> next tier; the key never
    reaches the client or the log; /health names the backend as misconfigured."""
    refused = {"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}", "code": 401}}
    fakes.primary.script(Reply.json(refused, status=401))
    router = make_router(policy)
    r = post(router, {"model": "primary", "messages": MSG})  # forced, no fallback allowed
    assert r.status_code == 502
    assert OPENAI_KEY not in r.text and "primary-openai: http_401" in r.text
    policy["fallback_on_forced"] = True
    fakes.primary.script(Reply.json(refused, status=401))
    router2 = make_router(policy)
    r = post(router2, {"model": "primary", "messages": MSG})
    assert r.status_code == 200 and "primary-openai: http_401" in r.headers["x-router-fallback"]
    health = httpx.get(f"{router2.url}/health").json()
    assert health["status"] == "degraded"
    assert "refused the router's key" in health["backends"]["primary-openai"]["misconfigured"]
    metrics = httpx.get(f"{router2.url}/metrics").text
    assert 'reason="auth_error"' in metrics
    for handle in (router, router2):
        for row in handle.rows():
            assert OPENAI_KEY not in orjson.dumps(row, default=str).decode()


def test_upstream_client_error_echoing_the_key_is_redacted(fakes, policy, make_router) -> None:
    echo = {"error": {"message": f"bad header Authorization: Bearer {OPENAI_KEY}", "code": 400}}
    fakes.primary.script(Reply.json(echo, status=400))
    router = make_router(policy)
    r = post(router, {"model": "primary", "messages": MSG})
    assert r.status_code == 400  # the client's problem: passed through, not retried
    assert OPENAI_KEY not in r.text and "[REDACTED]" in r.text
    assert len(fakes.primary.calls) == 1 and not fakes.strong.calls


def test_client_errors_name_backends_not_hosts(fakes, policy, make_router) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for b in policy["tiers"]["local"]["backends"]:
        b["base_url"] = dead
    router = make_router(policy)
    r = post(router, {"model": "local", "messages": MSG})
    assert r.status_code == 502
    message = r.json()["error"]["message"]
    assert "local-llamacpp: connect_error" in message and "127.0.0.1" not in message
    [row] = router.rows()
    assert "127.0.0.1" in row["error"]  # the operator keeps the detail


# -- privacy -------------------------------------------------------------------------------
FIELDS: dict[str, dict[str, Any]] = {
    "tool description": {
        "tools": [
            {
                "type": "function",
                "function": {"name": "pay", "description": f"charge card {CARD}"},
            }
        ]
    },
    "tool arguments": {
        "messages": [
            *MSG,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "pay", "arguments": f'{{"card": "{CARD}"}}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ]
    },
    "prediction": {"prediction": {"type": "content", "content": f"card {CARD}"}},
    "metadata": {"metadata": {"note": f"card {CARD}"}},
    "user": {"user": "jane.doe@example.com"},
    "response_format schema": {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"description": f"for {CARD}"}},
        }
    },
    "unknown field": {"x_vendor_extension": {"deep": [f"card {CARD}"]}},
    "metadata key": {"metadata": {CARD.replace(" ", ""): "x"}},
    "card as a JSON number": {"x_ref": 4111111111111111},
}


@pytest.mark.parametrize("where", list(FIELDS))
def test_privacy_pin_covers_every_client_field(fakes, policy, make_router, where: str) -> None:
    router = make_router(policy)
    local_down(fakes)
    body = {"model": "auto", "messages": MSG, **FIELDS[where]}
    r = post(router, body)
    assert r.status_code == 503, (where, r.text)
    assert r.json()["error"]["code"] == "sensitive_local_unavailable"
    assert cloud_calls(fakes) == 0
    assert sum(f.bytes_received for f in fakes.cloud()) == 0


# -- health --------------------------------------------------------------------------------
def test_health_says_degraded_when_the_scorer_fell_back(
    fakes, policy, make_router, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "router.onnx").write_bytes(b"not an onnx graph")
    router = make_router(policy, scorer="learned", model_dir=broken, model_watch_seconds=0)
    health = httpx.get(f"{router.url}/health").json()
    assert health["status"] == "degraded"
    assert any(r.startswith("scorer fallback to heuristic") for r in health["reasons"])
    assert health["scorer"]["name"] == "heuristic"


def test_health_shows_only_the_status_without_a_key(fakes, policy, make_router) -> None:
    router = make_router(policy, api_keys=["key-a"], admin_key="admin-key")
    assert httpx.get(f"{router.url}/health").json() == {"status": "ok"}
    client = httpx.get(f"{router.url}/health", headers={"Authorization": "Bearer key-a"})
    assert client.json() == {"status": "ok"}  # a client key is not the admin's
    admin = httpx.get(f"{router.url}/health", headers={"X-Admin-Key": "admin-key"}).json()
    assert admin["status"] == "ok" and "local-llamacpp" in admin["backends"]


# -- least privilege -----------------------------------------------------------------------
def test_feedback_is_scoped_to_the_key_that_made_the_request(fakes, policy, make_router) -> None:
    router = make_router(policy, api_keys=["key-a", "key-b"], admin_key="admin-key")
    raw = sdk(router, "key-a").chat.completions.with_raw_response.create(model="auto", messages=MSG)
    rid = raw.headers["x-router-request-id"]

    def rate(headers: dict[str, str]) -> httpx.Response:
        body = {"request_id": rid, "thumbs": "down"}
        return httpx.post(f"{router.base_url}/feedback", json=body, headers=headers)

    other = rate({"Authorization": "Bearer key-b"})
    assert other.status_code == 404 and other.json()["error"]["code"] == "request_not_found"
    assert rate({"Authorization": "Bearer key-a"}).status_code == 200
    assert rate({"X-Admin-Key": "admin-key"}).status_code == 200
    assert rate({}).status_code == 401
    [row] = router.rows()
    assert row["extra"]["client_key"] and "key-a" not in orjson.dumps(row, default=str).decode()


# -- concurrency sanity: a disconnect storm leaves nothing running --------------------------
def test_many_disconnects_leave_no_upstream_call_behind(fakes, policy, make_router) -> None:
    fakes.local.script(*[Reply(first_delay=8.0) for _ in range(20)])
    router = make_router(policy)

    def one() -> None:
        with pytest.raises(httpx.ReadTimeout):
            post(router, {"model": "auto", "messages": MSG}, timeout=httpx.Timeout(5.0, read=0.5))

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(1.0)
    assert not fakes.ollama.calls and cloud_calls(fakes) == 0
    rows = router.rows()
    assert len(rows) == 20 and {r["status"] for r in rows} == {499}
    assert router.state.inflight == 0


# -- property: a planted secret anywhere never reaches a cloud backend ----------------------
SECRETS = (
    CARD,
    "jane.doe@example.com",
    "DE89 3704 0044 0532 0130 00",
    "sk-proj-8fQ2mZr7Lx0aVb3NcT9yWd4KpE6hUs1G",
    "-----BEGIN RSA PRIVATE KEY-----",
)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
leaves = st.one_of(st.text(max_size=12), st.integers(-1000, 1000), st.booleans(), st.none())


@st.composite
def planted(draw: st.DrawFn) -> dict[str, Any]:
    """A chat request with one secret at a random depth of a random field (or message)."""
    value: Any = f"{draw(st.text(max_size=8))} {draw(st.sampled_from(SECRETS))} x"
    for _ in range(draw(st.integers(0, 4))):  # wrap it in objects / arrays, with siblings
        if draw(st.booleans()):
            siblings = draw(st.dictionaries(names, leaves, max_size=2))
            value = {**siblings, draw(names): value}  # the secret's key wins a clash
        else:
            value = [*draw(st.lists(leaves, max_size=2)), value]
    where = draw(st.sampled_from(["field", "message", "content_part", "tool_call"]))
    body: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    if where == "field":
        body[draw(names.filter(lambda n: n not in ("messages", "model")))] = value
    elif where == "message":
        body["messages"][0][draw(names.filter(lambda n: n != "role"))] = value
    elif where == "content_part":
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        body["messages"][0]["content"] = [{"type": "text", "text": text}]
    else:
        args = orjson.dumps({"v": value}).decode()
        call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}
        body["messages"].append({"role": "assistant", "content": None, "tool_calls": [call]})
        body["messages"].append({"role": "user", "content": "go on"})
    return body


def test_planted_secret_in_any_field_never_reaches_the_cloud(fakes, policy, make_router) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for b in policy["tiers"]["local"]["backends"]:
        b["base_url"] = dead  # local down: refused connections
    router = make_router(policy)

    @settings(max_examples=80, deadline=None)
    @given(planted())
    def check(body: dict[str, Any]) -> None:
        assert any(secret in orjson.dumps(body).decode() for secret in SECRETS)
        r = post(router, body)
        assert r.status_code in (400, 422, 503), (body, r.text)  # 4xx: refused before routing
        if r.status_code == 503:
            assert r.json()["error"]["code"] == "sensitive_local_unavailable", r.text
        assert sum(f.bytes_received for f in fakes.cloud()) == 0, body

    check()


# -- saturation: a busy local server is waited for, not silently swapped for the cloud ------
def test_busy_server_is_saturated_not_a_connect_error(fakes, policy, make_router) -> None:
    """A server that holds connections but accepts no more (its accept queue is full: the
    kernel drops further SYNs) -> those requests wait for it up to the first-byte deadline
    and only then overflow, counted as ``saturated``, never as ``connect_error``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # never accepts: two handshakes queue, later SYNs are dropped
    try:
        llama = policy["tiers"]["local"]["backends"][0]
        llama["base_url"] = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        llama["timeouts"].update(connect=0.3, first_byte=1.5)
        router = make_router(policy)
        results: list[httpx.Response] = []

        def one() -> None:
            results.append(post(router, {"model": "auto", "messages": MSG}))

        threads = [threading.Thread(target=one) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.status_code for r in results] == [200] * 6
        trails = [r.headers["x-router-fallback"] for r in results]
        assert all("connect_error" not in t for t in trails), trails
        assert any(t == "local/local-llamacpp: saturated" for t in trails), trails
        metrics = httpx.get(f"{router.url}/metrics").text
        assert 'reason="saturated"' in metrics
    finally:
        listener.close()


# -- answers that are not answers ----------------------------------------------------------
@pytest.mark.parametrize(
    "reply",
    [
        Reply(chunks=[b"{not json at all"]),
        Reply.json({"error": {"message": "quota exceeded", "type": "insufficient_quota"}}),
        Reply.json({"object": "chat.completion", "choices": []}),
    ],
    ids=["invalid JSON with 200", "error body with 200", "no choices"],
)
def test_a_200_that_is_not_an_answer_falls_back(fakes, policy, make_router, reply) -> None:
    fakes.local.script(reply)
    router = make_router(policy)
    r = post(router, {"model": "auto", "messages": MSG})
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "hello from ollama"
    assert r.headers["x-router-fallback"] == "local/local-llamacpp: protocol_error"
    [row] = router.rows()
    assert row["backend"] == "local-ollama" and row["fallbacks"] == [
        "local/local-llamacpp: protocol_error"
    ]


# -- SSRF: nothing a client sends makes the router connect anywhere new ---------------------
class Canary:
    """A loopback listener counting the connections it gets (there must be none)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def ssrf_vectors(url: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    image = {"type": "image_url", "image_url": {"url": f"{url}/latest/meta-data"}}
    return [
        ({"model": url, "messages": MSG}, {}),
        ({"model": f"{url}/v1", "messages": MSG}, {}),
        ({"model": "auto", "messages": MSG, "base_url": url}, {}),
        ({"model": "auto", "messages": MSG, "api_base": url}, {}),
        ({"model": "auto", "messages": MSG, "extra_body": {"base_url": url}}, {}),
        ({"model": "auto", "messages": MSG, "metadata": {"callback_url": url}}, {}),
        ({"model": "auto", "messages": [{"role": "user", "content": [image]}]}, {}),
        ({"model": "auto", "messages": MSG}, {"Host": url.removeprefix("http://")}),
        ({"model": "auto", "messages": MSG}, {"X-Forwarded-Host": url.removeprefix("http://")}),
        ({"model": "auto", "messages": MSG}, {"X-Force-Route": url}),
        ({"model": "auto", "messages": MSG}, {"X-Router-Backend": url}),
        ({"model": "auto", "messages": MSG, "tools": [{"type": "function", "function": {
            "name": "fetch", "description": "GET it", "parameters": {"$ref": url}}}]}, {}),
    ]  # fmt: skip


def test_no_client_input_makes_the_router_connect_elsewhere(fakes, policy, make_router) -> None:
    canary = Canary()
    try:
        router = make_router(policy)
        for body, headers in ssrf_vectors(canary.url):
            r = post(router, body, headers=headers)
            assert r.status_code < 500, (body, headers, r.text)
        httpx.get(f"{router.url}/health")
        time.sleep(0.3)
        assert canary.hits == 0
    finally:
        canary.close()


# -- canary secrets: never stored, never printed ---------------------------------------------
def test_keys_never_reach_the_log_database_or_the_process_output(
    fakes, policy, make_router, capfd: pytest.CaptureFixture[str]
) -> None:
    client_key = "client-canary-5b1f0e7a9c"
    fakes.primary.script(Reply.json({"error": {"message": f"bad key {OPENAI_KEY}"}}, status=401))
    router = make_router(policy, api_keys=[client_key], admin_key="admin-canary-c4d2")
    client = sdk(router, client_key)
    client.chat.completions.create(model="auto", messages=MSG)
    client.chat.completions.create(model="strong", messages=MSG)
    with pytest.raises(openai.InternalServerError):  # primary refuses the router's key
        client.chat.completions.create(model="primary", messages=MSG)
    httpx.get(f"{router.url}/health", headers={"X-Admin-Key": "admin-canary-c4d2"})
    router.stop()
    stored = b"".join(p.read_bytes() for p in router.settings.sqlite_path.parent.glob("log-*"))
    out = capfd.readouterr()
    for secret in (client_key, "admin-canary-c4d2", OPENAI_KEY, "sk-test-anthropic"):
        assert secret.encode() not in stored, secret
        assert secret not in out.out + out.err, secret


# -- per-backend translation ---------------------------------------------------------------
def test_backend_gets_the_parameters_it_reads(fakes, policy, make_router) -> None:
    """llama.cpp-style local: the output cap renamed to max_tokens, content null -> "",
    declared fields dropped; the other backends get the body as the client sent it."""
    llama = policy["tiers"]["local"]["backends"][0]
    llama.update(token_limit_param="max_tokens", null_content="empty", drop_params=["seed"])
    router = make_router(policy)
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        *MSG,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    body = {"model": "local", "messages": messages, "max_completion_tokens": 5, "seed": 7}
    assert post(router, body).status_code == 200
    sent = fakes.local.calls[-1].json()
    assert sent["max_tokens"] == 5 and "max_completion_tokens" not in sent and "seed" not in sent
    assert sent["messages"][1] == {"role": "assistant", "content": "", "tool_calls": [call]}
    post(router, {**body, "model": "primary"})
    as_sent = fakes.primary.calls[-1].json()
    assert as_sent["max_completion_tokens"] == 5 and as_sent["seed"] == 7
    assert as_sent["messages"][1]["content"] is None


def test_every_tier_failing_shows_each_upstream_message(fakes, policy, make_router) -> None:
    crash = {"error": {"message": "Invalid 'content': null", "type": "server_error"}}
    fakes.local.script(Reply.json(crash, status=500))
    fakes.ollama.script(Reply.json({"error": "model not loaded"}, status=500))
    router = make_router(policy)
    r = post(router, {"model": "local", "messages": MSG})
    assert r.status_code == 502
    message = r.json()["error"]["message"]
    assert "local-llamacpp: http_500 (Invalid 'content': null)" in message
    assert "model not loaded" in message
