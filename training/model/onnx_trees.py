"""Fitted scikit-learn boosted heads -> one ONNX ``TreeEnsembleRegressor`` node.

Both heads (14 intent logits + 1 strong-win logit; raw scores, so the calibrators can be
applied in the graph) go into a single node. Each split threshold is rounded *down* to
float32: for a float32 input ``x <= float32_down(t)`` holds exactly when ``x <= t`` does in
float64, so onnxruntime takes the same branch as scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper

from router_service.intents import INTENTS
from training.model.heads import MISSING_LOGIT, Heads


def float32_down(values: np.ndarray) -> np.ndarray:
    """float64 thresholds -> the largest float32 not above each (exact ``<=`` for f32 x)."""
    v64 = np.asarray(values, np.float64)
    v32 = v64.astype(np.float32)
    too_big = v32.astype(np.float64) > v64
    v32[too_big] = np.nextafter(v32[too_big], np.float32(-np.inf))
    return v32


# A tree that is one leaf of value 0, in the fields of scikit-learn's predictor nodes that
# ``_Ensemble._add_tree`` reads.
_SINGLE_LEAF = np.array(
    [(0.0, True, False, 0.0, 0, 0, 0, False)],
    dtype=[
        ("value", "f8"),
        ("is_leaf", "?"),
        ("is_categorical", "?"),
        ("num_threshold", "f8"),
        ("feature_idx", "i8"),
        ("left", "i8"),
        ("right", "i8"),
        ("missing_go_to_left", "?"),
    ],
)


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

    def add_model(self, model: Any, target_of: list[int]) -> None:
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

    def calibrate(self, scale: np.ndarray, offset: np.ndarray) -> None:
        """Fold an affine map per target into the ensemble: ``z -> scale * z + offset``."""
        t = self.targets
        t["weights"] = [w * float(scale[i]) for w, i in zip(t["weights"], t["ids"], strict=True)]
        self.base = self.base * scale + offset

    def _cover_all_targets(self) -> None:
        """onnxruntime adds ``base_values`` only to targets some leaf writes to: give every
        other target a one-leaf tree of weight 0 (absent intents stay at their baseline)."""
        for target in sorted(set(range(self.n_targets)) - set(self.targets["ids"])):
            self._add_tree(_SINGLE_LEAF, target)

    def node(self, inp: str, out: str) -> onnx.NodeProto:
        self._cover_all_targets()
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
            base_values=[float(v) for v in self.base],
            **attrs,
        )


def heads_ensemble(heads: Heads) -> _Ensemble:
    """The boosted heads -> one ensemble: the intent logits (columns 0..13, when the intent
    head is boosted), then the strong-win logit (when that head is)."""
    intent_trees, strong_trees = heads.intent is not None, heads.strong.kind == "hgb"
    ens = _Ensemble(len(INTENTS) * intent_trees + strong_trees)
    if heads.intent is not None:
        classes = [int(c) for c in heads.intent.classes_]
        for col in set(range(len(INTENTS))) - set(classes):
            ens.base[col] = MISSING_LOGIT
        # Two classes: sklearn keeps one logit (for classes_[1]); classes_[0] stays at 0.
        ens.add_model(heads.intent, [classes[1]] if len(classes) == 2 else classes)
    if heads.strong.trees is not None:
        ens.add_model(heads.strong.trees, [ens.n_targets - 1])
    return ens


def one_target_ensemble(model: Any) -> _Ensemble:
    """One fitted single-output HGB (e.g. the "stack" strong head's regressor) -> its
    ensemble, target 0 (uncalibrated: ``calibrate`` folds an affine map in)."""
    ens = _Ensemble(1)
    ens.add_model(model, [0])
    return ens
