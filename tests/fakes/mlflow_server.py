"""A real MLflow tracking server (``mlflow server`` on a loopback port) for the tests that
need one: a SQLite backend store, ``--artifacts-destination`` (the server chooses where
artifacts go, ``mlflow-artifacts:``), one worker, no job workers. It needs 10-20 s to start
(database migrations)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from fakes.process import free_port

START_TIMEOUT_S = 90.0


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``/health`` until the server answers; fail with its log if it dies or stalls."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"mlflow server not up after {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@contextmanager
def mlflow_server(tmp: Path) -> Iterator[tuple[str, Path]]:
    """A server keeping its store and artifacts under ``tmp`` -> (tracking URL, the
    server's artifact directory); stopped (with the workers it started) on exit."""
    artifacts = tmp / "server-artifacts"
    url = f"http://127.0.0.1:{free_port()}"
    log = tmp / "server.log"
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no background job workers
    }
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        url.rsplit(":", 1)[1],
        "--backend-store-uri",
        f"sqlite:///{tmp / 'server.db'}",
        "--artifacts-destination",
        str(artifacts),
        "--workers",
        "1",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_healthy(url, proc, log)
        yield url, artifacts
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and the workers it started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
