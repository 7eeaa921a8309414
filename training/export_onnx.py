"""Static table + fitted heads + calibrators -> ONE ONNX graph (``router.onnx``).

Inputs ``input_ids`` int64 [N, L], ``attention_mask`` float32 [N, L] and ``features``
float32 [N, F]. The graph: padding -> the table's zero row; Gather on the int16 table ->
exact int32 sums -> L2 norm (or mean) in float64 -> float32, over all tokens and over the
first ``head_tokens`` -> Concat with the features (and, when the intent head is stacked,
a logistic regression's log-probabilities on the pooled embedding: float64 MatMul + Add +
LogSoftmax) -> one ``TreeEnsembleRegressor`` holding both boosted heads (14 intent logits + 1
strong-win logit; raw scores) -> temperature softmax and Platt sigmoid. Outputs
``intent_probs`` [N, 14] and ``strong_win_rate`` [N].

The heads are converted here rather than with skl2onnx because the calibrators need the
*raw* boosting scores (skl2onnx emits probabilities) and because each split threshold is
rounded *down* to float32: for a float32 input ``x <= float32_down(t)`` holds exactly when
``x <= t`` does in float64, so the graph takes the same branch as scikit-learn."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.ensemble import HistGradientBoostingClassifier

from router_service.features import FEATURE_NAMES
from router_service.intents import INTENTS
from router_service.learned import OUTPUT_NAMES, manifest_contract
from training.embed import EMBEDDING_INITIALIZER, EMBEDDING_SCALE, StaticEmbedding
from training.heads import MISSING_LOGIT, Heads

OPSET = 17
ML_OPSET = 3


def float32_down(values: np.ndarray) -> np.ndarray:
    """float64 thresholds -> the largest float32 not above each (exact ``<=`` for f32 x)."""
    v64 = np.asarray(values, np.float64)
    v32 = v64.astype(np.float32)
    too_big = v32.astype(np.float64) > v64
    v32[too_big] = np.nextafter(v32[too_big], np.float32(-np.inf))
    return v32


class _Ensemble:
    """Accumulates trees of several HGB models into one TreeEnsembleRegressor."""

    def __init__(self, n_targets: int) -> None:
        self.n_targets = n_targets
        self.base = np.zeros(n_targets, np.float64)
        self.nodes: dict[str, list[Any]] = {
            k: []
            for k in (
                "treeids",
                "nodeids",
                "featureids",
                "modes",
                "values",
                "truenodeids",
                "falsenodeids",
                "missing_value_tracks_true",
            )
        }
        self.targets: dict[str, list[Any]] = {
            k: [] for k in ("treeids", "nodeids", "ids", "weights")
        }
        self.n_trees = 0

    def add_model(self, model: HistGradientBoostingClassifier, target_of: list[int]) -> None:
        """``target_of[k]``: output column of the model's k-th tree per iteration."""
        baseline = np.asarray(model._baseline_prediction, np.float64).reshape(-1)
        for k, col in enumerate(target_of):
            self.base[col] += baseline[k]
        for trees in model._predictors:
            for k, predictor in enumerate(trees):
                self._add_tree(predictor.nodes, target_of[k])

    def _add_tree(self, nodes: np.ndarray, target: int) -> None:
        if np.any(nodes["is_categorical"]):
            raise ValueError("categorical splits are not supported by the exporter")
        tid = self.n_trees
        self.n_trees += 1
        thresholds = float32_down(nodes["num_threshold"])
        for i, node in enumerate(nodes):
            n = self.nodes
            n["treeids"].append(tid)
            n["nodeids"].append(i)
            if node["is_leaf"]:
                n["featureids"].append(0)
                n["modes"].append("LEAF")
                n["values"].append(0.0)
                n["truenodeids"].append(0)
                n["falsenodeids"].append(0)
                n["missing_value_tracks_true"].append(0)
                t = self.targets
                t["treeids"].append(tid)
                t["nodeids"].append(i)
                t["ids"].append(target)
                t["weights"].append(float(node["value"]))
            else:
                n["featureids"].append(int(node["feature_idx"]))
                n["modes"].append("BRANCH_LEQ")
                n["values"].append(float(thresholds[i]))
                n["truenodeids"].append(int(node["left"]))
                n["falsenodeids"].append(int(node["right"]))
                n["missing_value_tracks_true"].append(int(node["missing_go_to_left"]))

    def node(self, inp: str, out: str) -> onnx.NodeProto:
        attrs: dict[str, Any] = {f"nodes_{k}": v for k, v in self.nodes.items()}
        attrs.update({f"target_{k}": v for k, v in self.targets.items()})
        return helper.make_node(
            "TreeEnsembleRegressor",
            [inp],
            [out],
            domain="ai.onnx.ml",
            n_targets=self.n_targets,
            aggregate_function="SUM",
            post_transform="NONE",
            **attrs,
        )


