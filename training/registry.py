"""A finished training run -> an MLflow run + a registered model version.

Tracking store: ``config.mlflow_tracking_uri``, else ``MLFLOW_TRACKING_URI``, else a local
sqlite file ``mlflow.db`` at the repository root. Artifacts go to ``mlruns/`` next to the
sqlite file (the experiment's ``artifact_location``). The run records the config (params),
the headline metrics, the evaluation report, the model bundle (manifest, model card,
tokenizer) and the ONNX graph as an MLflow model registered under
``config.registered_model_name``."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from training.config import REPO_ROOT, TrainConfig

log = logging.getLogger("training")


def tracking_uri(cfg: TrainConfig) -> str:
    if cfg.mlflow_tracking_uri:
        return cfg.mlflow_tracking_uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{REPO_ROOT / 'mlflow.db'}"


def artifact_root(uri: str) -> Path:
    """Tracking URI -> where this experiment's artifacts live (``mlruns`` beside sqlite)."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).parent / "mlruns"
    if uri.startswith("file:"):
        return Path(uri[len("file:") :].lstrip("/")).resolve()
    return REPO_ROOT / "mlruns"


def flat_params(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_params(value, f"{name}."))
        else:
            out[name] = str(value)[:500]
    return out


def log_run(
    cfg: TrainConfig,
    out_dir: Path,
    metrics: dict[str, float],
    report: dict[str, Any],
    model_version: str,
) -> dict[str, Any]:
    """-> {"run_id", "registered_version", "tracking_uri", "experiment"}."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # offline: no usage pings
    import mlflow
    import onnx

    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(cfg.mlflow_experiment)
    if experiment is None:
        root = artifact_root(uri)
        root.mkdir(parents=True, exist_ok=True)
        experiment_id = client.create_experiment(
            cfg.mlflow_experiment, artifact_location=root.resolve().as_uri()
        )
    else:
        experiment_id = experiment.experiment_id

    with mlflow.start_run(experiment_id=experiment_id, run_name=model_version) as run:
        mlflow.set_tags({"model_version": model_version, "config": cfg.name})
        mlflow.log_params(flat_params(cfg.to_dict()))
        mlflow.log_metrics(metrics)
        mlflow.log_dict(report, "eval_report.json")
        for name in ("manifest.json", "MODEL_CARD.md", "tokenizer.json"):
            if (out_dir / name).is_file():
                mlflow.log_artifact(str(out_dir / name), artifact_path="bundle")
        info = mlflow.onnx.log_model(
            onnx.load(str(out_dir / "router.onnx")),
            name="model",
            registered_model_name=cfg.registered_model_name,
            pip_requirements=["onnxruntime>=1.18", "tokenizers>=0.19", "numpy>=1.26"],
            metadata={"model_version": model_version},
        )
        version = info.registered_model_version
        if version is not None:
            client.set_model_version_tag(
                cfg.registered_model_name, str(version), "model_version", model_version
            )
            manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
            client.update_model_version(
                cfg.registered_model_name,
                str(version),
                description=f"{model_version}: data {manifest['training_data'].get('snapshot')}",
            )
    return {
        "run_id": run.info.run_id,
        "registered_model": cfg.registered_model_name,
        "registered_version": None if version is None else int(version),
        "tracking_uri": uri,
        "experiment": cfg.mlflow_experiment,
    }
