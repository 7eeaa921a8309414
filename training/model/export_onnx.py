"""Static table + fitted heads + calibrators -> ONE ONNX graph (``router.onnx``).

Inputs ``input_ids`` int64 [N, L], ``attention_mask`` float32 [N, L] and ``features``
float32 [N, F]. The graph: one Gather of int16 table rows -> exact sums (float32 MatMuls
of the 0/1 token weights) over all tokens and over the first ``head_tokens`` -> L2 norm (or
mean) in float64 -> float32 -> Concat with the features (and, when the intent head is stacked,
a logistic regression's log-probabilities on the pooled embedding: float64 MatMul + Add +
LogSoftmax) -> one ``TreeEnsembleRegressor`` holding both boosted heads (14 intent logits + 1
strong-win logit; raw scores) -> temperature softmax and Platt sigmoid. Outputs
``intent_probs`` [N, 14] and ``strong_win_rate`` [N].

Boosted heads become one tree-ensemble node in ``training.model.onnx_trees`` rather than
with skl2onnx: the calibrators need the *raw* boosting scores (skl2onnx emits
probabilities), and each split threshold is rounded down to float32 so the graph takes the
same branch as scikit-learn."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from router_service.features import FEATURE_NAMES, MAX_TOKENS
from router_service.intents import INTENTS
from router_service.learned import OUTPUT_NAMES, manifest_contract
from training.model.embed import EMBEDDING_INITIALIZER, EMBEDDING_SCALE, StaticEmbedding
from training.model.heads import MISSING_LOGIT, Heads
from training.model.onnx_trees import heads_ensemble, one_target_ensemble

OPSET = 17
ML_OPSET = 3


def _const(name: str, value: Any, dtype: Any = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype), name)


# The graph's sums are exact integers (so numpy and onnxruntime agree bit for bit whatever
# their summation order) while every partial sum fits the float type's mantissa: float32
# MatMul sums up to 2**24, float64 squared norms up to 2**53.
F32_EXACT = 2**24
F64_EXACT = 2**53


def check_exact_pooling(table_q: np.ndarray, max_tokens: int = MAX_TOKENS) -> None:
    """Raise unless pooling ``max_tokens`` rows of ``table_q`` is exact in the graph's types.

    A sum of n rows has |entry| <= n * max|value| and L2 norm <= n * (largest row norm)."""
    table = np.asarray(table_q, np.float64)
    max_sum = max_tokens * float(np.abs(table).max())
    max_norm = max_tokens * float(np.sqrt((table**2).sum(axis=1)).max())
    if max_sum >= F32_EXACT or max_norm**2 >= F64_EXACT:
        raise ValueError(
            f"pooling {max_tokens} tokens of this table is not exact (largest sum {max_sum:.3g}, "
            f"squared norm {max_norm**2:.3g}); quantise to a smaller range"
        )


def _embedding_nodes(embedder: StaticEmbedding) -> tuple[list[Any], list[Any], str]:
    """-> (nodes, initializers, name of the pooled float32 [N, out_dim] embedding), the
    arithmetic of ``StaticEmbedding.pool`` op for op.

    One Gather of the int16 rows, cast to float32. The sums over all tokens and over the
    first ``head_tokens`` are MatMuls with the token weights (``attention_mask``: 1 for a
    token, 0 for padding), then float64: LpNormalization (x / ||x||, 0 for a zero vector) or
    the mean (x * scale / count), then float32. ``check_exact_pooling`` guarantees integer
    sums and squared norms stay exact, so the result is the same as numpy's."""
    check_exact_pooling(embedder.table_q)
    mk = helper.make_node
    inits = [
        numpy_helper.from_array(embedder.table_q, EMBEDDING_INITIALIZER),
        # Read by the mean below (``training.model.embed.table_from_model_dir`` reads the
        # copy in the model's metadata, which a normalised table also keeps).
        _const(EMBEDDING_SCALE, embedder.scale, np.float64),
        _const("axis1", [1], np.int64),
        _const("flat_rows", [0, -1], np.int64),
    ]
    nodes = [
        mk("Unsqueeze", ["attention_mask", "axis1"], ["weights"]),  # [N, 1, L]
        mk("Gather", [EMBEDDING_INITIALIZER, "input_ids"], ["rows16"]),  # [N, L, D]
        mk("Cast", ["rows16"], ["rows"], to=TensorProto.FLOAT),
        mk("MatMul", ["weights", "rows"], ["all_sum"]),  # [N, 1, D]
    ]
    sums = "all_sum"
    if embedder.head_tokens > 0 or not embedder.normalize:
        inits.append(_const("axis2", [2], np.int64))
    if embedder.head_tokens > 0:
        inits += [
            _const("head_start", [0], np.int64),
            _const("head_end", [embedder.head_tokens], np.int64),
        ]
        nodes += [
            mk("Slice", ["weights", "head_start", "head_end", "axis2"], ["head_weights"]),
            mk("Slice", ["rows", "head_start", "head_end", "axis1"], ["head_rows"]),
            mk("MatMul", ["head_weights", "head_rows"], ["head_sum"]),
            mk("Concat", ["all_sum", "head_sum"], ["sums"], axis=1),  # [N, 2, D]
        ]
        sums = "sums"
    nodes.append(mk("Cast", [sums], ["sums64"], to=TensorProto.DOUBLE))
    if embedder.normalize:
        nodes.append(mk("LpNormalization", ["sums64"], ["pooled64"], axis=-1, p=2))
    else:  # mean: sum * scale / number of tokens (at least 1), per pool
        inits.append(_const("one64", 1.0, np.float64))
        count = "all_count"
        nodes.append(mk("ReduceSum", ["weights", "axis2"], [count], keepdims=1))
        if embedder.head_tokens > 0:
            count = "counts"
            nodes += [
                mk("ReduceSum", ["head_weights", "axis2"], ["head_count"], keepdims=1),
                mk("Concat", ["all_count", "head_count"], [count], axis=1),
            ]
        nodes += [
            mk("Cast", [count], ["count64"], to=TensorProto.DOUBLE),
            mk("Max", ["count64", "one64"], ["count1"]),
            mk("Mul", ["sums64", EMBEDDING_SCALE], ["scaled"]),
            mk("Div", ["scaled", "count1"], ["pooled64"]),
        ]
    nodes += [
        mk("Reshape", ["pooled64", "flat_rows"], ["pooled_flat64"]),  # [N, P * D]
        mk("Cast", ["pooled_flat64"], ["emb"], to=TensorProto.FLOAT),
    ]
    return nodes, inits, "emb"


