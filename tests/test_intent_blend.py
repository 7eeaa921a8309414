"""The intent blend with the heuristic: its formula, its manifest entry, the candidate specs
that choose its weights, and the serving scorer applying it after the graph."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_training_parity import build_model

from router_service.features import handcrafted_features, messages_from_payload, scored_text
from router_service.heuristic import HeuristicScorer, intent_rules_fingerprint
from router_service.intent_blend import NON_ASCII_FEATURE, IntentBlend, view_probs
from router_service.intents import INTENTS
from router_service.learned import LearnedScorer, ModelLoadError
from training.config import TrainConfig
from training.evaluate.candidates import (
    IntentCandidate,
    intent_candidate_of,
    parse_intent_candidate,
)
from training.model.calibrators import fit_blend

K = len(INTENTS)


def _probs(rng: np.random.Generator, n: int) -> np.ndarray:
    p = rng.dirichlet(np.ones(K), size=n)
    return np.asarray(p, np.float64)


def test_blend_is_a_renormalised_product_with_its_own_non_english_weight() -> None:
    rng = np.random.default_rng(0)
    learned, heur = _probs(rng, 6), _probs(rng, 6)
    non_ascii = np.array([0.0, 0.05, 0.1, 0.11, 0.5, 1.0])
    blend = IntentBlend(0.5, 2.0, temperature=1.3)
    out = blend.apply(learned, heur, non_ascii)
    w = np.array([0.5, 0.5, 0.5, 2.0, 2.0, 2.0])  # the threshold is exclusive
    want = (learned * heur ** w[:, None]) ** (1 / 1.3)
    np.testing.assert_allclose(out, want / want.sum(axis=1, keepdims=True), rtol=1e-9)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    # weight 0 at temperature 1 is the learned head unchanged
    np.testing.assert_allclose(IntentBlend(0.0, 0.0).apply(learned, heur, non_ascii), learned)
    # a zero heuristic probability is floored, never -inf
    heur[0] = 0.0
    assert np.isfinite(blend.apply(learned, heur, non_ascii)).all()


def test_blend_temperature_is_fitted_on_labels() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, K, 400)
    guess = np.where(rng.random(400) < 0.5, labels, (labels + 1) % K)  # right half the time
    learned = np.full((400, K), 1e-3)
    learned[np.arange(400), guess] = 1.0  # and sure of itself every time
    learned /= learned.sum(axis=1, keepdims=True)
    texts = [f"prompt {i}" for i in range(400)]
    blend = fit_blend(learned, texts, np.zeros(400), labels, 0.5, 0.5)
    assert blend.temperature > 1.5  # the fitted blend softens an overconfident head
    assert (blend.heuristic_weight, blend.non_english_weight) == (0.5, 0.5)


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ([1, 2], "must be an object"),
        ({"heuristic_weight": 0.5}, "non_english_weight"),
        ({"heuristic_weight": -1, "non_english_weight": 1}, "heuristic_weight must be"),
        ({"heuristic_weight": 1, "non_english_weight": float("nan")}, "non_english_weight"),
        ({"heuristic_weight": 1, "non_english_weight": 1, "temperature": 0}, "temperature"),
        ({"heuristic_weight": 1, "non_english_weight": 1, "power": 2}, "unknown fields"),
        ({"heuristic_weight": "1", "non_english_weight": 1}, "heuristic_weight must be"),
    ],
)
def test_malformed_manifest_entries_are_refused(entry: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        IntentBlend.from_manifest(entry)


def test_a_blend_fitted_against_other_keyword_rules_is_refused() -> None:
    entry = IntentBlend(0.5, 4.0).to_manifest()
    assert entry["rules"] == intent_rules_fingerprint()
    for rules in ("0123456789abcdef", None):
        stale = {**entry, "rules": rules}
        if rules is None:
            del stale["rules"]
        with pytest.raises(ValueError, match="fitted against other rules, retrain"):
            IntentBlend.from_manifest(stale)


def test_the_rules_fingerprint_follows_the_keyword_tables() -> None:
    from router_service.heuristic_rules import INTENT_TERMS

    assert intent_rules_fingerprint() == intent_rules_fingerprint(INTENT_TERMS)
    added = {**INTENT_TERMS, "chitchat": {**INTENT_TERMS["chitchat"], 9.0: "a new term"}}
    assert intent_rules_fingerprint(added) != intent_rules_fingerprint()


def test_manifest_round_trip() -> None:
    assert IntentBlend.from_manifest(None) is None
    blend = IntentBlend(0.5, 2.0, 0.2, 0.9)
    assert IntentBlend.from_manifest(json.loads(json.dumps(blend.to_manifest()))) == blend


def test_heuristic_intent_probs_are_its_scores() -> None:
    scorer = HeuristicScorer()
    for prompt in (
        "Translate 'good morning' into German",
        "```python\nprint(1/0)\n```\nZeroDivisionError: division by zero",
        "hi!",
        "日本語で自己紹介を書いてください。",
        "",
    ):
        msgs = messages_from_payload(prompt)
        text = scored_text(msgs)
        want = scorer.score(msgs).intent_scores
        np.testing.assert_allclose(scorer.intent_probs(text), [want[i] for i in INTENTS])
        # the blend's input: keywords only, on a view that here cuts nothing
        keywords = view_probs([text], 10**6, 10**6)[0]
        np.testing.assert_allclose(keywords, scorer.intent_probs(text, structure=False))
    trace = "```python\nprint(1/0)\n```\nZeroDivisionError: division by zero"
    with_structure = scorer.intent_probs(trace)
    without = scorer.intent_probs(trace, structure=False)
    debugging = INTENTS.index("debugging")
    assert with_structure[debugging] > without[debugging]  # the stack-trace evidence


def test_the_heuristic_reads_a_short_view() -> None:
    blend = IntentBlend(0.5, 0.5)
    long = "Translate this into French:\n" + "lorem ipsum " * 200 + "\nThanks!"
    view = blend.view(long)
    assert view == long[:200] + "\n" + long[-80:]
    assert blend.view("short prompt") == "short prompt"
    np.testing.assert_allclose(blend.heuristic([long]), view_probs([view], 10**6, 10**6))


def test_intent_candidate_specs() -> None:
    cfg = TrainConfig()
    cand = parse_intent_candidate("tuned@ne=2,h=0.5")
    assert cand == IntentCandidate("tuned", 0.5, 2.0) and cand.spec == "tuned@h=0.5,ne=2"
    trained = cand.config(cfg)
    assert (trained.intent_head, trained.tune_embedding) == ("linear", True)
    assert (trained.intent_blend_weight, trained.intent_blend_non_english) == (0.5, 2.0)
    assert intent_candidate_of(trained) == cand
    plain = parse_intent_candidate("hgb")
    assert (plain.spec, plain.blended, plain.config(cfg).tune_embedding) == ("hgb", False, False)
    assert parse_intent_candidate("linear@h=1").non_english == 1.0
    assert parse_intent_candidate("linear@ne=3").blended  # English unblended, the rest blended
    for spec in cfg.intent_candidates:
        assert parse_intent_candidate(spec).spec == spec
    for bad, why in (
        ("forest", "KIND in"),
        ("tuned@h", "bad option"),
        ("tuned@h=1,h=2", "bad option"),
        ("tuned@w=1", "bad option"),
        ("tuned@h=x", "h must be a number"),
        ("tuned@h=-1", "finite number >= 0"),
        ("tuned@ne=inf", "finite number >= 0"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_intent_candidate(bad)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("blend")
    build_model(out, seed=5, version="learned-blend-test")
    return out


def _with_blend(model_dir: Path, tmp_path: Path, entry: object) -> Path:
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    manifest["intent_blend"] = entry
    (d / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return d


def test_scorer_applies_the_manifest_blend_after_the_graph(model_dir: Path, tmp_path: Path) -> None:
    plain = LearnedScorer.load(model_dir)
    assert plain.blend is None
    blend = IntentBlend(0.7, 3.0, temperature=0.8)
    blended = LearnedScorer.load(_with_blend(model_dir, tmp_path, blend.to_manifest()))
    prompts = ["Write a haiku about rain", "Переведи на английский: я люблю море", "fix: KeyError"]
    convs = [messages_from_payload(p) for p in prompts]
    graph, win, _ = plain.predict_batch(convs)
    texts = [scored_text(c) for c in convs]
    non_ascii = np.array(
        [handcrafted_features(c, t)[NON_ASCII_FEATURE] for c, t in zip(convs, texts, strict=True)]
    )
    want = blend.apply(graph, blend.heuristic(texts), non_ascii)
    got, got_win, _ = blended.predict_batch(convs)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(got_win, win)  # strong-win is untouched
    for i, conv in enumerate(convs):
        one = blended.score(conv)
        np.testing.assert_allclose([one.intent_scores[k] for k in INTENTS], want[i], atol=1e-6)
        assert one.strong_win_rate == pytest.approx(float(win[i]), abs=1e-6)
    assert not np.allclose(got, graph, atol=1e-3)  # the blend changed something


def test_malformed_blend_in_the_manifest_is_a_load_error(model_dir: Path, tmp_path: Path) -> None:
    d = _with_blend(model_dir, tmp_path, {"heuristic_weight": -0.5, "non_english_weight": 1})
    with pytest.raises(ModelLoadError, match="manifest mismatch: intent_blend") as err:
        LearnedScorer.load(d)
    assert str(d / "manifest.json") in str(err.value)
