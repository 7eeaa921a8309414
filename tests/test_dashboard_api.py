"""``GET /dashboard`` and ``GET /dashboard/data`` over real HTTP: chat requests sent with the
openai SDK show up in the data (decision log on SQLite, and on PostgreSQL when
ROUTER_TEST_POSTGRES_URL is set), with the live backend, model and metric state; who may
read it (no keys: anyone; admin key set: only it; only client keys: a client key); query
values checked (400 envelopes, never a 5xx); an unreadable log still leaves the live half."""

from __future__ import annotations

import os
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.server import Reply
from router_service.logstore import metadata

PG_URL = os.environ.get("ROUTER_TEST_POSTGRES_URL")
DATABASES = [
    pytest.param(None, id="sqlite"),
    pytest.param(
        PG_URL,
        id="postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_URL, reason="ROUTER_TEST_POSTGRES_URL is not set"),
        ],
    ),
]


def _reset(url: str) -> None:
    engine = sa.create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()


def send(router: Any, model: str = "auto", key: str = "sk-client") -> httpx.Headers:
    c = openai.OpenAI(base_url=router.base_url, api_key=key, max_retries=0)
    raw = c.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": f"hello via {model}"}]
    )
    return raw.headers


@pytest.mark.parametrize("database_url", DATABASES)
def test_the_data_follows_the_requests_sent(fakes, policy, make_router, database_url) -> None:
    if database_url:
        _reset(database_url)
    router = make_router(policy, database_url=database_url, log_wait=True)
    sent = [send(router, m) for m in ("local", "primary", "strong", "auto", "auto")]
    r = httpx.get(f"{router.url}/dashboard/data", params={"window": 300, "recent": 3})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    data = r.json()
    assert data["object"] == "dashboard.data"
    log = data["log"]
    assert log["window"]["rows"] == 5 and log["window"]["truncated"] is False
    assert log["window"]["dialect"] == ("postgresql" if database_url else "sqlite")
    ids = [h["x-router-request-id"] for h in sent]
    assert [row["request_id"] for row in log["recent"]] == ids[::-1][:3]  # newest first
    counts = log["tiers"]["counts"]
    assert counts["local"] >= 1 and counts["primary"] >= 1 and counts["strong"] >= 1
    assert sum(counts.values()) == 5
    # the fakes report 7 prompt + 3 completion tokens; primary and strong have prices
    assert log["cost"]["rows_with_usage"] == 5
    assert log["cost"]["strong_baseline_usd"] == pytest.approx(5 * (7 * 2.5 + 3 * 10) / 1e6)
    assert 0 < log["cost"]["estimated_usd"] < log["cost"]["strong_baseline_usd"]
    assert log["latency"]["upstream_ms"]["n"] == 5 and log["latency"]["decision_us"]["p50"] > 0
    assert sum(p["local"] + p["primary"] + p["strong"] for p in log["series"]["points"]) == 5
    by_name = {b["name"]: b for b in data["backends"]}
    assert set(by_name) == {b.backend.name for b in router.state.upstream.slots}
    assert by_name["local-llamacpp"]["window"]["served"] >= 1
    assert by_name["strong-openai"]["calls"]["ok"] >= 1
    assert all(b["circuit"] == "closed" for b in data["backends"])
    assert data["model"]["scorer"] == "heuristic" and data["shadow"] == {"enabled": False}
    assert data["process"]["metrics"]["requests"] == 5
    assert data["process"]["log_writer"]["rows_written"] == 5
    assert log["feedback"]["user"]["total"] == 0
    fb = httpx.post(
        f"{router.url}/v1/feedback", json={"request_id": ids[0], "thumbs": "up", "score": 7}
    )
    assert fb.status_code == 200
    user = httpx.get(f"{router.url}/dashboard/data").json()["log"]["feedback"]["user"]
    assert user == {"total": 1, "up": 1, "down": 0, "scored": 1, "mean_score": 7.0}
    router.stop()
    if database_url:
        _reset(database_url)


