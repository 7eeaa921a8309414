"""(exported model, numpy/sklearn reference) -> max |Δp| on real prompts; fail if too large.

The reference is the training-side pipeline: ``scored_text`` + ``handcrafted_features`` ->
numpy pooling of the static table -> sklearn heads -> calibrators (-> the heuristic blend,
when the heads carry one: the same code on both sides). The candidate is the
serving path, ``LearnedScorer`` (tokenizers + onnxruntime), both batched (``predict_batch``)
and one request at a time (``score``). Odd inputs (empty, whitespace, very long, binary
junk, non-English, list-of-parts content) are always part of the sample."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from router_service.features import handcrafted_features, messages_from_payload, scored_text
from router_service.intent_blend import NON_ASCII_FEATURE
from router_service.intents import INTENTS
from router_service.learned import LearnedScorer
from training.model.embed import StaticEmbedding
from training.model.heads import Heads, design_matrix

ODD_INPUTS: tuple[Any, ...] = (
    "",
    "   \n\t  ",
    "x" * 1_000_000,
    "word " * 50_000 + "what is the capital of France?",
    "\x00\x01\x02\ufffd\x7f binary junk \udcff",
    "日本語で自己紹介を書いてください。",
    "Переведи на английский: я люблю программирование.",
    "اكتب قصيدة عن البحر",
    [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Summarise this"}, {"type": "image_url"}],
        }
    ],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": None}],
    "```python\ndef f(x):\n    return x / 0\n```\nZeroDivisionError: division by zero",
)


class ParityError(RuntimeError):
    """The exported graph disagrees with the sklearn pipeline beyond the tolerance."""


def reference_predict(
    embedder: StaticEmbedding, heads: Heads, batch: Sequence[Sequence[Mapping[str, str]]]
) -> tuple[np.ndarray, np.ndarray]:
    texts = [scored_text(m) for m in batch]
    feats = np.array(
        [handcrafted_features(m, t) for m, t in zip(batch, texts, strict=True)], np.float32
    )
    probs, win = heads.predict(design_matrix(embedder.embed(texts), feats))
    return heads.served_intents(probs, texts, feats[:, NON_ASCII_FEATURE].astype(np.float64)), win


def check_parity(
    scorer: LearnedScorer,
    embedder: StaticEmbedding,
    heads: Heads,
    conversations: Sequence[Sequence[Mapping[str, str]]],
    tol: float,
    n_single: int = 60,
) -> dict[str, Any]:
    """-> {"n", "max_abs_diff_intent", "max_abs_diff_strong_win", "tolerance", "ok"}."""
    batch = [messages_from_payload(p) for p in ODD_INPUTS] + [list(c) for c in conversations]
    ref_p, ref_w = reference_predict(embedder, heads, batch)
    onnx_p, onnx_w, _ = scorer.predict_batch(batch)
    d_int = float(np.abs(onnx_p - ref_p).max())
    d_win = float(np.abs(onnx_w - ref_w).max())
    for i, conv in enumerate(batch[:n_single]):
        s = scorer.score(conv)
        single = np.array([s.intent_scores[k] for k in INTENTS])
        d_int = max(d_int, float(np.abs(single - ref_p[i]).max()))
        d_win = max(d_win, abs(s.strong_win_rate - float(ref_w[i])))
    return {
        "n": len(batch),
        "max_abs_diff_intent": d_int,
        "max_abs_diff_strong_win": d_win,
        "tolerance": tol,
        "ok": d_int <= tol and d_win <= tol,
    }


def assert_parity(result: Mapping[str, Any]) -> None:
    if not result["ok"]:
        raise ParityError(
            f"ONNX vs sklearn parity failed on {result['n']} prompts: max |dp| intent "
            f"{result['max_abs_diff_intent']:.2e}, strong_win "
            f"{result['max_abs_diff_strong_win']:.2e} "
            f"> tolerance {result['tolerance']:.0e}"
        )