def heads_ensemble(heads: Heads) -> _Ensemble:
    """Both heads -> one ensemble: columns 0..13 intent logits, column 14 strong-win logit."""
    ens = _Ensemble(len(INTENTS) + 1)
    classes = [int(c) for c in heads.intent.classes_]
    for col in set(range(len(INTENTS))) - set(classes):
        ens.base[col] = MISSING_LOGIT
    # Two classes: sklearn keeps one logit (for classes_[1]); classes_[0] stays at 0.
    ens.add_model(heads.intent, [classes[1]] if len(classes) == 2 else classes)
    ens.add_model(heads.strong, [len(INTENTS)])
    return ens


def _const(name: str, value: Any, dtype: Any = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def _pool_nodes(prefix: str, ids: str, normalize: bool) -> tuple[list[Any], str]:
    """Pooling of the int16 table rows for ``ids`` (padding already mapped to the zero row)
    -> (nodes, float32 output), the arithmetic of ``StaticEmbedding.pool`` op for op.

    Sums are int32 (exact: no summation-order effects); the norm's sum of squares is int64;
    the rest is element-wise float64 (correctly rounded in numpy and onnxruntime alike)."""
    mk = helper.make_node
    p = prefix
    nodes = [
        mk("Gather", [EMBEDDING_INITIALIZER, ids], [f"{p}rows16"]),
        mk("Cast", [f"{p}rows16"], [f"{p}rows"], to=TensorProto.INT32),
        mk("ReduceSum", [f"{p}rows", "axis1"], [f"{p}sum"], keepdims=0),
        mk("Cast", [f"{p}sum"], [f"{p}sum64"], to=TensorProto.DOUBLE),
    ]
    if normalize:
        nodes += [
            mk("Cast", [f"{p}sum"], [f"{p}sumi64"], to=TensorProto.INT64),
            mk("Mul", [f"{p}sumi64", f"{p}sumi64"], [f"{p}sq"]),
            mk("ReduceSum", [f"{p}sq", "axis1"], [f"{p}sqsum"], keepdims=1),
            mk("Cast", [f"{p}sqsum"], [f"{p}sqsum64"], to=TensorProto.DOUBLE),
            mk("Sqrt", [f"{p}sqsum64"], [f"{p}norm"]),
            mk("Max", [f"{p}norm", "eps64"], [f"{p}norm1"]),
            mk("Div", [f"{p}sum64", f"{p}norm1"], [f"{p}pooled64"]),
        ]
    else:
        nodes += [
            mk("Mul", [f"{p}sum64", EMBEDDING_SCALE], [f"{p}scaled"]),
            mk("Div", [f"{p}scaled", f"{p}count1"], [f"{p}pooled64"]),
        ]
    nodes.append(mk("Cast", [f"{p}pooled64"], [f"{p}pooled"], to=TensorProto.FLOAT))
    return nodes, f"{p}pooled"


def _count_nodes(prefix: str, mask: str) -> list[Any]:
    """Number of real tokens per row (>= 1), float64: the mean's divisor."""
    mk = helper.make_node
    return [
        mk("Cast", [mask], [f"{prefix}mask64"], to=TensorProto.DOUBLE),
        mk("ReduceSum", [f"{prefix}mask64", "axis1"], [f"{prefix}count"], keepdims=1),
        mk("Max", [f"{prefix}count", "one64"], [f"{prefix}count1"]),
    ]


def build_graph(embedder: StaticEmbedding, heads: Heads) -> onnx.ModelProto:
    """Embedder + heads -> the complete router graph."""
    n_int, n_feat = len(INTENTS), len(FEATURE_NAMES)
    inits = [
        numpy_helper.from_array(embedder.table_q, EMBEDDING_INITIALIZER),
        _const(EMBEDDING_SCALE, embedder.scale, np.float64),
        _const("zero_id", embedder.zero_id, np.int64),
        _const("zero_f", 0.0),
        _const("axis1", [1], np.int64),
        _const("axis2", [2], np.int64),
        _const("one64", 1.0, np.float64),
        _const("eps64", 1e-12, np.float64),
        _const("inv_temperature", 1.0 / heads.temperature.temperature),
        _const("platt_a", heads.platt.a),
        _const("platt_b", heads.platt.b),
        _const("slice_int_start", [0], np.int64),
        _const("slice_int_end", [n_int], np.int64),
        _const("slice_win_start", [n_int], np.int64),
        _const("slice_win_end", [n_int + 1], np.int64),
        _const("flat", [-1], np.int64),
    ]
    mk = helper.make_node
    nodes = [  # masked positions -> the zero row, so padding adds nothing to the sums
        mk("Greater", ["attention_mask", "zero_f"], ["is_token"]),
        mk("Where", ["is_token", "input_ids", "zero_id"], ["ids"]),
    ]
    if not embedder.normalize:
        nodes += _count_nodes("all_", "attention_mask")
    pool_nodes, pooled = _pool_nodes("all_", "ids", embedder.normalize)
    nodes += pool_nodes
    concat_inputs = [pooled]
    if embedder.head_tokens > 0:
        inits += [
            _const("head_start", [0], np.int64),
            _const("head_end", [embedder.head_tokens], np.int64),
        ]
        nodes.append(mk("Slice", ["ids", "head_start", "head_end", "axis1"], ["head_ids"]))
        if not embedder.normalize:
            nodes.append(
                mk("Slice", ["attention_mask", "head_start", "head_end", "axis1"], ["head_mask"])
            )
            nodes += _count_nodes("head_", "head_mask")
        head_nodes, head_pooled = _pool_nodes("head_", "head_ids", embedder.normalize)
        nodes += head_nodes
        concat_inputs.append(head_pooled)
    ens = heads_ensemble(heads)
    inits.append(_const("ensemble_bias", ens.base.reshape(1, -1)))
    x_inputs = [*concat_inputs, "features"]
    if heads.stack is not None:  # the stacked linear model's log-probabilities, float64
        inits += [
            _const("stack_w", heads.stack.coef.T, np.float64),
            _const("stack_b", heads.stack.intercept.reshape(1, -1), np.float64),
        ]
        nodes += [
            mk("Concat", concat_inputs, ["emb"], axis=1),
            mk("Cast", ["emb"], ["emb64"], to=TensorProto.DOUBLE),
            mk("MatMul", ["emb64", "stack_w"], ["stack_z"]),
            mk("Add", ["stack_z", "stack_b"], ["stack_zb"]),
            mk("LogSoftmax", ["stack_zb"], ["stack_lp64"], axis=1),
            mk("Cast", ["stack_lp64"], ["stack_lp"], to=TensorProto.FLOAT),
        ]
        x_inputs.append("stack_lp")
    nodes += [
        mk("Concat", x_inputs, ["x"], axis=1),
        ens.node("x", "raw_trees"),
        # Baselines as an explicit Add: onnxruntime leaves a target that no tree writes to at
        # 0 even with base_values, and absent intents must stay at MISSING_LOGIT.
        mk("Add", ["raw_trees", "ensemble_bias"], ["raw"]),
        mk("Slice", ["raw", "slice_int_start", "slice_int_end", "axis1"], ["z_intent"]),
        mk("Mul", ["z_intent", "inv_temperature"], ["z_scaled"]),
        mk("Softmax", ["z_scaled"], [OUTPUT_NAMES[0]], axis=1),
        mk("Slice", ["raw", "slice_win_start", "slice_win_end", "axis1"], ["z_win"]),
        mk("Mul", ["z_win", "platt_a"], ["z_win_a"]),
        mk("Add", ["z_win_a", "platt_b"], ["z_win_ab"]),
        mk("Sigmoid", ["z_win_ab"], ["p_win"]),
        mk("Reshape", ["p_win", "flat"], [OUTPUT_NAMES[1]]),
    ]
    graph = helper.make_graph(
        nodes,
        "learned_router",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "L"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, ["N", "L"]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", n_feat]),
        ],
        [
            helper.make_tensor_value_info(OUTPUT_NAMES[0], TensorProto.FLOAT, ["N", n_int]),
            helper.make_tensor_value_info(OUTPUT_NAMES[1], TensorProto.FLOAT, ["N"]),
        ],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="learned-router",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save_model(model: onnx.ModelProto, embedder: StaticEmbedding, out_dir: Path) -> dict[str, Any]:
    """Graph + tokenizer -> files in ``out_dir``; returns size and content hash."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    (out_dir / "router.onnx").write_bytes(data)
    embedder.tokenizer.save(str(out_dir / "tokenizer.json"))
    trees = next(n for n in model.graph.node if n.op_type == "TreeEnsembleRegressor")
    tree_ids = next(a.ints for a in trees.attribute if a.name == "nodes_treeids")
    return {
        "onnx_bytes": len(data),
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "n_trees": len(set(tree_ids)),
        "n_tree_nodes": len(tree_ids),
    }


def build_manifest(
    *,
    model_version: str,
    embedder: StaticEmbedding,
    heads: Heads,
    saved: dict[str, Any],
    data: dict[str, Any],
    metrics: dict[str, float],
    parity: dict[str, Any],
    config_name: str,
    created_at: str,
) -> dict[str, Any]:
    """Everything serving must check, and everything a reader wants to know, as JSON."""
    return {
        "format": 1,
        "model_version": model_version,
        "created_at": created_at,
        "config": config_name,
        **manifest_contract(),
        "input_spec": {
            "input_ids": "int64 [N, L]: tokenizer.json ids of scored_text, no special tokens",
            "attention_mask": "float32 [N, L]: 1 for real tokens, 0 for padding",
            "features": f"float32 [N, {len(FEATURE_NAMES)}]: handcrafted_features, in order",
        },
        "output_spec": {
            "intent_probs": "float32 [N, 14]: calibrated P(intent), columns in intents order",
            "strong_win_rate": "float32 [N]: calibrated P(strong tier materially better)",
        },
        "files": {"model": "router.onnx", "tokenizer": "tokenizer.json"},
        "embedder": {
            "type": "static",
            "source": embedder.source,
            "dims": embedder.dim,
            "vocab_size": int(embedder.zero_id),
            "pooling": "mean",
            "head_tokens": embedder.head_tokens,
            "normalize": embedder.normalize,
            "table_dtype": "int16",
            "table_scale": embedder.scale,
            "fingerprint": embedder.fingerprint,
        },
        "heads": {
            "intent": {
                "type": "HistGradientBoostingClassifier",
                "stacked": "LogisticRegression log-probabilities" if heads.stack else None,
                "rounds": int(heads.intent.n_iter_),
                "classes_seen": [INTENTS[int(c)] for c in heads.intent.classes_],
            },
            "strong_win": {
                "type": "HistGradientBoostingClassifier",
                "rounds": int(heads.strong.n_iter_),
            },
            "n_trees": saved["n_trees"],
            "n_tree_nodes": saved["n_tree_nodes"],
        },
        "calibration": {
            "intent": {"method": "temperature", "temperature": heads.temperature.temperature},
            "strong_win": {"method": "platt", "a": heads.platt.a, "b": heads.platt.b},
        },
        "training_data": data,
        "metrics": metrics,
        "parity": parity,
        "onnx_bytes": saved["onnx_bytes"],
        "onnx_sha256": saved["onnx_sha256"],
    }
