"""A promotion made by the feedback loop's retrain reaches every replica without a restart.
Two router processes (``fakes.replicas``) share one decision log (PostgreSQL when
``ROUTER_TEST_POSTGRES_URL`` is set, else one SQLite WAL file) and one served model
directory (file watch every 0.2 s); a real ``mlflow server`` (``fakes.mlflow_server``) is
the tracking server and registry. Requests alternate between the replicas the whole time;
judge grades go into the shared log; ``learned-router train --from-feedback --config
tiny`` runs once against that log and server with a loose gate. Then: the gate promoted
(the registry's ``champion`` alias on the new version, tagged ``gate=promoted`` with the
new bundle's ``model_version``), both replicas answer with the new version
(``X-Router-Model-Version``) with no failed request and no flapping back, and every
answered request has exactly one row in the shared log."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.loop_models import loose_retrain_args, trained_champion
from fakes.mlflow_server import mlflow_server
from fakes.replicas import (
    PG_URL,
    RoundRobin,
    shared_db,
    shared_log_rows,
    start_replicas,
    switched_once,
)
from router_service.cli import main
from router_service.learned import LearnedScorer
from router_service.logstore import create_decision_log

pytestmark = pytest.mark.routellm  # retrain trains on the RouteLLM outcome data

PROMPTS = [
    "Prove that there are infinitely many primes.",
    "What is the capital of Australia?",
    "Compute the integral of x^2 * sin(x) dx and show every step.",
    "hi! how are you doing today?",
    "Write a haiku about autumn leaves.",
    "Solve for x: 3x + 7 = 2x - 5, then verify the answer.",
]
HARD = ("prove", "integral", "solve")


@pytest.fixture
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as (url, _):
        yield url


def judge(traffic: RoundRobin, tmp_path: Path, n: int) -> None:
    """The judge's grades for the first ``n`` answers, written as the judge job writes them:
    low for the hard prompts (the cheap answer is judged poor), high otherwise."""
    log = create_decision_log(PG_URL, shared_db(tmp_path))
    try:
        for request_id, prompt in zip(
            traffic.request_ids[:n], traffic.prompts_sent[:n], strict=True
        ):
            score = 3 if any(word in prompt.lower() for word in HARD) else 9
            assert log.add_feedback(request_id, "judge", judge_model="judge-fake", score=score)
    finally:
        log.close_sync()


def test_a_retrain_promotion_reaches_every_replica(
    fakes: Any, policy: dict[str, Any], mlflow_url: str, tmp_path: Path
) -> None:
    serve_dir = tmp_path / "serve" / "default"
    shutil.copytree(trained_champion(), serve_dir)  # a real model, so retrain builds on it
    v1 = LearnedScorer.load(serve_dir).version
    assert v1
    log_args = ["--database-url", PG_URL] if PG_URL else []
    log_args += ["--sqlite-path", str(shared_db(tmp_path))]
    train_args = loose_retrain_args(serve_dir, tmp_path / "work", log_args, mlflow_url)
    graded = 2 * len(PROMPTS)
    with start_replicas(policy, serve_dir, tmp_path) as urls:
        with RoundRobin(urls, PROMPTS) as traffic:
            deadline = time.monotonic() + 30
            while len(traffic.seen) < graded and time.monotonic() < deadline:
                time.sleep(0.05)
            assert {v for _, v in traffic.seen} == {v1}
            judge(traffic, tmp_path, graded)

            assert main(train_args) == 0  # while the replicas keep answering
            v2 = LearnedScorer.load(serve_dir).version
            assert v2 and v2 != v1
            traffic.wait_until(v2)
        rows = shared_log_rows(tmp_path)  # before the replicas' PostgreSQL log is emptied

    # the gate promoted: the registry's champion is the new version, the one now served
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_url)
    champion = client.get_model_version_by_alias("learned-router", "champion")
    newest = max(
        client.search_model_versions("name='learned-router'"), key=lambda v: int(v.version)
    )
    assert champion.version == newest.version
    assert champion.tags["gate"] == "promoted" and champion.tags["model_version"] == v2
    assert int(champion.tags["feedback_labelled"]) == graded

    # both replicas switched with no failed request and never went back
    assert traffic.failures == []
    switched_once(traffic.seen, v1, v2)

    # every answered request has exactly one row in the one shared log
    chat_rows = [r for r in rows if r["extra"].get("endpoint") == "chat"]
    per_request = Counter(r["request_id"] for r in chat_rows)
    assert sorted(per_request) == sorted(traffic.request_ids)
    assert set(per_request.values()) == {1}
    assert {r["model_version"] for r in chat_rows} == {v1, v2}
