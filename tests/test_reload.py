"""``router_service.model_store``: atomic publication, reload on change, refusal of
corrupt or incompatible models (the old one keeps serving), consistency under races."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from fakes.loop_models import INTENT_OF, build_versions, write_model
from router_service.decision import Scores
from router_service.intents import INTENTS
from router_service.model_store import (
    ModelRejected,
    ModelStore,
    default_loader,
    model_signature,
    publish_model_dir,
    validate_scorer,
)

PROMPT = [{"role": "user", "content": "hello"}]


@pytest.fixture
def builds(tmp_path: Path) -> dict[str, Path]:
    return build_versions(tmp_path / "builds")


@pytest.fixture
def served(tmp_path: Path, builds: dict[str, Path]) -> Path:
    return publish_model_dir(builds["v1"], tmp_path / "serve" / "default")


def store_for(path: Path) -> ModelStore:
    return ModelStore(path, default_loader(path))


def test_publish_replaces_every_file_and_leaves_no_debris(builds, served) -> None:
    assert json.loads((served / "manifest.json").read_text())["model_version"] == "v1"
    (served / "stale.txt").write_text("old")
    publish_model_dir(builds["v2"], served)
    assert json.loads((served / "manifest.json").read_text())["model_version"] == "v2"
    assert not (served / "stale.txt").exists()
    assert sorted(p.name for p in served.parent.iterdir()) == ["default"]
    with pytest.raises(FileNotFoundError):
        publish_model_dir(builds["v1"].parent / "missing", served)


def test_reload_swaps_only_when_files_change(builds, served) -> None:
    swapped: list[str | None] = []
    store = store_for(served)
    store.on_swap = lambda s: swapped.append(s.version)
    assert store.version == "v1" and not store.changed()
    assert store.check().status == "unchanged"
    publish_model_dir(builds["v2"], served)
    assert store.changed()
    res = store.check()
    assert (res.status, res.previous, res.version) == ("reloaded", "v1", "v2")
    assert store.current.score(PROMPT).intent == "coding"
    assert swapped == ["v2"] and store.check().status == "unchanged"
    assert store.check(force=True).status == "reloaded"  # forced: same files, loaded again


def corrupt_onnx(path: Path) -> None:
    (path / "router.onnx").write_bytes(b"\x08\x01garbage, not a protobuf")


def wrong_intents(path: Path) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["intents"] = list(reversed(INTENTS))
    (path / "manifest.json").write_text(json.dumps(manifest))


def missing_tokenizer(path: Path) -> None:
    (path / "tokenizer.json").unlink()


@pytest.mark.parametrize("damage", [corrupt_onnx, wrong_intents, missing_tokenizer])
def test_broken_model_is_refused_and_old_keeps_serving(
    builds, served, tmp_path, caplog, damage
) -> None:
    store = store_for(served)
    bad = write_model(tmp_path / "bad", "v-bad", intent="math")
    damage(bad)
    publish_model_dir(bad, served)
    with caplog.at_level(logging.ERROR, logger="router_service.model_store"):
        res = store.check()
    assert res.status == "refused" and res.version == "v1"
    assert store.current.version == "v1" and store.current.score(PROMPT).intent == "chitchat"
    assert any(
        "REFUSED" in r.getMessage() and str(served) in r.getMessage() for r in caplog.records
    )
    assert store.refusals == 1
    assert store.check().status == "unchanged"  # the same broken files are not retried
    publish_model_dir(builds["v3"], served)  # a good model after a bad one loads
    assert store.check().version == "v3"


class _BadScorer:
    name, version = "learned", "bad"

    def __init__(self, scores: Scores) -> None:
        self.scores = scores

    def score(self, messages) -> Scores:
        return self.scores


@pytest.mark.parametrize(
    "scores",
    [
        Scores({k: 1 / 14 for k in INTENTS[:-1]}, 0.5),  # an intent missing
        Scores(dict.fromkeys(INTENTS, 0.5), 0.5),  # does not sum to 1
        Scores({k: 1 / 14 for k in INTENTS}, float("nan")),
        Scores({k: 1 / 14 for k in INTENTS}, 1.5),
    ],
)
def test_validate_rejects_insane_scores(scores: Scores) -> None:
    with pytest.raises(ModelRejected):
        validate_scorer(_BadScorer(scores))


def test_signature_sees_missing_dirs(tmp_path) -> None:
    assert model_signature(tmp_path / "nope") is None


def test_loaded_model_always_matches_its_version_during_publish_storm(builds, served) -> None:
    """A publisher swaps v1/v2/v3 in a loop while a reader reloads: every scorer the
    store ever serves answers like the version it claims (files never mixed)."""
    store = store_for(served)
    stop = threading.Event()
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            for i in range(60):
                publish_model_dir(builds[("v1", "v2", "v3")[i % 3]], served)
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    seen: set[str] = set()
    thread = threading.Thread(target=publisher)
    thread.start()
    while not stop.is_set():
        store.check()
        scorer = store.current
        assert scorer.score(PROMPT).intent == INTENT_OF[scorer.version]
        seen.add(scorer.version)
    thread.join()
    assert not errors
    store.check()
    assert store.current.version == "v3" and len(seen) >= 2
