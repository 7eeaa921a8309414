"""The MLflow side of training (``training.loop.registry``): where a tracking URI keeps its
artifacts, and the ``champion`` alias following the served model dir, on a real sqlite
registry filled by ``log_run`` with small model dirs (``fakes.loop_models``)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fakes.loop_models import write_model
from router_service.scoring import DEFAULT_MODEL_DIR
from router_service.settings import Settings
from training.config import REPO_ROOT, TrainConfig
from training.loop.registry import (
    CHAMPION_ALIAS,
    ChampionSync,
    artifact_location,
    bundle_version,
    champion_after_train,
    log_run,
    same_dir,
    served_model_dir,
    sync_champion,
)

CWD = Path("/srv/work")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:///mlflow.db", CWD / "mlruns"),  # relative to the working directory
        ("sqlite:///runs/mlflow.db?mode=rwc", CWD / "runs" / "mlruns"),
        ("sqlite:////abs/dir/mlflow.db", Path("/abs/dir/mlruns")),
        ("sqlite://", CWD / "mlruns"),  # in-memory store
        ("file:///abs/store", Path("/abs/store")),  # not srv/work/abs/store
        ("file://localhost/abs/my%20store", Path("/abs/my store")),
        ("file:rel/store", CWD / "rel" / "store"),
        ("/abs/plain/path", Path("/abs/plain/path")),
        ("http://host:5000", None),  # the tracking server decides
        ("https://mlflow.example.com/prefix", None),
        ("databricks", None),
        ("databricks://profile", None),
        ("postgresql+psycopg://user@db/mlflow", REPO_ROOT / "mlruns"),
    ],
)
def test_tracking_uri_maps_to_an_artifact_location(uri: str, expected: Path | None) -> None:
    assert artifact_location(uri, cwd=CWD) == expected


def test_file_uri_with_a_remote_host_is_refused() -> None:
    with pytest.raises(ValueError, match="remote host"):
        artifact_location("file://fileserver/share/mlruns")


def test_served_model_dir_is_the_one_the_service_loads(tmp_path: Path) -> None:
    assert served_model_dir(Settings(model_dir=tmp_path)) == tmp_path
    assert served_model_dir(Settings(model_dir=None)) == DEFAULT_MODEL_DIR
    assert same_dir(tmp_path / "a" / ".." / "b", tmp_path / "b")
    assert not same_dir(tmp_path / "a", tmp_path / "b")


def test_bundle_version_reads_the_manifest(tmp_path: Path) -> None:
    assert bundle_version(write_model(tmp_path / "m", "v-7")) == "v-7"
    assert bundle_version(tmp_path / "missing") is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json", encoding="utf-8")
    assert bundle_version(tmp_path / "bad") is None
    (tmp_path / "bad" / "manifest.json").write_text('{"model_version": 3}', encoding="utf-8")
    assert bundle_version(tmp_path / "bad") is None


@dataclass
class Registry:
    cfg: TrainConfig
    bundles: dict[str, Path]  # model_version -> model dir
    versions: dict[str, list[str]]  # model_version -> registered versions
    served: Path

    def alias(self) -> str | None:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=self.cfg.mlflow_tracking_uri)
        try:
            return str(client.get_model_version_by_alias("learned-router", CHAMPION_ALIAS).version)
        except mlflow.exceptions.MlflowException:
            return None

    def set_alias(self, version: str | None) -> None:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=self.cfg.mlflow_tracking_uri)
        if version is None:
            client.delete_registered_model_alias("learned-router", CHAMPION_ALIAS)
        else:
            client.set_registered_model_alias("learned-router", CHAMPION_ALIAS, version)

    def serve(self, model_version: str | None) -> None:
        """Put that bundle (None: nothing) into the served dir."""
        shutil.rmtree(self.served, ignore_errors=True)
        if model_version is not None:
            shutil.copytree(self.bundles[model_version], self.served)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A sqlite registry holding m-1 (v1) and m-2 twice (v2, v3: a retrained identical
    model); m-9 exists on disk only."""
    tmp = tmp_path_factory.mktemp("registry")
    cfg = TrainConfig(mlflow_tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    bundles = {v: write_model(tmp / v, v, seed=n) for n, v in enumerate(("m-1", "m-2", "m-9"))}
    versions: dict[str, list[str]] = {}
    for model_version in ("m-1", "m-2", "m-2"):
        done = log_run(cfg, bundles[model_version], {"apgr": 0.5}, {}, model_version)
        versions.setdefault(model_version, []).append(str(done["registered_version"]))
    yield Registry(cfg, bundles, versions, tmp / "served")


def test_registry_fixture_registers_every_run(registry: Registry) -> None:
    assert registry.versions == {"m-1": ["1"], "m-2": ["2", "3"]}
    assert (registry.served.parent / "mlruns").is_dir()  # artifacts beside mlflow.db


def test_alias_follows_the_served_bundle(registry: Registry, caplog) -> None:
    registry.set_alias("1")
    registry.serve("m-2")  # e.g. a promotion published m-2, then the run died
    with caplog.at_level(logging.INFO, logger="training"):
        found = sync_champion(registry.cfg, registry.served)
    assert found == ChampionSync("m-2", "3", "1", True) and found.moved
    assert registry.alias() == "3"  # the newest of the versions holding m-2
    assert "alias 'champion': learned-router version 1 -> 3 (m-2" in caplog.text
    assert found.describe() == "champion = v3 (m-2, moved from v1)"

    again = sync_champion(registry.cfg, registry.served)  # already in step: no move
    assert again == ChampionSync("m-2", "3", "3", True) and not again.moved
    preferred = sync_champion(registry.cfg, registry.served, prefer=2)  # the run that wrote it
    assert preferred.version == "2" and registry.alias() == "2"
    assert sync_champion(registry.cfg, registry.served).version == "2"  # the holder stays

    registry.serve("m-1")
    assert sync_champion(registry.cfg, registry.served, prefer=3).version == "1"  # 3 is m-2


def test_alias_is_set_when_there_was_none(registry: Registry) -> None:
    registry.set_alias(None)
    registry.serve("m-1")
    found = sync_champion(registry.cfg, registry.served)
    assert (found.previous, found.version, registry.alias()) == (None, "1", "1")
    assert found.describe() == "champion = v1 (m-1, moved from none)"


def test_unregistered_or_missing_served_model_leaves_the_alias(registry: Registry, caplog) -> None:
    registry.set_alias("1")
    registry.serve("m-9")
    with caplog.at_level(logging.WARNING, logger="training"):
        found = sync_champion(registry.cfg, registry.served)
    assert found == ChampionSync("m-9", "1", "1", False) and registry.alias() == "1"
    assert "the served model m-9" in caplog.text and "is not registered" in caplog.text
    assert found.describe() == "champion = v1; the served m-9 is not registered"
    registry.serve(None)
    assert sync_champion(registry.cfg, registry.served) == ChampionSync(None, "1", "1", False)


def test_train_moves_the_alias_only_when_it_wrote_the_served_dir(registry: Registry) -> None:
    registry.set_alias("1")
    registry.serve("m-2")
    elsewhere = registry.bundles["m-2"]  # ``train --out`` somewhere else
    assert champion_after_train(registry.cfg, elsewhere, registry.served, 2) is None
    assert champion_after_train(registry.cfg, registry.served, None, 2) is None
    assert registry.alias() == "1"
    spelled = registry.served.parent / "x" / ".." / registry.served.name
    found = champion_after_train(registry.cfg, spelled, registry.served, 2)
    assert found is not None and found.version == "2" and registry.alias() == "2"
