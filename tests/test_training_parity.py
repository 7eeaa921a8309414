"""ONNX export vs the sklearn/numpy reference: exact tree conversion, float32 threshold
rounding, and ``check_parity`` on a small but real exported model (no training data
needed: a word-level tokenizer, a random table, heads fitted on random labels).

``build_model`` is also used by ``test_learned_scorer.py``."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from router_service.features import (
    FEATURE_NAMES,
    handcrafted_features,
    messages_from_payload,
    scored_text,
)
from router_service.intents import INTENTS
from router_service.learned import LearnedScorer
from router_service.scoring import DEFAULT_MODEL_DIR
from training.config import TrainConfig
from training.model.calibrators import PlattScaler, TemperatureScaler
from training.model.embed import StaticEmbedding, table_from_model_dir
from training.model.export_onnx import build_graph, build_manifest, save_model
from training.model.heads import (
    Heads,
    design_matrix,
    fit_intent,
    fit_intent_linear,
    fit_intent_stacked,
    fit_strong,
    intent_logits,
    strong_logit,
)
from training.model.onnx_trees import _Ensemble, float32_down
from training.model.parity import ParityError, assert_parity, check_parity

WORDS = (  # noqa: SIM905
    "the a of to and in is it you that write code python function fix bug error story poem "
    "translate french summarize article list ideas math solve equation prove why how what "
    "hello hi thanks please explain sql query email draft classify sentiment extract names"
).split()
SMALL = TrainConfig(
    intent_max_iter=8,
    intent_max_leaf_nodes=7,
    strong_max_iter=8,
    strong_max_leaf_nodes=7,
    early_stopping=False,
    head_tokens=4,
)


def word_tokenizer() -> Tokenizer:
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def sample_prompts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choices(WORDS, k=rng.randint(1, 40))) + "?" * rng.randint(0, 2)
        for _ in range(n)
    ]


def build_model(
    out_dir: Path,
    seed: int = 0,
    version: str = "test-model-1",
    normalize: bool = True,
    head_tokens: int = 4,
    stack_c: float = 0.0,
    intent_kind: str = "hgb",
    strong_kind: str = "hgb",
) -> tuple[StaticEmbedding, Heads]:
    """A real exported model dir (router.onnx, tokenizer.json, manifest.json) -> its parts."""
    rng = np.random.default_rng(seed)
    table = rng.normal(0, 0.3, (len(WORDS) + 1, 8)).astype(np.float16)
    embedder = StaticEmbedding.from_float(
        table, word_tokenizer(), normalize, "test", head_tokens=head_tokens
    )
    texts = sample_prompts(400, seed)
    convs = [messages_from_payload(t) for t in texts]
    feats = np.array([handcrafted_features(c, scored_text(c)) for c in convs], np.float32)
    X = design_matrix(embedder.embed([scored_text(c) for c in convs]), feats)
    # 5 of the 14 intents (the others must come out ~0), labels tied to the first word.
    intents = np.array(
        [INTENTS[(WORDS.index(t.split()[0].rstrip("?")) % 5) * 2] for t in texts], object
    )
    wins = (X[:, 0] + rng.normal(0, 0.2, len(X)) > 0).astype(int)
    cfg = dataclasses.replace(SMALL, intent_stack_c=stack_c, intent_linear_c=1.0)
    if intent_kind == "linear":
        intent, stack = None, fit_intent_linear(X, intents, cfg)
    else:
        intent, stack = fit_intent_stacked(X, intents, cfg)
    strong = fit_strong(X, wins, SMALL, kind=strong_kind)
    heads = Heads(intent, strong, TemperatureScaler(1.4), PlattScaler(0.8, -0.3), stack)
    saved = save_model(build_graph(embedder, heads), embedder, out_dir)
    manifest = build_manifest(
        model_version=version,
        embedder=embedder,
        heads=heads,
        saved=saved,
        data={"snapshot": "synthetic"},
        metrics={},
        parity={},
        config_name="test",
        created_at="2026-01-01T00:00:00+00:00",
    )
    (out_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return embedder, heads


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StaticEmbedding, Heads]:
    out = tmp_path_factory.mktemp("model")
    embedder, heads = build_model(out)
    return out, embedder, heads


def test_float32_down_keeps_every_comparison() -> None:
    rng = np.random.default_rng(1)
    t = rng.normal(0, 1, 5000)
    x = np.concatenate([t.astype(np.float32), rng.normal(0, 1, 5000).astype(np.float32)])
    down = float32_down(t)
    assert down.dtype == np.float32
    for tt, dd in zip(t, down, strict=True):
        near = np.array(
            [
                np.float32(tt),
                np.nextafter(np.float32(tt), np.float32(-9)),
                np.nextafter(np.float32(tt), np.float32(9)),
            ]
        )
        cand = np.concatenate([near, x[:50]])
        assert np.array_equal(cand <= dd, cand.astype(np.float64) <= tt)


def test_ensemble_reproduces_raw_scores_including_binary_intents() -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(2)
    X = rng.normal(0, 1, (300, 6)).astype(np.float32)
    for n_classes in (2, 4):
        intents = np.array([INTENTS[i] for i in (np.argmax(X[:, :n_classes], axis=1) * 3)], object)
        model = fit_intent(X, intents, SMALL)
        ens = _Ensemble(len(INTENTS))
        classes = [int(c) for c in model.classes_]
        ens.add_model(model, [classes[1]] if len(classes) == 2 else classes)
        graph = helper.make_graph(
            [ens.node("x", "raw")],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
            [helper.make_tensor_value_info("raw", TensorProto.FLOAT, ["N", len(INTENTS)])],
        )
        m = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
        )
        m.ir_version = 8
        onnx.checker.check_model(m)
        raw = ort.InferenceSession(m.SerializeToString()).run(None, {"x": X})[0] + ens.base
        ref = intent_logits(model, X)
        seen = sorted(classes)
        assert np.abs(raw[:, seen] - ref[:, seen]).max() < 1e-5


def test_exported_graph_matches_the_sklearn_pipeline(exported) -> None:
    out, embedder, heads = exported
    scorer = LearnedScorer.load(out)
    convs = [messages_from_payload(t) for t in sample_prompts(150, seed=9)]
    result = check_parity(scorer, embedder, heads, convs, tol=1e-4)
    assert result["ok"], result
    assert result["n"] > 150  # the odd inputs are always included
    assert_parity(result)
    # intents never seen in training stay at ~0 probability in both
    probs, _, _ = scorer.predict_batch(convs[:20])
    unseen = [i for i in range(len(INTENTS)) if i not in set(heads.intent.classes_)]
    assert probs[:, unseen].max() < 1e-6


@pytest.mark.parametrize(
    ("intent_kind", "strong_kind"),
    [
        ("linear", "gain"),
        ("linear", "linear"),
        ("linear", "hgb"),
        ("hgb", "gain"),
        ("linear", "stack"),
        ("hgb", "stack"),
    ],
)
def test_parity_for_every_head_kind(tmp_path: Path, intent_kind: str, strong_kind: str) -> None:
    """Linear heads (one Gemm, no trees when both are linear), the "gain" difference of two
    sigmoids, the "stack" trees over the gain logits and mixed tree/linear graphs all match
    the sklearn reference."""
    embedder, heads = build_model(
        tmp_path, seed=4, intent_kind=intent_kind, strong_kind=strong_kind
    )
    scorer = LearnedScorer.load(tmp_path)
    convs = [messages_from_payload(t) for t in sample_prompts(120, seed=13)]
    result = check_parity(scorer, embedder, heads, convs, tol=1e-4)
    assert result["ok"], result
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["heads"]["strong_win"]["type"] == strong_kind
    if intent_kind == strong_kind == "linear" or (intent_kind, strong_kind) == ("linear", "gain"):
        assert manifest["heads"]["n_trees"] == 0
    probs, _, _ = scorer.predict_batch(convs[:20])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert unread_initializers(tmp_path / "router.onnx") == []


def unread_initializers(path: Path) -> list[str]:
    """Graph constants no node reads (onnxruntime warns about each at every load)."""
    import onnx

    graph = onnx.load(str(path)).graph
    used = {name for node in graph.node for name in node.input}
    return [t.name for t in graph.initializer if t.name not in used]


def test_the_committed_graph_reads_every_constant_and_its_table_reads_back() -> None:
    assert unread_initializers(DEFAULT_MODEL_DIR / "router.onnx") == []
    table, scale, _ = table_from_model_dir(DEFAULT_MODEL_DIR)  # as bench_quality reads it
    assert table.dtype == np.int16 and scale > 0


@pytest.mark.parametrize(("normalize", "head_tokens"), [(False, 4), (True, 0), (False, 0)])
def test_parity_without_normalisation_or_head_pooling(
    tmp_path: Path, normalize: bool, head_tokens: int
) -> None:
    embedder, heads = build_model(tmp_path, seed=3, normalize=normalize, head_tokens=head_tokens)
    scorer = LearnedScorer.load(tmp_path)
    convs = [messages_from_payload(t) for t in sample_prompts(80, seed=11)]
    result = check_parity(scorer, embedder, heads, convs, tol=1e-4)
    assert result["ok"], result
    # The table reads back exactly, its scale from the model's metadata even where no node
    # reads the scale constant (a normalised table) and the export dropped it.
    assert unread_initializers(tmp_path / "router.onnx") == []
    table, scale, _ = table_from_model_dir(tmp_path)
    assert np.array_equal(table, embedder.table_q) and scale == embedder.scale


def test_parity_with_a_stacked_linear_model(tmp_path: Path) -> None:
    """The logistic regression's log-probabilities (float64 in the graph) feed the intent
    trees exactly as in the sklearn reference, and the trees do use them."""
    embedder, heads = build_model(tmp_path, seed=5, stack_c=4.0)
    assert heads.stack is not None
    n_inputs = heads.stack.n_emb + len(FEATURE_NAMES)
    used = {
        int(f)
        for trees in heads.intent._predictors
        for t in trees
        for f in t.nodes["feature_idx"][t.nodes["is_leaf"] == 0]
    }
    assert max(used) >= n_inputs  # some split reads a stacked column
    scorer = LearnedScorer.load(tmp_path)
    convs = [messages_from_payload(t) for t in sample_prompts(120, seed=12)]
    result = check_parity(scorer, embedder, heads, convs, tol=1e-4)
    assert result["ok"], result


def test_pooling_is_bit_exact_including_padding(exported) -> None:
    """The pooled features the trees see are identical in numpy and in the graph."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    out, embedder, _ = exported
    model = onnx.load(str(out / "router.onnx"))
    model.graph.output.append(helper.make_tensor_value_info("emb", TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString())
    texts = [*sample_prompts(40, seed=21), "", "hello"]
    ids = embedder.token_ids(texts)
    width = max(len(i) for i in ids)
    id_arr = np.zeros((len(ids), width), np.int64)
    mask = np.zeros((len(ids), width), np.float32)
    for r, row in enumerate(ids):
        id_arr[r, : len(row)] = row
        id_arr[r, len(row) :] = 7  # garbage under the mask must not matter
        mask[r, : len(row)] = 1
    feats = np.zeros((len(ids), 14), np.float32)
    x = sess.run(["emb"], {"input_ids": id_arr, "attention_mask": mask, "features": feats})[0]
    assert np.array_equal(x, embedder.embed(texts))


def test_parity_check_catches_a_graph_that_drifted(exported) -> None:
    out, embedder, heads = exported
    scorer = LearnedScorer.load(out)
    drifted = Heads(heads.intent, heads.strong, TemperatureScaler(0.7), PlattScaler(0.8, 0.1))
    convs = [messages_from_payload(t) for t in sample_prompts(30, seed=3)]
    result = check_parity(scorer, embedder, drifted, convs, tol=1e-4)
    assert not result["ok"]
    with pytest.raises(ParityError, match="parity failed"):
        assert_parity(result)


def test_raw_strong_logit_matches_decision_function(exported) -> None:
    _, embedder, heads = exported
    convs = [messages_from_payload(t) for t in sample_prompts(20, seed=5)]
    texts = [scored_text(c) for c in convs]
    feats = np.array([handcrafted_features(c, t) for c, t in zip(convs, texts, strict=True)])
    X = design_matrix(embedder.embed(texts), feats)
    assert heads.strong.trees is not None
    p = heads.strong.trees.predict_proba(X)[:, 1]
    assert np.allclose(1 / (1 + np.exp(-strong_logit(heads.strong, X))), p, atol=1e-9)