def _tree_nodes(heads: Heads, emb: str, n_emb: int) -> tuple[list[Any], list[Any], dict[str, str]]:
    """The boosted parts of the heads -> (nodes, initializers, {"intent"|"strong": output}).

    One TreeEnsembleRegressor over ``x = [emb || features (|| stacked log-probabilities)]``
    holds every boosted head; the calibrators are affine in the raw scores, so they are
    folded into its leaves (intent: 1 / temperature; strong-win: Platt's a and b)."""
    intent_trees, strong_trees = heads.intent is not None, heads.strong.kind == "hgb"
    if not (intent_trees or strong_trees):
        return [], [], {}
    mk = helper.make_node
    nodes: list[Any] = []
    inits: list[Any] = []
    x_inputs = [emb, "features"]
    if intent_trees and heads.stack is not None:  # stacked log-probabilities, float64
        inits += [
            _const("stack_w", heads.stack.coef.T, np.float64),
            _const("stack_b", heads.stack.intercept.reshape(1, -1), np.float64),
        ]
        nodes += [
            mk("Cast", [emb], ["emb64"], to=TensorProto.DOUBLE),
            mk("Gemm", ["emb64", "stack_w", "stack_b"], ["stack_z"]),
            mk("LogSoftmax", ["stack_z"], ["stack_lp64"], axis=1),
            mk("Cast", ["stack_lp64"], ["stack_lp"], to=TensorProto.FLOAT),
        ]
        x_inputs.append("stack_lp")
    ens = heads_ensemble(heads)
    n_int = len(INTENTS) if intent_trees else 0
    scale = np.full(ens.n_targets, 1.0 / heads.temperature.temperature)
    offset = np.zeros(ens.n_targets)
    if strong_trees:
        scale[n_int], offset[n_int] = heads.platt.a, heads.platt.b
    ens.calibrate(scale, offset)
    nodes += [mk("Concat", x_inputs, ["x"], axis=1), ens.node("x", "z_trees")]
    if intent_trees and strong_trees:
        inits.append(_const("tree_split", [n_int, 1], np.int64))
        nodes.append(mk("Split", ["z_trees", "tree_split"], ["z_intent", "z_win"], axis=1))
        return nodes, inits, {"intent": "z_intent", "strong": "z_win"}
    return nodes, inits, {"intent" if intent_trees else "strong": "z_trees"}


