"""Router processes sharing one decision log and one model directory, like replicas
behind a load balancer: PostgreSQL when ``ROUTER_TEST_POSTGRES_URL`` is set (CI), else one
SQLite file in WAL mode shared by every process. Each is a ``learned-router serve`` child
process (``fakes.process.served``) with the file watch on the shared model directory."""

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
import sqlalchemy as sa
import yaml

from fakes.process import free_port, served
from router_service.logstore import create_decision_log

PG_URL = os.environ.get("ROUTER_TEST_POSTGRES_URL")
WATCH_SECONDS = "0.2"


def shared_db(tmp_path: Path) -> Path:
    """The SQLite log file the replicas share (unused when ``PG_URL`` is set)."""
    return tmp_path / "shared.db"


def _reset(url: str) -> None:
    from router_service.logstore.schema import metadata

    engine = sa.create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()


@contextlib.contextmanager
def start_replicas(
    policy: dict[str, Any], serve_dir: Path, tmp_path: Path, n: int = 2
) -> Iterator[list[str]]:
    """``n`` replicas serving ``serve_dir`` with ``policy`` -> their base URLs. The shared
    PostgreSQL log is emptied before and after."""
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    if PG_URL:
        _reset(PG_URL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env.update(
        {
            "ROUTER_POLICY": str(tmp_path / "policy.yaml"),
            "ROUTER_MODEL_DIR": str(serve_dir),
            "ROUTER_MODEL_WATCH_SECONDS": WATCH_SECONDS,
            "ROUTER_LOG_WAIT": "true",  # a row is committed before its answer completes
            "ROUTER_SQLITE_PATH": str(shared_db(tmp_path)),
            "FAKE_OPENAI_KEY": "sk-test-openai",
        }
    )
    if PG_URL:
        env["ROUTER_DATABASE_URL"] = PG_URL
    urls = []
    try:
        with contextlib.ExitStack() as stack:
            for i in range(n):
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                cmd = [sys.executable, "-m", "router_service.cli", "serve"]
                cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
                log = tmp_path / f"replica-{i}.log"
                stack.enter_context(served(cmd, url, env=env, cwd=tmp_path, log_path=log))
                urls.append(url)
            yield urls
    finally:
        if PG_URL:
            _reset(PG_URL)


def shared_log_rows(tmp_path: Path) -> list[dict[str, Any]]:
    """Every decision row in the replicas' shared log."""
    log = create_decision_log(PG_URL, shared_db(tmp_path))
    try:
        return list(log.iter_rows())
    finally:
        log.close_sync()


def switched_once(seen: list[tuple[int, str]], old: str, new: str, n: int = 2) -> None:
    """Assert each replica answered ``old`` first, ``new`` last, and never ``old`` again
    after its first ``new`` (no flapping back). ``seen``: (replica, version) per answer."""
    for replica in range(n):
        versions = [v for r, v in seen if r == replica]
        assert versions and versions[0] == old and versions[-1] == new, replica
        switched = versions.index(new)
        assert set(versions[switched:]) == {new}, replica


class RoundRobin:
    """A client thread sending chat requests to the replicas in turn (what a round-robin
            balancer does) until stopped. ``seen``: (replica, ``X-Router-Model-Version``) of every
            answer; ``request_ids`` and ``prompts_sent``: theirs, in the same order; ``failures``:
        every request that got no answer or a non-200 one. ``seen`` grows last, so its length
    is never ahead of the others'."""

    def __init__(self, urls: list[str], prompts: list[str] | None = None) -> None:
        self.urls = urls
        self.prompts = prompts or ["hello"]
        self.seen: list[tuple[int, str]] = []
        self.request_ids: list[str] = []
        self.prompts_sent: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                prompt = self.prompts[i % len(self.prompts)]
                body = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
                try:
                    r = client.post(
                        f"{self.urls[i % len(self.urls)]}/v1/chat/completions", json=body
                    )
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    i += 1
                    continue
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
                self.request_ids.append(r.headers.get("x-router-request-id", ""))
                self.prompts_sent.append(prompt)
                self.seen.append((i % len(self.urls), r.headers.get("x-router-model-version", "?")))
                i += 1

    def __enter__(self) -> RoundRobin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def wait_until(self, version: str, timeout: float = 30.0, last: int = 20) -> None:
        """Until the last ``last`` answers all carry ``version`` (or ``timeout`` passes),
        then half a second more."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recent = self.seen[-last:]
            if len(recent) == last and {v for _, v in recent} == {version}:
                break
            time.sleep(0.1)
        time.sleep(0.5)
