"""``log_run`` and ``sync_champion`` against a real MLflow tracking server (``mlflow server``
on a loopback port, ``fakes.mlflow_server``): the server chooses where artifacts go
(``mlflow-artifacts:``), so the bundle lands in the server's artifact store and nothing is
written beside the client.
Slow: the server needs 10-20 s to start (database migrations)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.loop_models import write_model
from fakes.mlflow_server import mlflow_server
from training.config import REPO_ROOT, TrainConfig
from training.loop.registry import CHAMPION_ALIAS, log_run, sync_champion

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """-> (tracking URL, the server's artifact directory)."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as found:
        yield found


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
