"""Messages -> ``Scores`` from the exported model (``router.onnx`` + ``tokenizer.json``).

``LearnedScorer.load(model_dir)`` checks the model directory (files present, manifest in
agreement with this code's intents, feature names and version, text budget, ONNX inputs/outputs as
declared) and raises ``ModelLoadError`` naming the path and the reason otherwise.
``score`` runs: ``scored_text`` -> hand-crafted features -> WordPiece ids (truncated at
``MAX_TOKENS``) -> one onnxruntime call (single thread, sequential) -> calibrated intent
probabilities and ``strong_win_rate``; when the manifest carries an ``intent_blend``, the
graph's intent probabilities are blended with the heuristic's (``router_service.intent_blend``).
Only onnxruntime, tokenizers and numpy are used."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from router_service.decision import Scores
from router_service.features import (
    CONTEXT_CHARS,
    FEATURE_NAMES,
    FEATURES_VERSION,
    FOLLOW_UP_CHARS,
    HEAD_CHARS,
    MAX_TOKENS,
    TAIL_CHARS,
    handcrafted_features,
    scored_text,
)
from router_service.intent_blend import NON_ASCII_FEATURE, IntentBlend
from router_service.intents import INTENTS
from router_service.wordpiece import FastWordPiece

MODEL_FILE = "router.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"
INPUT_NAMES = ("input_ids", "attention_mask", "features")
OUTPUT_NAMES = ("intent_probs", "strong_win_rate")
BATCH = 64  # rows per onnxruntime call in ``score_batch``


class ModelLoadError(Exception):
    """The model directory cannot be used; the message names the path and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"cannot load learned model from {path}: {reason}")
        self.path = str(path)
        self.reason = reason


def manifest_contract() -> dict[str, Any]:
    """The manifest fields a model must carry, with this code's values, to be served.

    Exporters write them (``training.model.export_onnx``); ``LearnedScorer.load`` checks them."""
    return {
        "intents": list(INTENTS),
        "feature_names": list(FEATURE_NAMES),
        "features_version": FEATURES_VERSION,
        "text_budget": {
            "head_chars": HEAD_CHARS,
            "tail_chars": TAIL_CHARS,
            "max_tokens": MAX_TOKENS,
            "follow_up_chars": FOLLOW_UP_CHARS,
            "context_chars": CONTEXT_CHARS,
        },
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
    }


def _check_manifest(path: Path, manifest: Any) -> None:
    if not isinstance(manifest, dict):
        raise ModelLoadError(path, "manifest mismatch: manifest.json is not a JSON object")
    for key, want in manifest_contract().items():
        have = manifest.get(key)
        if have != want:
            raise ModelLoadError(
                path, f"manifest mismatch: {key} is {have!r}, this router expects {want!r}"
            )
    if not isinstance(manifest.get("model_version"), str) or not manifest["model_version"]:
        raise ModelLoadError(path, "manifest mismatch: model_version missing")
    try:
        IntentBlend.from_manifest(manifest.get("intent_blend"))
    except ValueError as exc:
        raise ModelLoadError(path, f"manifest mismatch: {exc}") from None