def test_fallbacks_and_open_circuits_are_shown(fakes, policy, make_router) -> None:
    router = make_router(policy, log_wait=True)
    down = Reply.json({"error": {"message": "down"}}, status=500)
    fakes.local.script(down, down, down)
    for _ in range(3):  # local-llamacpp fails -> local-ollama answers
        assert send(router, "local")["x-router-model"] == "llama-fake"
    data = httpx.get(f"{router.url}/dashboard/data").json()
    llama = next(b for b in data["backends"] if b["name"] == "local-llamacpp")
    assert llama["circuit"] == "open" and llama["consecutive_failures"] == 3
    assert llama["window"] == {"served": 0, "errors": 0, "fallbacks": {"http_500": 3}}
    assert llama["calls"]["error"] == 3
    assert data["log"]["fallbacks"]["requests"] == 3
    assert all(r["fallbacks"] == ["local/local-llamacpp: http_500"] for r in data["log"]["recent"])


def test_the_page_and_its_files_are_served_with_a_strict_policy(fakes, policy, make_router):
    router = make_router(policy, admin_key="adm", api_keys=["k"])
    for path, kind in (
        ("/dashboard", "text/html"),
        ("/dashboard/dashboard.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
    ):
        r = httpx.get(router.url + path)  # public: the page holds no data
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), path
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "dashboard/dashboard.js" in httpx.get(router.url + "/dashboard").text
    missing = httpx.get(router.url + "/dashboard/other.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def _status(router: Any, headers: dict[str, str]) -> int:
    r = httpx.get(f"{router.url}/dashboard/data", headers=headers)
    if r.status_code != 200:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        assert r.json()["error"]["code"] == "invalid_api_key"
    return r.status_code


def test_with_an_admin_key_only_the_admin_key_reads_the_data(fakes, policy, make_router):
    router = make_router(policy, admin_key="adm", api_keys=["client"])
    assert _status(router, {}) == 401
    assert _status(router, {"Authorization": "Bearer client"}) == 401
    assert _status(router, {"Authorization": "Bearer wrong"}) == 401
    assert _status(router, {"Authorization": "Bearer adm"}) == 200
    assert _status(router, {"X-Admin-Key": "adm"}) == 200
    body = httpx.get(f"{router.url}/dashboard/data").json()
    assert "ROUTER_ADMIN_KEY" in body["error"]["message"]


def test_with_client_keys_only_a_client_key_reads_the_data(fakes, policy, make_router):
    router = make_router(policy, api_keys=["client"])
    assert _status(router, {}) == 401
    assert _status(router, {"Authorization": "Bearer nope"}) == 401
    assert _status(router, {"Authorization": "Bearer client"}) == 200


def test_without_keys_the_data_is_open(fakes, policy, make_router):
    router = make_router(policy)
    assert _status(router, {}) == 200


@pytest.mark.parametrize(
    ("query", "param"),
    [("window=59", "window"), ("window=abc", "window"), ("limit=0", "limit"),
     ("limit=10001", "limit"), ("recent=1.5", "recent"), ("recent=201", "recent")],
)  # fmt: skip
def test_bad_query_values_are_400_envelopes(fakes, policy, make_router, query, param):
    router = make_router(policy)
    r = httpx.get(f"{router.url}/dashboard/data?{query}")
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == param and error["code"] == "invalid_value"
    assert error["type"] == "invalid_request_error"


def test_any_query_string_answers_200_or_400(fakes, policy, make_router):
    router = make_router(policy)
    values = st.one_of(st.integers(-(10**12), 10**12).map(str), st.text(max_size=12))
    names = st.sampled_from(["window", "limit", "recent", "other"])

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.dictionaries(names, values, max_size=3))
    def check(query: dict[str, str]) -> None:
        r = httpx.get(f"{router.url}/dashboard/data", params=query, timeout=30)
        assert r.status_code in (200, 400), (query, r.text)
        assert r.headers["content-type"] == "application/json"

    check()


def test_an_unreadable_log_still_leaves_the_live_state(fakes, policy, make_router):
    router = make_router(policy, log_wait=True)
    send(router, "local")
    metadata.drop_all(router.state.log.engine)  # the log's tables vanish under the router
    r = httpx.get(f"{router.url}/dashboard/data")
    assert r.status_code == 200
    data = r.json()
    assert "OperationalError" in data["log"]["error"]
    assert data["log"]["window"]["dialect"] == "sqlite"
    assert len(data["backends"]) == len(router.state.upstream.slots)
    assert data["process"]["metrics"]["requests"] == 1
