"""A real ``learned-router serve`` process in front of fake upstreams, plus a mix of traffic
for the dashboard to show: the browser test and ``scripts/dashboard_screenshot.py``.

``dashboard_router(tmp)`` starts three OpenAI-compatible fakes on loopback (local, primary,
strong; usage reported from the prompt's length), a small shadow candidate model, and the
router (learned scorer, committed model, admin and client keys, rows committed before each
answer). ``send_traffic(router)`` sends routed, forced and streamed chat requests through
the openai SDK, makes the primary backend fail three times (fallbacks to strong, then its
circuit opens), and rates some answers (``POST /v1/feedback``; judge grades through the
decision log's own ``add_feedback``, which the judge job writes with). -> ``Sent`` rows:
request id, routed tier, fallback header."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import yaml

from fakes.llm import openai_completion, openai_stream_chunks
from fakes.loop_models import write_model
from fakes.process import free_port, served
from fakes.server import FakeUpstream, Recorded, Reply
from router_service.logstore import create_decision_log

ADMIN_KEY = "admin-dashboard-test"
CLIENT_KEY = "client-dashboard-test"
PROMPTS = (
    "hi there!",
    "Write a Python function that merges two sorted lists and explain its complexity.",
    "Prove that the square root of 2 is irrational, step by step.",
    "What's the capital of France?",
    "Summarise the plot of Hamlet in two sentences.",
    "Design a fault-tolerant distributed job scheduler: components, failure modes, trade-offs.",
)


def responder(text: str) -> Any:
    """An OpenAI chat server answering ``text``, with usage from the prompt's length."""

    def respond(rec: Recorded) -> Reply:
        if rec.method == "GET":
            return Reply.json({"object": "list", "data": []})
        body = rec.json()
        model = body.get("model", "fake")
        if body.get("stream"):
            return Reply(
                chunks=openai_stream_chunks(text.split(" "), model),
                content_type="text/event-stream",
            )
        chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        usage = (max(1, chars // 4) + 8, 12 * len(text.split()))
        return Reply.json(openai_completion(text, model, usage=usage))

    return respond


@dataclass
class DashboardRouter:
    url: str
    db: Path
    local: FakeUpstream
    primary: FakeUpstream
    strong: FakeUpstream
    admin_key: str = ADMIN_KEY
    client_key: str = CLIENT_KEY
    sent: list[Sent] = field(default_factory=list)


@dataclass(frozen=True)
class Sent:
    request_id: str
    tier: str
    fallback: str | None


def _policy(local: str, primary: str, strong: str) -> dict[str, Any]:
    timeouts = {"connect": 2.0, "first_byte": 10.0, "idle": 10.0, "total": 30.0}

    def backend(name: str, url: str, model: str, price: tuple[float, float]) -> dict[str, Any]:
        return {
            "name": name,
            "type": "openai",
            "base_url": f"{url}/v1",
            "model": model,
            "api_key_env": "FAKE_OPENAI_KEY",
            "timeouts": dict(timeouts),
            "price": {"input_per_1m": price[0], "output_per_1m": price[1]},
        }

    return {
        "tiers": {
            "local": {"backends": [backend("local-llamacpp", local, "smollm2", (0, 0))]},
            "primary": {"backends": [backend("primary-openai", primary, "gpt-mini", (0.15, 0.6))]},
            "strong": {"backends": [backend("strong-openai", strong, "gpt-large", (2.5, 10))]},
        },
        "fallback_on_forced": True,  # a forced primary request falls back to strong
        "circuit_breaker": {"failures": 3, "cooldown_seconds": 300},
    }


@contextlib.contextmanager
def dashboard_router(tmp: Path, *, keys: bool = True) -> Iterator[DashboardRouter]:
    """The router process (``keys``: with ROUTER_ADMIN_KEY and ROUTER_API_KEYS set)."""
    fakes = [
        FakeUpstream(name, responder(text))
        for name, text in (
            ("local", "Hello from the local model."),
            ("primary", "A good answer from the primary model."),
            ("strong", "A careful, thorough answer from the strong model."),
        )
    ]
    try:
        policy = tmp / "policy.yaml"
        policy.write_text(yaml.safe_dump(_policy(*(f.url for f in fakes))), encoding="utf-8")
        shadow = write_model(tmp / "shadow-candidate", "candidate-v2", intent="coding", seed=3)
        db = tmp / "router_logs.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
        env.update(
            {
                "ROUTER_POLICY": str(policy),
                "ROUTER_SQLITE_PATH": str(db),
                "ROUTER_LOG_WAIT": "true",
                "ROUTER_SHADOW_MODEL_DIR": str(shadow),
                "FAKE_OPENAI_KEY": "sk-fake-upstream",
            }
        )
        if keys:
            env.update({"ROUTER_ADMIN_KEY": ADMIN_KEY, "ROUTER_API_KEYS": CLIENT_KEY})
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "router_service.cli", "serve", "--host", "127.0.0.1"]
        cmd += ["--port", str(port), "--log-level", "warning"]
        with served(cmd, url, env=env, cwd=tmp, log_path=tmp / "router.log", ready_path="/health"):
            yield DashboardRouter(url, db, *fakes)
    finally:
        for f in fakes:
            f.stop()


def chat(router: DashboardRouter, prompt: str, model: str = "auto", stream: bool = False) -> Sent:
    """One chat request through the openai SDK -> what the router's headers said."""
    client = openai.OpenAI(
        base_url=f"{router.url}/v1", api_key=router.client_key, max_retries=0, timeout=30
    )
    messages: Any = [{"role": "user", "content": prompt}]
    if stream:
        with client.chat.completions.with_streaming_response.create(
            model=model, messages=messages, stream=True
        ) as response:
            for _ in response.iter_lines():
                pass
            headers = response.headers
    else:
        headers = client.chat.completions.with_raw_response.create(
            model=model, messages=messages
        ).headers
    sent = Sent(
        headers["x-router-request-id"], headers["x-router-tier"], headers.get("x-router-fallback")
    )
    router.sent.append(sent)
    return sent


def send_traffic(router: DashboardRouter, rounds: int = 1, pause_s: float = 0.0) -> list[Sent]:
    """``rounds`` x (every prompt routed by the model, one forced request per tier, one
    stream; ``pause_s`` apart), then three failing primary calls (fallbacks; the circuit
    opens), one more primary request (skipped: circuit open) and feedback on the first
    answers."""
    for n in range(rounds):
        if n:
            time.sleep(pause_s)
        for prompt in PROMPTS:
            chat(router, prompt)
        for tier in ("local", "primary", "strong"):
            chat(router, f"Explain {tier} caching in one line.", model=tier)
        chat(router, "Stream me a short greeting.", stream=True)
    failure = Reply.json({"error": {"message": "overloaded", "type": "server_error"}}, 500)
    router.primary.script(failure, failure, failure)
    for n in range(4):
        chat(router, f"Translate 'good morning' into language number {n}.", model="primary")
    first = router.sent[:3]
    with httpx.Client(base_url=router.url, timeout=10) as client:
        auth = {"Authorization": f"Bearer {router.client_key}"}
        for sent, rating in zip(
            first, ({"thumbs": "up"}, {"thumbs": "down"}, {"score": 8}), strict=True
        ):
            r = client.post(
                "/v1/feedback", json={"request_id": sent.request_id, **rating}, headers=auth
            )
            r.raise_for_status()
    log = create_decision_log(None, router.db)  # what the judge job writes its grades with
    try:
        for sent, (score, preference) in zip(
            router.sent[3:5], ((9, "cheap"), (3, "strong")), strict=True
        ):
            log.add_feedback(
                sent.request_id,
                "judge",
                judge_model="judge-fake",
                score=score,
                preference=preference,
            )
    finally:
        log.close_sync()
    return list(router.sent)