class LearnedScorer:
    """The learned, calibrated scorer (name ``"learned"``, version from the manifest)."""

    name = "learned"

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        manifest: dict[str, Any],
        path: Path,
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.manifest = manifest
        self.path = path
        self.version: str | None = manifest["model_version"]
        self.blend = IntentBlend.from_manifest(manifest.get("intent_blend"))
        self._outputs = list(OUTPUT_NAMES)
        self._wordpiece = FastWordPiece(tokenizer, MAX_TOKENS)
        self._ones = np.ones((1, MAX_TOKENS), np.float32)
        self._ones.setflags(write=False)
        # An empty text still needs one position; its mask is 0 so it pools to zeros.
        self._empty_ids = np.zeros((1, 1), np.int64)
        self._empty_mask = np.zeros((1, 1), np.float32)

    @classmethod
    def load(cls, model_dir: str | Path) -> LearnedScorer:
        """Model directory -> ready scorer, or ``ModelLoadError(path, reason)``."""
        path = Path(model_dir)
        if not path.is_dir():
            raise ModelLoadError(path, "missing directory")
        for name in (MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE):
            if not (path / name).is_file():
                raise ModelLoadError(path / name, "missing file")
        try:
            manifest = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ModelLoadError(path / MANIFEST_FILE, f"unreadable manifest ({exc})") from exc
        _check_manifest(path / MANIFEST_FILE, manifest)
        try:
            tokenizer = Tokenizer.from_file(str(path / TOKENIZER_FILE))
        except Exception as exc:
            raise ModelLoadError(path / TOKENIZER_FILE, f"unreadable tokenizer ({exc})") from exc
        tokenizer.no_padding()
        tokenizer.enable_truncation(MAX_TOKENS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                str(path / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelLoadError(path / MODEL_FILE, f"corrupt ONNX model ({exc})") from exc
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if inputs != list(INPUT_NAMES) or outputs != list(OUTPUT_NAMES):
            raise ModelLoadError(
                path / MODEL_FILE,
                f"manifest mismatch: graph has inputs {inputs} and outputs {outputs}, "
                f"expected {list(INPUT_NAMES)} and {list(OUTPUT_NAMES)}",
            )
        scorer = cls(session, tokenizer, manifest, path)
        scorer._self_test()
        return scorer

    def _self_test(self) -> None:
        """One real inference at load time: shapes and probabilities must be sane."""
        try:
            probs, win, _ = self._run_one("hello", [0.0] * len(FEATURE_NAMES))
        except Exception as exc:
            raise ModelLoadError(self.path / MODEL_FILE, f"corrupt ONNX model ({exc})") from exc
        if probs.shape != (1, len(INTENTS)) or win.shape != (1,):
            raise ModelLoadError(
                self.path / MODEL_FILE,
                f"manifest mismatch: outputs have shapes {probs.shape} and {win.shape}, "
                f"expected (1, {len(INTENTS)}) and (1,)",
            )
        if not (abs(float(probs.sum()) - 1.0) < 1e-3 and 0.0 <= float(win[0]) <= 1.0):
            raise ModelLoadError(self.path / MODEL_FILE, "model outputs are not probabilities")

    def _ids(self, text: str) -> list[int]:
        return self._wordpiece.ids(text)

    def _run_one(self, text: str, feats: list[float]) -> tuple[np.ndarray, np.ndarray, int]:
        ids = self._ids(text)
        n = len(ids)
        if n:
            id_arr = np.array(ids, dtype=np.int64).reshape(1, n)
            mask = self._ones[:, :n]
        else:
            id_arr, mask = self._empty_ids, self._empty_mask
        feat_arr = np.array(feats, dtype=np.float32).reshape(1, -1)
        probs, win = self.session.run(
            self._outputs, {"input_ids": id_arr, "attention_mask": mask, "features": feat_arr}
        )
        return probs, win, n

    def score(self, messages: Sequence[Mapping[str, str]]) -> Scores:
        """Normalised messages -> calibrated ``Scores`` (never raises on odd text)."""
        text = scored_text(messages)
        feats = handcrafted_features(messages, text)
        probs, win, n = self._run_one(text, feats)
        values: list[float] = probs[0].tolist()
        if self.blend is not None:
            heuristic = self.blend.heuristic_one(text)
            values = self.blend.blend_one(values, heuristic, feats[NON_ASCII_FEATURE])
        return self._scores(values, float(win[0]), n)

    @staticmethod
    def _scores(values: list[float], win: float, n_tokens: int) -> Scores:
        # a softmax: sums to 1 within float32 rounding
        total = sum(values)
        if not 0.9999 < total < 1.0001 and total > 0 and math.isfinite(total):
            values = [v / total for v in values]
        return Scores(
            intent_scores=dict(zip(INTENTS, values, strict=True)),
            strong_win_rate=min(max(win, 0.0), 1.0),
            n_tokens=n_tokens,
        )

    def predict_batch(
        self, batch: Sequence[Sequence[Mapping[str, str]]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Many conversations -> (intent_probs [N, 14] (blended when the model says so),
        strong_win_rate [N], n_tokens [N])."""
        probs_out = np.zeros((len(batch), len(INTENTS)), np.float32)
        win_out = np.zeros(len(batch), np.float32)
        n_out = np.zeros(len(batch), np.int64)
        for start in range(0, len(batch), BATCH):
            chunk = batch[start : start + BATCH]
            texts = [scored_text(m) for m in chunk]
            feats = np.array(
                [handcrafted_features(m, t) for m, t in zip(chunk, texts, strict=True)],
                dtype=np.float32,
            ).reshape(len(chunk), len(FEATURE_NAMES))
            ids = [self._ids(t) for t in texts]
            width = max(1, max(len(i) for i in ids))
            id_arr = np.zeros((len(chunk), width), np.int64)
            mask = np.zeros((len(chunk), width), np.float32)
            for r, row in enumerate(ids):
                id_arr[r, : len(row)] = row
                mask[r, : len(row)] = 1.0
            probs, win = self.session.run(
                self._outputs, {"input_ids": id_arr, "attention_mask": mask, "features": feats}
            )
            if self.blend is not None:
                probs = self.blend.blend_texts(probs, texts, feats[:, NON_ASCII_FEATURE])
            probs_out[start : start + len(chunk)] = probs
            win_out[start : start + len(chunk)] = win
            n_out[start : start + len(chunk)] = [len(i) for i in ids]
        return probs_out, win_out, n_out

    def score_batch(self, batch: Sequence[Sequence[Mapping[str, str]]]) -> list[Scores]:
        """Many conversations -> one ``Scores`` each (batched onnxruntime calls)."""
        probs, win, n_tokens = self.predict_batch(batch)
        return [
            self._scores(p.tolist(), float(w), int(n))
            for p, w, n in zip(probs, win, n_tokens, strict=True)
        ]
