"""``LearnedScorer``: load errors name the path and the reason; odd inputs never raise.

Uses a small real exported model (``test_training_parity.build_model``) so it does not
depend on the committed one; one test also runs the committed ``models/default``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_training_parity import build_model

from router_service.decision import Scores
from router_service.features import MAX_TOKENS, messages_from_payload
from router_service.intents import INTENTS
from router_service.learned import LearnedScorer, ModelLoadError
from training.config import REPO_ROOT

ODD: list[object] = [
    "",
    "   \n\t ",
    "x" * 1_000_000,
    "word " * 250_000,
    "\x00\x01\x02\x7f\ufffd\udcff junk \ud800",
    bytes(range(256)).decode("latin-1"),
    "日本語のテキストを要約してください。" * 50,
    "Напиши стихотворение о море",
    "🙂" * 3000,
    [{"role": "user", "content": [{"type": "text", "text": "what is 2+2"}, {"type": "image_url"}]}],
    [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": None}],
    [{"role": "assistant", "content": "previous answer"}],
    [],
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("learned")
    build_model(out, seed=4, version="learned-test-7")
    return out


def copy_of(model_dir: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "m"
    shutil.copytree(model_dir, dest)
    return dest


def test_loads_and_scores(model_dir: Path) -> None:
    scorer = LearnedScorer.load(model_dir)
    assert scorer.name == "learned" and scorer.version == "learned-test-7"
    s = scorer.score(messages_from_payload("please write python code to fix this bug"))
    assert isinstance(s, Scores) and s.complexity is None
    assert list(s.intent_scores) == list(INTENTS)
    assert abs(sum(s.intent_scores.values()) - 1) < 1e-5
    assert 0 <= s.strong_win_rate <= 1 and s.n_tokens == 8


@pytest.mark.parametrize("payload", ODD, ids=lambda p: repr(p)[:30])
def test_odd_inputs_never_raise(model_dir: Path, payload: object) -> None:
    scorer = LearnedScorer.load(model_dir)
    msgs = messages_from_payload(payload)  # type: ignore[arg-type]
    s = scorer.score(msgs)
    assert abs(sum(s.intent_scores.values()) - 1) < 1e-5
    assert 0 <= s.strong_win_rate <= 1
    assert 0 <= s.n_tokens <= MAX_TOKENS
    [b] = scorer.score_batch([msgs])
    assert b.intent == s.intent and abs(b.strong_win_rate - s.strong_win_rate) < 1e-5


def test_batch_equals_one_by_one(model_dir: Path) -> None:
    scorer = LearnedScorer.load(model_dir)
    convs = [messages_from_payload(p) for p in ODD] + [
        messages_from_payload(f"explain math {i} " * i) for i in range(1, 90)
    ]
    batch = scorer.score_batch(convs)
    for conv, b in zip(convs, batch, strict=True):
        one = scorer.score(conv)
        assert max(abs(one.intent_scores[k] - b.intent_scores[k]) for k in INTENTS) < 1e-5
        assert abs(one.strong_win_rate - b.strong_win_rate) < 1e-5
        assert one.n_tokens == b.n_tokens


@pytest.mark.parametrize("name", ["router.onnx", "tokenizer.json", "manifest.json"])
def test_missing_file_names_the_path(model_dir: Path, tmp_path: Path, name: str) -> None:
    d = copy_of(model_dir, tmp_path)
    (d / name).unlink()
    with pytest.raises(ModelLoadError) as err:
        LearnedScorer.load(d)
    assert str(d / name) in str(err.value) and "missing file" in str(err.value)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="missing directory") as err:
        LearnedScorer.load(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value)


@pytest.mark.parametrize(
    "data",
    [b"", b"not an onnx model at all", bytes(range(256)) * 100],
    ids=["empty", "text", "binary"],
)
def test_corrupt_onnx(model_dir: Path, tmp_path: Path, data: bytes) -> None:
    d = copy_of(model_dir, tmp_path)
    (d / "router.onnx").write_bytes(data)
    with pytest.raises(ModelLoadError, match="corrupt ONNX") as err:
        LearnedScorer.load(d)
    assert str(d / "router.onnx") in str(err.value)


def test_truncated_onnx(model_dir: Path, tmp_path: Path) -> None:
    d = copy_of(model_dir, tmp_path)
    data = (d / "router.onnx").read_bytes()
    (d / "router.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError) as err:
        LearnedScorer.load(d)
    assert str(d / "router.onnx") in str(err.value)


def test_corrupt_tokenizer_and_manifest(model_dir: Path, tmp_path: Path) -> None:
    d = copy_of(model_dir, tmp_path)
    (d / "tokenizer.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="tokenizer") as err:
        LearnedScorer.load(d)
    assert str(d / "tokenizer.json") in str(err.value)
    shutil.copy(model_dir / "tokenizer.json", d / "tokenizer.json")
    (d / "manifest.json").write_text("[1, 2", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="manifest") as err:
        LearnedScorer.load(d)
    assert str(d / "manifest.json") in str(err.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("intents", list(reversed(INTENTS))),
        ("feature_names", ["a", "b"]),
        ("features_version", 1),
        ("features_version", None),
        ("text_budget", {"head_chars": 1, "tail_chars": 2, "max_tokens": 3}),
        ("outputs", ["probs", "win"]),
        ("model_version", ""),
    ],
)
def test_manifest_mismatch(model_dir: Path, tmp_path: Path, key: str, value: object) -> None:
    d = copy_of(model_dir, tmp_path)
    manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    manifest[key] = value
    (d / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="manifest mismatch") as err:
        LearnedScorer.load(d)
    assert str(d / "manifest.json") in str(err.value)


def test_graph_from_another_model_is_rejected(model_dir: Path, tmp_path: Path) -> None:
    """A graph whose inputs differ from the declared ones (e.g. a foreign ONNX file)."""
    import onnx
    from onnx import TensorProto, helper

    d = copy_of(model_dir, tmp_path)
    g = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    foreign = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    foreign.ir_version = 8
    onnx.save(foreign, str(d / "router.onnx"))
    with pytest.raises(ModelLoadError, match="manifest mismatch") as err:
        LearnedScorer.load(d)
    assert str(d / "router.onnx") in str(err.value)


def test_committed_model_scores_odd_inputs() -> None:
    committed = REPO_ROOT / "models" / "default"
    if not (committed / "manifest.json").is_file():
        pytest.skip("no committed model in models/default")
    scorer = LearnedScorer.load(committed)
    for payload in ODD:
        s = scorer.score(messages_from_payload(payload))  # type: ignore[arg-type]
        assert abs(sum(s.intent_scores.values()) - 1) < 1e-5 and 0 <= s.strong_win_rate <= 1
