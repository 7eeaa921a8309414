"""The whole feedback loop in one test: requests through the running service (openai SDK)
to a local tier -> ``learned-router judge`` against a scripted judge server -> user
feedback -> ``learned-router train --from-feedback --config tiny`` -> gate -> promotion
(MLflow alias + atomic publish) -> the running service reloads and serves the new version
(``X-Router-Model-Version``). The default test uses a fake local tier; the ``e2e`` variant
uses the real llama.cpp server running SmolLM2 (``make test-e2e``)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from fakes.llm import openai_completion
from fakes.loop_models import loose_retrain_args, trained_champion
from fakes.server import FakeUpstream, Recorded, Reply
from router_service.cli import main
from router_service.learned import LearnedScorer
from router_service.logstore import create_decision_log

pytestmark = pytest.mark.routellm

ADMIN = "admin-key"
PROMPTS = [
    "Prove that there are infinitely many primes.",
    "What is the capital of Australia?",
    "Compute the integral of x^2 * sin(x) dx and show every step.",
    "hi! how are you doing today?",
    "Write a haiku about autumn leaves.",
    "Solve for x: 3x + 7 = 2x - 5, then verify the answer.",
    "Translate 'good morning, friends' into French.",
    "A train leaves at 3pm going 60 mph; another at 4pm going 80 mph. When does it catch up?",
    "Summarize the plot of Romeo and Juliet in two sentences.",
    "Prove that the sum of two even numbers is even.",
]
HARD = ("prove", "integral", "solve", "train leaves")


def judge_responder(rec: Recorded) -> Reply:
    """Low ratings for hard prompts (the cheap answer is judged poor), high otherwise."""
    text = rec.json()["messages"][-1]["content"]
    prompt = text.split("<conversation>")[1].split("</conversation>")[0].lower()
    rating = 3 if any(word in prompt for word in HARD) else 9
    body = openai_completion(f"Checked the answer.\nRating: [[{rating}]]", "judge-e2e")
    return Reply.json(body)


@pytest.fixture
def judge_server() -> Iterator[FakeUpstream]:
    server = FakeUpstream("judge", judge_responder)
    yield server
    server.stop()


def initial_champion(serve_dir: Path) -> str:
    """The committed model when there is one, else a ``tiny`` model trained for the session."""
    source = trained_champion()
    shutil.copytree(source, serve_dir)
    version = LearnedScorer.load(serve_dir).version
    assert version
    return version


def served_version(base_url: str, force: str = "local") -> tuple[str, str]:
    client = openai.OpenAI(base_url=base_url, api_key="sk", max_retries=0, timeout=120)
    raw = client.chat.completions.with_raw_response.create(
        model=force, max_tokens=32, messages=[{"role": "user", "content": "hello again"}]
    )
    raw.parse()
    return raw.headers["x-router-model-version"], raw.headers["x-router-request-id"]


def run_loop(make_router: Any, policy: dict[str, Any], tmp: Path, judge_url: str) -> None:
    serve_dir = tmp / "serve" / "default"
    serve_dir.parent.mkdir(parents=True)
    v1 = initial_champion(serve_dir)
    router = make_router(
        policy, scorer="learned", model_dir=serve_dir, model_watch_seconds=0.2, admin_key=ADMIN
    )
    db = router.settings.sqlite_path

    # 1. traffic through the service, forced to the local tier
    client = openai.OpenAI(base_url=router.base_url, api_key="sk", max_retries=0, timeout=120)
    request_ids = []
    for prompt in PROMPTS * 2:
        raw = client.chat.completions.with_raw_response.create(
            model="local", max_tokens=32, messages=[{"role": "user", "content": prompt}]
        )
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-router-model-version"] == v1
        request_ids.append(raw.headers["x-router-request-id"])

    # 2. a user's thumbs-down
    r = httpx.post(
        f"{router.url}/v1/feedback", json={"request_id": request_ids[0], "thumbs": "down"}
    )
    assert r.status_code == 200

    # 3. the judge grades every logged local answer once
    judge_args = [
        "judge",
        "--sqlite-path",
        str(db),
        "--policy",
        str(tmp / "no-policy.yaml"),
        "--judge-base-url",
        f"{judge_url}/v1",
        "--judge-model",
        "judge-e2e",
        "--no-progress",
        "--concurrency",
        "4",
    ]
    assert main(judge_args) == 0
    log = create_decision_log(None, db)
    try:
        judged = list(log.iter_feedback(source="judge", ok_only=True))
    finally:
        log.close_sync()
    assert {f["request_id"] for f in judged} == set(request_ids)
    assert {f["score"] for f in judged} == {3, 9}

    # 4. retrain on the tiny config with a loose gate (this test is about the loop's mechanics)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    train_args = loose_retrain_args(serve_dir, tmp / "work", ["--sqlite-path", str(db)], uri)
    assert main(train_args) == 0
    v2 = LearnedScorer.load(serve_dir).version
    assert v2 and v2 != v1
    exported = (tmp / "work" / "data" / "feedback.jsonl").read_text().splitlines()
    assert len(exported) == len(request_ids)  # one labelled row per judged request

    # 5. MLflow: the promoted version carries the champion alias, gate tags, artifacts
    import mlflow

    mc = mlflow.MlflowClient(tracking_uri=uri)
    mv = mc.get_model_version_by_alias("learned-router", "champion")
    assert mv.tags["model_version"] == v2 and mv.tags["gate"] == "promoted"
    assert mv.tags["data_snapshot"] and mv.tags["feedback_export_sha256"]
    bundle = {a.path for a in mc.list_artifacts(mv.run_id, "bundle")}
    assert {"bundle/MODEL_CARD.md", "bundle/manifest.json"} <= bundle
    onnx_dir = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/learned-router/{mv.version}", tracking_uri=uri
        )
    )
    assert list(onnx_dir.rglob("*.onnx"))

    # 6. the running service picks the new model up by itself (file watch)
    deadline = time.monotonic() + 30
    version, _ = served_version(router.base_url)
    while version != v2 and time.monotonic() < deadline:
        time.sleep(0.1)
        version, _ = served_version(router.base_url)
    assert version == v2
    health = httpx.get(f"{router.url}/health", headers={"X-Admin-Key": ADMIN}).json()
    assert health["scorer"]["version"] == v2

    # 7. a candidate the gate refuses (no model meets a 1 µs latency budget) is registered,
    #    never published: the service keeps serving v2 and the alias stays on it
    strict = [*train_args[: train_args.index("--p50-budget-us")], "--p50-budget-us", "1"]
    assert main(strict) == 0
    refused = max(mc.search_model_versions("name='learned-router'"), key=lambda v: int(v.version))
    assert int(refused.version) > int(mv.version) and refused.tags["gate"] == "not_promoted"
    time.sleep(1.0)  # five file-watch periods
    assert served_version(router.base_url)[0] == v2
    assert LearnedScorer.load(serve_dir).version == v2
    assert mc.get_model_version_by_alias("learned-router", "champion").version == mv.version


def test_feedback_loop_end_to_end(fakes, policy, make_router, judge_server, tmp_path) -> None:
    run_loop(make_router, policy, tmp_path, judge_server.url)
    assert len(fakes.local.calls) > 2 * len(PROMPTS)  # the traffic + the version probes
    assert fakes.strong.calls == [] and fakes.primary.calls == []


@pytest.mark.e2e
def test_feedback_loop_with_real_local_model(
    llama_url, policy, make_router, judge_server, tmp_path
) -> None:
    timeouts = {"connect": 2, "first_byte": 120, "idle": 60, "total": 300}
    policy["tiers"]["local"]["backends"] = [
        {
            "name": "smollm2",
            "type": "openai",
            "base_url": f"{llama_url}/v1",
            "model": "smollm2",
            "timeouts": timeouts,
        }
    ]
    run_loop(make_router, policy, tmp_path, judge_server.url)