def _linear_nodes(heads: Heads, emb: str) -> tuple[list[Any], list[Any], dict[str, str]]:
    """The linear parts of the heads -> one float32 Gemm on the pooled embedding, split into
    the intent logits (divided by the temperature; ``MISSING_LOGIT`` for unseen classes)
    and the strong-win logit(s), with Platt scaling applied to the raw score."""
    mk = helper.make_node
    weights, biases, sizes, names = [], [], [], []
    if heads.intent is None:
        stack = heads.stack
        assert stack is not None
        t = heads.temperature.temperature
        w = np.zeros((stack.n_emb, len(INTENTS)))
        b = np.full(len(INTENTS), MISSING_LOGIT)
        w[:, stack.classes] = stack.coef.T
        b[stack.classes] = stack.intercept
        weights.append(w / t)
        biases.append(b / t)
        sizes.append(len(INTENTS))
        names.append("z_intent")
    strong = heads.strong
    if strong.kind in ("linear", "gain"):
        assert strong.linear is not None
        weights.append(strong.linear.coef.T)
        biases.append(strong.linear.intercept)
        sizes.append(strong.linear.n_out)
        names.append("strong_l")
    if not weights:
        return [], [], {}
    inits = [
        _const("lin_w", np.concatenate(weights, axis=1)),
        _const("lin_b", np.concatenate(biases).reshape(1, -1)),
        _const("lin_split", sizes, np.int64),
        _const("platt_a", [[heads.platt.a]]),
        _const("platt_b", [[heads.platt.b]]),
    ]
    nodes = [mk("Gemm", [emb, "lin_w", "lin_b"], ["lin_z"])]
    if len(names) > 1:
        nodes.append(mk("Split", ["lin_z", "lin_split"], names, axis=1))
    else:
        nodes.append(mk("Identity", ["lin_z"], names))
    out = {"intent": "z_intent"} if heads.intent is None else {}
    if strong.kind == "linear":
        raw = "strong_l"
    elif strong.kind == "gain":  # sigmoid(l_strong) - sigmoid(l_weak)
        inits.append(_const("gain_split", [1, 1], np.int64))
        nodes += [
            mk("Sigmoid", ["strong_l"], ["strong_p"]),
            mk("Split", ["strong_p", "gain_split"], ["p_strong_right", "p_weak_right"], axis=1),
            mk("Sub", ["p_strong_right", "p_weak_right"], ["gain"]),
        ]
        raw = "gain"
    else:
        return nodes, inits, out
    nodes += [
        mk("Mul", [raw, "platt_a"], ["win_scaled"]),
        mk("Add", ["win_scaled", "platt_b"], ["z_win"]),
    ]
    out["strong"] = "z_win"
    return nodes, inits, out


def _stack_nodes(heads: Heads, emb: str) -> tuple[list[Any], list[Any], dict[str, str]]:
    """The "stack" strong head -> its float64 Gemm (the gain logits, cast to float32 as the
    reference rounds them), concatenated with the features, into a one-target tree ensemble
    with Platt's a and b folded into its leaves."""
    stacked = heads.strong.stacked
    if heads.strong.kind != "stack" or stacked is None:
        return [], [], {}
    mk = helper.make_node
    ens = one_target_ensemble(stacked.trees)
    ens.calibrate(np.array([heads.platt.a]), np.array([heads.platt.b]))
    inits = [
        _const("gain_w", stacked.linear.coef.T, np.float64),
        _const("gain_b", stacked.linear.intercept.reshape(1, -1), np.float64),
    ]
    nodes = [
        mk("Cast", [emb], ["gain_emb64"], to=TensorProto.DOUBLE),
        mk("Gemm", ["gain_emb64", "gain_w", "gain_b"], ["gain_z64"]),
        mk("Cast", ["gain_z64"], ["gain_z"], to=TensorProto.FLOAT),
        mk("Concat", ["gain_z", "features"], ["gain_x"], axis=1),
        ens.node("gain_x", "z_win"),
    ]
    return nodes, inits, {"strong": "z_win"}


