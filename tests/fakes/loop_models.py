"""Small but real model directories for the model-loop tests: a hand-built ONNX graph
(mean-pooled token embeddings || hand-crafted features -> linear heads -> softmax /
sigmoid), a word-level ``tokenizer.json`` and a ``manifest.json``. ``LearnedScorer.load``
accepts them like a trained model; ``intent`` and ``strong_logit`` choose what they say,
so two versions are told apart by their outputs as well as by their version string."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, pre_tokenizers

from router_service.features import (
    FEATURE_NAMES,
)
from router_service.intents import INTENTS
from router_service.learned import INPUT_NAMES, OUTPUT_NAMES, manifest_contract

WORDS = ["hi", "hello", "code", "python", "prove", "math", "write", "story", "the", "a"]
DIM = 4


def _tokenizer() -> Tokenizer:
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def _graph(intent: str, strong_logit: float, seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    n_feat = len(FEATURE_NAMES)
    table = rng.normal(0, 0.1, (len(WORDS) + 1, DIM)).astype(np.float32)
    w_int = rng.normal(0, 0.05, (DIM + n_feat, len(INTENTS))).astype(np.float32)
    b_int = np.zeros(len(INTENTS), np.float32)
    b_int[INTENTS.index(intent)] = 4.0
    w_win = rng.normal(0, 0.05, (DIM + n_feat, 1)).astype(np.float32)
    b_win = np.array([strong_logit], np.float32)
    inits = [
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(w_int, "w_int"),
        numpy_helper.from_array(b_int, "b_int"),
        numpy_helper.from_array(w_win, "w_win"),
        numpy_helper.from_array(b_win, "b_win"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([-1], np.int64), "flat"),
        numpy_helper.from_array(np.array([1e-6], np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["emb"]),  # [N, L, D]
        helper.make_node("Unsqueeze", ["attention_mask", "flat"], ["mask3"]),  # [N, L, 1]
        helper.make_node("Mul", ["emb", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["attention_mask", "axis1"], ["count"], keepdims=1),
        helper.make_node("Add", ["count", "eps"], ["count_eps"]),
        helper.make_node("Div", ["summed", "count_eps"], ["pooled"]),  # [N, D]
        helper.make_node("Concat", ["pooled", "features"], ["x"], axis=1),
        helper.make_node("MatMul", ["x", "w_int"], ["li"]),
        helper.make_node("Add", ["li", "b_int"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["intent_probs"], axis=1),
        helper.make_node("MatMul", ["x", "w_win"], ["lw"]),
        helper.make_node("Add", ["lw", "b_win"], ["lw_b"]),
        helper.make_node("Sigmoid", ["lw_b"], ["win2"]),
        helper.make_node("Reshape", ["win2", "flat"], ["strong_win_rate"]),
    ]
    ids, mask, feats = INPUT_NAMES
    graph = helper.make_graph(
        nodes,
        "loop-test-router",
        [
            helper.make_tensor_value_info(ids, TensorProto.INT64, ["N", "L"]),
            helper.make_tensor_value_info(mask, TensorProto.FLOAT, ["N", "L"]),
            helper.make_tensor_value_info(feats, TensorProto.FLOAT, ["N", n_feat]),
        ],
        [
            helper.make_tensor_value_info(OUTPUT_NAMES[0], TensorProto.FLOAT, ["N", len(INTENTS)]),
            helper.make_tensor_value_info(OUTPUT_NAMES[1], TensorProto.FLOAT, ["N"]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def manifest(version: str) -> dict:
    return {"model_version": version, **manifest_contract()}


def write_model(
    path: Path,
    version: str,
    *,
    intent: str = "chitchat",
    strong_logit: float = -3.0,
    seed: int = 0,
) -> Path:
    """A loadable model dir at ``path`` (created) that answers ``intent`` with a
    ``strong_win_rate`` near ``sigmoid(strong_logit)``."""
    path.mkdir(parents=True, exist_ok=True)
    onnx.save(_graph(intent, strong_logit, seed), str(path / "router.onnx"))
    _tokenizer().save(str(path / "tokenizer.json"))
    (path / "manifest.json").write_text(json.dumps(manifest(version)), encoding="utf-8")
    return path


_TRAINED: list[Path] = []


def trained_champion() -> Path:
    """A real trained model dir, read-only for callers (copy it before serving it): the
    committed ``models/default`` when it loads, else a ``tiny`` model trained once per test
    session into a temporary directory."""
    if _TRAINED:
        return _TRAINED[0]
    from router_service.learned import LearnedScorer
    from training.config import REPO_ROOT, load_config
    from training.train import run_training

    committed = REPO_ROOT / "models" / "default"
    try:
        LearnedScorer.load(committed)
        _TRAINED.append(committed)
        return committed
    except Exception:
        pass
    tmp = Path(tempfile.mkdtemp(prefix="loop-champion-"))
    atexit.register(shutil.rmtree, tmp, True)
    cfg = load_config(
        "tiny", out_dir=str(tmp / "model"), mlflow=False, report_dir=str(tmp / "reports")
    )
    out = run_training(cfg).out_dir
    assert out is not None
    _TRAINED.append(out)
    return out


# Three distinguishable model versions for the reload tests: each answers one intent.
INTENT_OF = {"v1": "chitchat", "v2": "coding", "v3": "math"}


def build_versions(root: Path) -> dict[str, Path]:
    """``root/<version>`` model dirs for every version of ``INTENT_OF``."""
    return {
        v: write_model(root / v, v, intent=i, seed=n) for n, (v, i) in enumerate(INTENT_OF.items())
    }


def loose_retrain_args(
    serve_dir: Path, work_dir: Path, log_args: list[str], mlflow_uri: str
) -> list[str]:
    """``learned-router train --from-feedback`` on the tiny config over every logged request
    (judge scores below 5 -> strong should have answered), with a gate loose enough that
    any sane candidate is promoted: for tests of the loop's mechanics; the gate's own
    decisions are tested in test_gate.py / test_retrain.py."""
    return [
        "train",
        "--from-feedback",
        "--config",
        "tiny",
        "--serve-dir",
        str(serve_dir),
        "--work-dir",
        str(work_dir),
        *log_args,
        "--since",
        "2000-01-01",
        "--score-bar",
        "5",
        "--mlflow-uri",
        mlflow_uri,
        "--intent-tolerance",
        "1",
        "--apgr-tolerance",
        "1",
        "--p50-budget-us",
        "1e9",
        "--p99-budget-us",
        "1e9",
    ]
