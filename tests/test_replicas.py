"""Two router processes sharing one decision log and one model directory, like replicas
behind a load balancer: a model published into the shared directory reaches both without a
restart, no request fails during the rollout, and every answered request has its row in
the one log. PostgreSQL when ``ROUTER_TEST_POSTGRES_URL`` is set (CI), else one SQLite
file in WAL mode shared by both processes (``fakes.replicas``). Requests alternate between
the replicas (what a round-robin balancer does)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.loop_models import write_model
from fakes.replicas import RoundRobin, shared_log_rows, start_replicas, switched_once
from router_service.model_store import publish_model_dir


@pytest.fixture
def replicas(fakes: Any, policy: dict[str, Any], tmp_path: Path) -> Iterator[list[str]]:
    serve_dir = tmp_path / "models" / "served"
    write_model(tmp_path / "v1", "v1", intent="chitchat", strong_logit=-4.0)
    publish_model_dir(tmp_path / "v1", serve_dir)
    with start_replicas(policy, serve_dir, tmp_path) as urls:
        yield urls


def test_a_published_model_reaches_every_replica_with_no_failed_request(
    replicas: list[str], tmp_path: Path
) -> None:
    with RoundRobin(replicas) as traffic:
        time.sleep(1.0)
        assert {v for _, v in traffic.seen} == {"v1"}
        write_model(tmp_path / "v2", "v2", intent="coding", strong_logit=-4.0, seed=1)
        publish_model_dir(tmp_path / "v2", tmp_path / "models" / "served")  # the rollout
        traffic.wait_until("v2")
    assert traffic.failures == []
    switched_once(traffic.seen, "v1", "v2")
    chat_rows = [r for r in shared_log_rows(tmp_path) if r["extra"].get("endpoint") == "chat"]
    assert len(chat_rows) == len(traffic.seen)
    assert {r["model_version"] for r in chat_rows} == {"v1", "v2"}