def build_graph(embedder: StaticEmbedding, heads: Heads) -> onnx.ModelProto:
    """Embedder + heads -> the complete router graph (few nodes: onnxruntime spends ~1-2 µs
    per node on one row, as much as the arithmetic of most of them)."""
    n_int, n_feat = len(INTENTS), len(FEATURE_NAMES)
    nodes, inits, emb = _embedding_nodes(embedder)
    inits.append(_const("flat", [-1], np.int64))
    mk = helper.make_node
    tree_nodes, tree_inits, tree_out = _tree_nodes(heads, emb, embedder.out_dim)
    lin_nodes, lin_inits, lin_out = _linear_nodes(heads, emb)
    stack_nodes, stack_inits, stack_out = _stack_nodes(heads, emb)
    logits = {**tree_out, **lin_out, **stack_out}
    nodes += tree_nodes + lin_nodes + stack_nodes
    inits += tree_inits + lin_inits + stack_inits
    nodes += [
        mk("Softmax", [logits["intent"]], [OUTPUT_NAMES[0]], axis=1),
        mk("Sigmoid", [logits["strong"]], ["p_win"]),
        mk("Reshape", ["p_win", "flat"], [OUTPUT_NAMES[1]]),
    ]
    # Constants no node reads (Platt's a and b once folded into tree leaves, the embedding
    # scale of an unscaled table...) would only make onnxruntime warn at every load.
    used = {name for node in nodes for name in node.input}
    inits = [t for t in inits if t.name in used]
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
    helper.set_model_props(model, {EMBEDDING_SCALE: repr(float(embedder.scale))})
    onnx.checker.check_model(model)
    return model


def save_model(model: onnx.ModelProto, embedder: StaticEmbedding, out_dir: Path) -> dict[str, Any]:
    """Graph + tokenizer -> files in ``out_dir``; returns size and content hash."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    (out_dir / "router.onnx").write_bytes(data)
    embedder.tokenizer.save(str(out_dir / "tokenizer.json"))
    tree_ids = [
        t
        for node in model.graph.node
        if node.op_type == "TreeEnsembleRegressor"
        for a in node.attribute
        if a.name == "nodes_treeids"
        for t in a.ints
    ]
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
    selection: dict[str, Any] | None = None,
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
                "type": (
                    "LogisticRegression"
                    if heads.intent is None
                    else "HistGradientBoostingClassifier"
                ),
                "stacked": (
                    "LogisticRegression log-probabilities"
                    if heads.intent is not None and heads.stack
                    else None
                ),
                "rounds": int(heads.intent.n_iter_) if heads.intent is not None else None,
                "classes_seen": [
                    INTENTS[int(c)]
                    for c in (
                        heads.intent.classes_ if heads.intent is not None else heads.stack.classes  # type: ignore[union-attr]
                    )
                ],
            },
            "strong_win": {
                "type": heads.strong.kind,
                "model": {
                    "hgb": "HistGradientBoostingClassifier",
                    "linear": "LogisticRegression",
                    "gain": "two LogisticRegressions: P(strong right) - P(weak right)",
                    "stack": "HistGradientBoostingRegressor of the gain over two "
                    "LogisticRegressions' logits (cross-fitted by source) and the features",
                }[heads.strong.kind],
                "rounds": heads.strong.rounds,
                **(
                    {
                        "trees_only_rows": st.trees_only_rows,
                        "trees_only_weight": st.trees_only_weight,
                    }
                    if (st := heads.strong.stacked) is not None and st.trees_only_rows
                    else {}
                ),
            },
            "n_trees": saved["n_trees"],
            "n_tree_nodes": saved["n_tree_nodes"],
        },
        "calibration": {
            "intent": {"method": "temperature", "temperature": heads.temperature.temperature},
            "strong_win": {"method": "platt", "a": heads.platt.a, "b": heads.platt.b},
        },
        # Applied by the serving scorer after the graph (router_service.intent_blend).
        "intent_blend": heads.blend.to_manifest() if heads.blend is not None else None,
        "training_data": data,
        "selection": selection,
        "metrics": metrics,
        "parity": parity,
        "onnx_bytes": saved["onnx_bytes"],
        "onnx_sha256": saved["onnx_sha256"],
    }
