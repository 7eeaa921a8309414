"""Two router processes sharing one decision log and one model directory, like replicas
behind a load balancer: a model published into the shared directory reaches both without a
restart, no request fails during the rollout, and every answered request has its row in
the one log. PostgreSQL when ``ROUTER_TEST_POSTGRES_URL`` is set (CI), else one SQLite
file in WAL mode shared by both processes. Requests alternate between the replicas (what a
round-robin balancer does)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from fakes.loop_models import write_model
from fakes.process import free_port, served
from router_service.logstore import create_decision_log
from router_service.model_store import publish_model_dir

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("ROUTER_TEST_POSTGRES_URL")


def _reset(url: str) -> None:
    from router_service.logstore.schema import metadata

    engine = sa.create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def replicas(fakes: Any, policy: dict[str, Any], tmp_path: Path) -> Iterator[list[str]]:
    serve_dir = tmp_path / "models" / "served"
    write_model(tmp_path / "v1", "v1", intent="chitchat", strong_logit=-4.0)
    publish_model_dir(tmp_path / "v1", serve_dir)
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    if PG_URL:
        _reset(PG_URL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env.update(
        {
            "ROUTER_POLICY": str(tmp_path / "policy.yaml"),
            "ROUTER_MODEL_DIR": str(serve_dir),
            "ROUTER_MODEL_WATCH_SECONDS": "0.2",
            "ROUTER_LOG_WAIT": "true",  # a row is committed before its answer completes
            "ROUTER_SQLITE_PATH": str(tmp_path / "shared.db"),
            "FAKE_OPENAI_KEY": "sk-test-openai",
        }
    )
    if PG_URL:
        env["ROUTER_DATABASE_URL"] = PG_URL
    urls = []
    with contextlib.ExitStack() as stack:
        for i in range(2):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            cmd = [sys.executable, "-m", "router_service.cli", "serve", "--host", "127.0.0.1"]
            cmd += ["--port", str(port), "--log-level", "warning"]
            log = tmp_path / f"replica-{i}.log"
            stack.enter_context(served(cmd, url, env=env, cwd=tmp_path, log_path=log))
            urls.append(url)
        yield urls
    if PG_URL:
        _reset(PG_URL)


def test_a_published_model_reaches_every_replica_with_no_failed_request(
    replicas: list[str], tmp_path: Path
) -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}
    seen: list[tuple[int, str]] = []  # (replica, model version) of every answer
    failures: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while not stop.is_set():
                r = client.post(f"{replicas[i % 2]}/v1/chat/completions", json=body)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                seen.append((i % 2, r.headers.get("x-router-model-version", "?")))
                i += 1

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        time.sleep(1.0)
        assert {v for _, v in seen} == {"v1"}
        write_model(tmp_path / "v2", "v2", intent="coding", strong_logit=-4.0, seed=1)
        publish_model_dir(tmp_path / "v2", tmp_path / "models" / "served")  # the rollout
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            recent = seen[-20:]
            if len(recent) == 20 and {v for _, v in recent} == {"v2"}:
                break
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        sender.join()
    assert failures == []
    for replica in (0, 1):
        versions = [v for r, v in seen if r == replica]
        assert versions[0] == "v1" and versions[-1] == "v2", replica
        switched = versions.index("v2")
        assert set(versions[switched:]) == {"v2"}  # no flapping back once switched
    log = create_decision_log(PG_URL, tmp_path / "shared.db")
    try:
        rows = list(log.iter_rows())
    finally:
        log.close_sync()
    chat_rows = [r for r in rows if r["extra"].get("endpoint") == "chat"]
    assert len(chat_rows) == len(seen)
    assert {r["model_version"] for r in chat_rows} == {"v1", "v2"}
