"""``log_run`` and ``sync_champion`` against a real MLflow tracking server (``mlflow server``
on a loopback port): the server chooses where artifacts go (``mlflow-artifacts:``), so the
bundle lands in the server's artifact store and nothing is written beside the client.
Slow: the server needs 10-20 s to start (database migrations)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fakes.loop_models import write_model
from fakes.process import free_port
from training.config import REPO_ROOT, TrainConfig
from training.loop.registry import CHAMPION_ALIAS, log_run, sync_champion

pytestmark = pytest.mark.slow
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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """-> (tracking URL, the server's artifact directory)."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
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


def test_remote_server_keeps_the_artifacts_and_the_alias(server, tmp_path: Path) -> None:
    import mlflow

    url, artifacts = server
    cfg = TrainConfig(mlflow_tracking_uri=url, mlflow_experiment="remote-test")
    model = write_model(tmp_path / "served", "remote-1")
    done = log_run(cfg, model, {"apgr": 0.5}, {"note": "remote"}, "remote-1")

    client = mlflow.MlflowClient(tracking_uri=url)
    experiment = client.get_experiment_by_name("remote-test")
    assert experiment is not None
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    stored = {p.name for p in artifacts.rglob("*") if p.is_file()}
    assert {"manifest.json", "tokenizer.json", "eval_report.json"} <= stored
    assert any(p.suffix == ".onnx" for p in artifacts.rglob("*"))
    assert not (REPO_ROOT / "mlruns" / done["run_id"]).exists()  # nothing client-side

    found = sync_champion(cfg, model)
    assert found.version == str(done["registered_version"])
    mv = client.get_model_version_by_alias(cfg.registered_model_name, CHAMPION_ALIAS)
    assert mv.tags["model_version"] == "remote-1"
