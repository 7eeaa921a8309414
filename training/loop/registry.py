"""A finished training run -> an MLflow run + a registered model version; the served model
dir -> the registry's ``champion`` alias.

Tracking store: ``config.mlflow_tracking_uri``, else ``MLFLOW_TRACKING_URI``, else a local
sqlite file ``mlflow.db`` at the repository root. Where a new experiment keeps its
artifacts (``artifact_location``):

* ``sqlite:///path/mlflow.db`` -> ``mlruns/`` beside the sqlite file;
* ``file:///path`` (a file store) -> that directory;
* ``http(s)://`` / ``databricks`` (a tracking server) -> the server decides (its
  ``--artifacts-destination`` or default artifact root): nothing stays on this machine;
* any other database URI (``postgresql://``...) -> ``mlruns/`` at the repository root.

The run records the config (params), the headline metrics, the evaluation report, the model
bundle (manifest, model card, tokenizer) and the ONNX graph as an MLflow model registered
under ``config.registered_model_name``, tagged ``model_version``.

``sync_champion`` keeps one invariant: the registered version whose ``model_version`` tag
equals the served bundle's (``manifest.json``) carries the alias ``champion``. ``train``
calls it after writing into the served dir, the retrain at its start (healing any drift)
and after a promotion's publish. The served dir is the one the service loads
(``ROUTER_MODEL_DIR``, else ``models/default``; ``served_model_dir``) unless a command is
told another one (``--serve-dir``)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from training.config import REPO_ROOT, TrainConfig

if TYPE_CHECKING:
    from router_service.settings import Settings

log = logging.getLogger("training")

CHAMPION_ALIAS = "champion"
SERVER_SCHEMES = ("http", "https", "databricks")  # the tracking server stores artifacts


def tracking_uri(cfg: TrainConfig) -> str:
    if cfg.mlflow_tracking_uri:
        return cfg.mlflow_tracking_uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{REPO_ROOT / 'mlflow.db'}"


def artifact_location(uri: str, cwd: Path | None = None) -> Path | None:
    """Tracking URI -> the absolute artifact root for a new experiment, or None when a
    tracking server chooses it. Relative paths are relative to ``cwd`` (default: the
    working directory), as MLflow and SQLAlchemy read them."""
    base = Path.cwd() if cwd is None else cwd
    scheme = urlparse(uri).scheme.lower()
    if scheme in SERVER_SCHEMES or uri.lower() == "databricks":  # bare: the default profile
        return None
    if scheme.startswith("sqlite"):
        # SQLAlchemy: "sqlite:///rel.db" (relative), "sqlite:////abs.db", "sqlite://" (memory)
        db = uri.split("://", 1)[1].removeprefix("/").split("?", 1)[0]
        return (base / db).parent / "mlruns" if db else base / "mlruns"
    if scheme == "file":
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"file tracking URI with a remote host is not supported: {uri}")
        return base / url2pathname(parsed.path)
    if scheme == "":  # a bare path is a file store too
        return base / uri
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


def _client(uri: str) -> Any:
    """Tracking URI -> an ``MlflowClient`` (offline: no usage pings)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def experiment_id(client: Any, name: str, uri: str) -> str:
    """-> the id of experiment ``name``, created with ``artifact_location(uri)`` if new."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    root = artifact_location(uri)
    if root is None:
        return str(client.create_experiment(name))
    root.mkdir(parents=True, exist_ok=True)
    return str(client.create_experiment(name, artifact_location=root.resolve().as_uri()))


def log_run(
    cfg: TrainConfig,
    out_dir: Path,
    metrics: dict[str, float],
    report: dict[str, Any],
    model_version: str,
) -> dict[str, Any]:
    """-> {"run_id", "registered_model", "registered_version", "tracking_uri", "experiment"}."""
    uri = tracking_uri(cfg)
    client = _client(uri)
    import mlflow
    import onnx

    mlflow.set_tracking_uri(uri)
    exp_id = experiment_id(client, cfg.mlflow_experiment, uri)
    with mlflow.start_run(experiment_id=exp_id, run_name=model_version) as run:
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
            snapshot = (manifest.get("training_data") or {}).get("snapshot")
            client.update_model_version(
                cfg.registered_model_name,
                str(version),
                description=f"{model_version}: data {snapshot}",
            )
    return {
        "run_id": run.info.run_id,
        "registered_model": cfg.registered_model_name,
        "registered_version": None if version is None else int(version),
        "tracking_uri": uri,
        "experiment": cfg.mlflow_experiment,
    }


# --- the champion alias --------------------------------------------------------------------


def served_model_dir(settings: Settings | None = None) -> Path:
    """The service's ``Settings`` (default: from ``ROUTER_*``) -> the model dir it serves:
    ``model_dir`` resolved as the service resolves it, else ``models/default``."""
    from router_service.api.state import resolve_path
    from router_service.scoring import DEFAULT_MODEL_DIR
    from router_service.settings import Settings

    settings = Settings() if settings is None else settings
    return resolve_path(settings.model_dir) if settings.model_dir else DEFAULT_MODEL_DIR


def same_dir(a: Path, b: Path) -> bool:
    """Two paths -> whether they name the same directory (symlinks and ``..`` resolved)."""
    return Path(a).resolve() == Path(b).resolve()


def bundle_version(model_dir: Path) -> str | None:
    """A model dir -> its ``manifest.json`` ``model_version``; None if there is none."""
    try:
        manifest = json.loads((Path(model_dir) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = manifest.get("model_version") if isinstance(manifest, dict) else None
    return version if isinstance(version, str) and version else None


@dataclass(frozen=True, slots=True)
class ChampionSync:
    """What ``sync_champion`` found and did."""

    served: str | None  # the served bundle's model_version (None: no model served)
    version: str | None  # the registered version holding the alias afterwards
    previous: str | None  # ... and before
    registered: bool  # a registered version carries the served model_version

    @property
    def moved(self) -> bool:
        return self.version != self.previous

    def describe(self) -> str:
        """-> one line for a summary, e.g. "champion = v7 (learned-..., moved from v6)"."""
        holder = f"{CHAMPION_ALIAS} = {_v(self.version)}"
        if self.served is None:
            return f"{holder} (nothing served)"
        if not self.registered:
            return f"{holder}; the served {self.served} is not registered"
        moved = f", moved from {_v(self.previous)}" if self.moved else ""
        return f"{holder} ({self.served}{moved})"


def _v(version: str | None) -> str:
    return "none" if version is None else f"v{version}"


def _alias_version(client: Any, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION_ALIAS).version)
    except MlflowException:  # no such model, or no alias yet
        return None


def _versions_tagged(client: Any, name: str, model_version: str) -> list[str]:
    """-> registered versions of ``name`` tagged ``model_version``, oldest first."""
    if "'" in name or "'" in model_version:
        raise ValueError(f"quotes in a model name or version: {name!r}, {model_version!r}")
    found = client.search_model_versions(
        f"name = '{name}' and tags.model_version = '{model_version}'"
    )
    return sorted((str(mv.version) for mv in found), key=int)


def _pick(matches: list[str], prefer: str | None, current: str | None) -> str:
    """Versions with the served bundle -> the one to carry the alias: ``prefer`` (the run
    that just wrote it), else the current holder, else the newest."""
    for choice in (prefer, current):
        if choice is not None and choice in matches:
            return choice
    return matches[-1]


def sync_champion(
    cfg: TrainConfig, served_dir: Path, *, prefer: int | str | None = None
) -> ChampionSync:
    """The served dir's bundle -> the alias ``champion`` on the registered version tagged
    with its ``model_version`` (``prefer`` wins among several). Logs a move; warns (and
    leaves the alias) when that version is not registered."""
    name = cfg.registered_model_name
    client = _client(tracking_uri(cfg))
    previous = _alias_version(client, name)
    served = bundle_version(served_dir)
    if served is None:
        log.info("no model served from %s: alias %r left as is", served_dir, CHAMPION_ALIAS)
        return ChampionSync(None, previous, previous, False)
    matches = _versions_tagged(client, name, served)
    if not matches:
        log.warning(
            "the served model %s (%s) is not registered as %r; alias %r stays on version %s",
            served,
            served_dir,
            name,
            CHAMPION_ALIAS,
            previous,
        )
        return ChampionSync(served, previous, previous, False)
    target = _pick(matches, None if prefer is None else str(prefer), previous)
    if target != previous:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, target)
        log.info(
            "alias %r: %s version %s -> %s (%s, served from %s)",
            CHAMPION_ALIAS,
            name,
            previous,
            target,
            served,
            served_dir,
        )
    return ChampionSync(served, target, previous, True)


def champion_after_train(
    cfg: TrainConfig, out_dir: Path, served_dir: Path | None, registered: int | None
) -> ChampionSync | None:
    """A ``train`` run that wrote ``out_dir`` -> the alias synced when ``out_dir`` is the
    served dir; None (alias untouched) when it wrote elsewhere or no served dir is known."""
    if served_dir is None:
        return None
    if not same_dir(out_dir, served_dir):
        log.info("%s is not the served dir %s: alias untouched", out_dir, served_dir)
        return None
    return sync_champion(cfg, served_dir, prefer=registered)


def champion_from_registry(cfg: TrainConfig, dest: Path) -> tuple[Path, str] | None:
    """The registry's ``champion`` version -> a model dir rebuilt from its artifacts in
    ``dest`` and its registered version; None when there is none."""
    try:
        import mlflow

        uri = tracking_uri(cfg)
        mv = _client(uri).get_model_version_by_alias(cfg.registered_model_name, CHAMPION_ALIAS)
        model = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{cfg.registered_model_name}/{mv.version}",
                tracking_uri=uri,
            )
        )
        bundle = Path(
            mlflow.artifacts.download_artifacts(
                run_id=mv.run_id, artifact_path="bundle", tracking_uri=uri
            )
        )
    except Exception as exc:  # no alias yet, no registry, missing artifacts
        log.info("no champion in the registry (%s)", exc)
        return None
    dest.mkdir(parents=True, exist_ok=True)
    for f in bundle.iterdir():
        shutil.copy2(f, dest / f.name)
    import onnx

    # MLflow stores big initializers as external data beside model.onnx: load them back in
    # and write one self-contained router.onnx, as the router expects.
    graph = onnx.load(str(next(model.rglob("*.onnx"))), load_external_data=True)
    onnx.save_model(graph, str(dest / "router.onnx"), save_as_external_data=False)
    return dest, str(mv.version)
