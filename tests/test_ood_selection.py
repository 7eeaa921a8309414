"""The OOD protocol's parts that decide what ships: the AlpacaEval loader's labels, the
linear heads' folded standardisation, MMLU subject groups and the selection rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from training.config import TrainConfig
from training.data.alpaca_eval import load_alpaca_eval, load_intent_labels
from training.data.mmlu import EXCLUDED_SUBJECTS, MMLU_GROUPS, MMLU_SUBJECTS, subject_group
from training.evaluate.candidates import Candidate, parse_candidate
from training.evaluate.selection import select_intent, select_strong
from training.model.linear import fit_linear


def _alpaca_dir(tmp_path: Path) -> Path:
    prompts = [
        {"prompt_id": "p1", "instruction": "Write a poem about rain.", "dataset": "koala"},
        {"prompt_id": "p2", "instruction": "What is 2 + 2?", "dataset": "oasst"},
        {"prompt_id": "p3", "instruction": "No verdict here.", "dataset": "oasst"},
    ]
    (tmp_path / "prompts.jsonl").write_text("\n".join(json.dumps(p) for p in prompts) + "\n")
    rows = [
        # p1: Mixtral loses under both hard annotators; two soft verdicts average 0.7
        ("p1", "Mixtral-8x7B-Instruct-v0.1", "alpaca_eval_gpt4_turbo_fn", 1.0),
        ("p1", "Mixtral-8x7B-Instruct-v0.1", "alpaca_eval_cot_gpt4_turbo_fn", 1.0),
        ("p1", "vicuna-7b", "weighted_alpaca_eval_gpt4_turbo", 1.2),
        ("p1", "claude-2", "weighted_alpaca_eval_gpt4_turbo", 1.4),
        ("p1", "gpt4_1106_preview", "weighted_alpaca_eval_gpt4_turbo", 1.9),  # not a weak model
        # p2: a split verdict against Mixtral, a tie overall
        ("p2", "Mixtral-8x7B-Instruct-v0.1", "alpaca_eval_gpt4_turbo_fn", 2.0),
        ("p2", "Mixtral-8x7B-Instruct-v0.1", "alpaca_eval_cot_gpt4_turbo_fn", 1.0),
        ("p2", "vicuna-7b", "weighted_alpaca_eval_gpt4_turbo", 1.5),
    ]
    pd.DataFrame(rows, columns=["prompt_id", "weak_model", "annotator", "preference"]).assign(
        strong_chars=100, weak_chars=80
    ).to_csv(tmp_path / "preferences.csv", index=False)
    return tmp_path


def test_alpaca_labels_mean_what_the_docstring_says(tmp_path: Path) -> None:
    root = _alpaca_dir(tmp_path)
    by = {r["ref"]: r for r in load_alpaca_eval(root, "multi", intents={"p1": "creative_writing"})}
    assert set(by) == {"alpaca_eval:p1", "alpaca_eval:p2"}  # p3 has no verdict
    p1, p2 = by["alpaca_eval:p1"], by["alpaca_eval:p2"]
    assert p1["strong_win"] == pytest.approx(0.7)  # mean of 0.8 and 0.6; the self-match ignored
    assert (p1["strong_correct"], p1["weak_correct"]) == (1.0, 0.0)
    assert p2["strong_correct"] == pytest.approx(0.5) and p2["strong_win"] == pytest.approx(0.5)
    assert p1["group"] == "alpaca_koala" and p2["group"] == "alpaca_oasst"
    assert p1["intent"] == "creative_writing" and p2["intent"] is None
    soft = {r["ref"]: r["strong_win"] for r in load_alpaca_eval(root, "soft")}
    hard = {r["ref"]: r["strong_win"] for r in load_alpaca_eval(root, "hard")}
    assert soft == {"alpaca_eval:p1": 1.0, "alpaca_eval:p2": 0.5}
    assert hard == {"alpaca_eval:p1": 1.0, "alpaca_eval:p2": 0.0}


def test_alpaca_loader_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ROUTER_ALPACA_EVAL_DIR"):
        load_alpaca_eval(tmp_path)
    with pytest.raises(ValueError, match="unknown AlpacaEval label"):
        load_alpaca_eval(_alpaca_dir(tmp_path), "margin")


def test_committed_alpaca_intent_labels_are_valid() -> None:
    from training.config import REPO_ROOT

    labels = load_intent_labels(
        sorted((REPO_ROOT / "data" / "alpaca_eval_intents").glob("*.jsonl"))
    )
    assert len(labels) == 803
    assert sum(v is not None for v in labels.values()) >= 800


def test_linear_head_folds_its_standardisation() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, [0.1, 5.0, 1.0], (400, 3)).astype(np.float32)
    y = (X[:, 0] * 10 - X[:, 1] * 0.2 + rng.normal(0, 0.5, 400) > 30).astype(float)
    lin = fit_linear(X, [y], c=1.0, n_in=3)
    z = (X - X.mean(0)) / X.std(0)
    ref = LogisticRegression(C=1.0, max_iter=3000).fit(z, y).decision_function(z)
    assert np.allclose(lin(X)[:, 0], ref, atol=1e-5)


def test_linear_head_soft_labels_and_constant_targets() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(0, 1, (300, 2)).astype(np.float32)
    soft = 1 / (1 + np.exp(-2 * X[:, 0]))
    lin = fit_linear(X, [soft, np.ones(300)], c=10.0, n_in=2)
    assert lin.coef[0, 0] > 1.0  # learns the soft slope
    assert np.allclose(lin.coef[1], 0) and lin.intercept[1] > 5  # "always right": constant


def test_every_subject_has_a_group() -> None:
    assert len(MMLU_SUBJECTS) == 57
    assert set(MMLU_SUBJECTS.values()) == set(MMLU_GROUPS)
    assert subject_group("college_physics") == "mmlu_stem"
    assert set(EXCLUDED_SUBJECTS) <= set(MMLU_SUBJECTS)
    with pytest.raises(ValueError, match="unknown MMLU subject"):
        subject_group("astrology")


def test_alpaca_variant_ships_only_if_it_helps_both_families() -> None:
    cands = ["gain", "gain+alpaca", "linear"]
    base = {
        "learned_gain": {
            "correctness": 0.55,
            "preference": 0.50,
            "correctness_vs_heuristic_worst": 0.02,
        },
        "learned_linear": {
            "correctness": 0.53,
            "preference": 0.50,
            "correctness_vs_heuristic_worst": 0.01,
        },
    }
    hurts = {**base, "learned_gain+alpaca": {"correctness": 0.54, "preference": 0.60}}
    helps = {
        **base,
        "learned_gain+alpaca": {
            "correctness": 0.56,
            "preference": 0.51,
            "correctness_vs_heuristic_worst": 0.02,
        },
    }
    assert select_strong(hurts, cands) == "gain"
    assert select_strong(helps, cands) == "gain+alpaca"
    worse_worst = {**helps, "learned_gain+alpaca": {**helps["learned_gain+alpaca"]}}
    # one correctness source falls below the heuristic (the plain kind kept them all above)
    worse_worst["learned_gain+alpaca"]["correctness_vs_heuristic_worst"] = -0.001
    assert select_strong(worse_worst, cands) == "gain"
    below = {k: {**v, "correctness_vs_heuristic_worst": -0.01} for k, v in base.items()}
    below["learned_gain+alpaca"] = {**worse_worst["learned_gain+alpaca"]}
    assert select_strong(below, cands) == "gain+alpaca"  # no worse than the plain kind's worst
    # Several AlpacaEval variants of the winner keep up: the best mean ships; a variant of
    # another kind or other options never replaces it.
    stack = {
        "learned_stack@rows": {
            "correctness": 0.58, "preference": 0.49, "correctness_vs_heuristic_worst": 0.03
        },
        "learned_stack+alpaca-trees@rows,aw=0.5": {
            "correctness": 0.58, "preference": 0.54, "correctness_vs_heuristic_worst": 0.03
        },
        "learned_stack+alpaca-trees@rows,aw=1": {
            "correctness": 0.59, "preference": 0.52, "correctness_vs_heuristic_worst": 0.03
        },
        "learned_stack+alpaca-trees@aw=2": {
            "correctness": 0.70, "preference": 0.70, "correctness_vs_heuristic_worst": 0.2
        },
    }  # fmt: skip
    assert select_strong(stack, [k.removeprefix("learned_") for k in stack]) == (
        "stack+alpaca-trees@rows,aw=0.5"
    )
    assert (
        select_intent({"intent_a": {"intent": 0.4}, "intent_b": {"intent": 0.5}}, ["a", "b"]) == "b"
    )
    rows_variant = {"learned_gain@rows,c=0.0003": {"correctness": 0.56, "preference": 0.52}}
    assert select_strong({**base, **rows_variant}, [*cands, "gain@rows,c=0.0003"]) == (
        "gain@rows,c=0.0003"
    )


def test_candidate_specs_parse_to_the_config_that_trains_them() -> None:
    cfg = TrainConfig()
    cand = parse_candidate("gain+alpaca@c=3e-4,rows")
    assert cand == Candidate("gain", alpaca=True, rows=True, c=0.0003)
    assert cand.spec == "gain+alpaca@rows,c=0.0003"
    trained = cand.config(cfg)
    assert (trained.strong_head, trained.strong_train_alpaca) == ("gain", True)
    assert (trained.strong_source_balance, trained.strong_linear_c) == (0.0, 0.0003)
    plain = parse_candidate("hgb").config(cfg)
    assert plain.strong_source_balance == cfg.strong_source_balance
    assert plain.strong_linear_c == cfg.strong_linear_c
    trees = parse_candidate("stack+alpaca-trees@aw=0.5,rows,c=3e-4")
    assert trees == Candidate("stack", True, True, 0.0003, trees_only=True, aw=0.5)
    assert trees.spec == "stack+alpaca-trees@rows,c=0.0003,aw=0.5"
    got = trees.config(cfg)
    assert (got.strong_train_alpaca, got.strong_alpaca_trees_only) == (True, True)
    assert got.strong_alpaca_weight == 0.5
    assert parse_candidate("stack+alpaca-trees").config(got).strong_alpaca_weight == 0.5
    for bad, why in (
        ("hgb+sharegpt", "KIND\\[\\+alpaca"),
        ("+alpaca", "KIND"),
        ("gain@fast", "unknown option 'fast'"),
        ("gain@c=abc", "c must be a number"),
        ("gain@c=0", "c must be positive"),
        ("gain+alpaca-trees", "needs the stack head"),
        ("stack+alpaca@aw=0.5", "aw= goes with"),
        ("stack+alpaca-trees@aw=-1", "aw must be positive"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_candidate(bad)


def test_a_candidate_that_sends_small_talk_strong_never_ships() -> None:
    cands = ["stack", "stack+alpaca-trees@aw=0.15", "gain"]
    summary = {
        "learned_stack": {
            "correctness": 0.58, "preference": 0.50, "correctness_vs_heuristic_worst": 0.04,
            "cheap_strong_share": 0.06,
        },
        "learned_stack+alpaca-trees@aw=0.15": {
            "correctness": 0.59, "preference": 0.54, "correctness_vs_heuristic_worst": 0.04,
            "cheap_strong_share": 0.48,
        },
        "learned_gain": {
            "correctness": 0.55, "preference": 0.52, "correctness_vs_heuristic_worst": 0.01,
            "cheap_strong_share": 0.05,
        },
    }  # fmt: skip
    assert select_strong(summary, cands) == "stack+alpaca-trees@aw=0.15"  # no guard
    assert select_strong(summary, cands, 0.10) == "stack"
    # The best plain kind misbehaves too: the next plain kind that behaves ships.
    summary["learned_stack"]["cheap_strong_share"] = 0.30
    assert select_strong(summary, cands, 0.10) == "gain"
    # Nobody behaves: the guard cannot choose, the APGR rules alone do.
    summary["learned_gain"]["cheap_strong_share"] = 0.30
    assert select_strong(summary, cands, 0.10) == "stack+alpaca-trees@aw=0.15"
    del summary["learned_gain"]["cheap_strong_share"]  # not measured: no objection
    assert select_strong(summary, cands, 0.10) == "gain"


def test_strong_share_by_intent_counts_each_intent_at_the_global_cut() -> None:
    from training.evaluate.behaviour import MIN_PER_INTENT, mean_shares, strong_share_by_intent

    n = MIN_PER_INTENT
    intents = np.array(["chitchat"] * n + ["math"] * n + ["roleplay"] * 2 * n, object)
    scores = np.concatenate([np.zeros(n), np.ones(n), np.linspace(0.2, 0.4, 2 * n)])
    shares = strong_share_by_intent(scores, intents, 0.25, ("chitchat", "roleplay"))
    assert shares == {"chitchat": 0.0, "math": 1.0, "roleplay": 0.0, "cheap": 0.0}
    flipped = strong_share_by_intent(1 - scores, intents, 0.25, ("chitchat",))
    assert flipped["chitchat"] == 1.0 and flipped["math"] == 0.0
    few = strong_share_by_intent(scores[: n + 3], intents[: n + 3], 0.5, ("math",))
    assert "math" not in few and few["cheap"] == 1.0  # 3 math prompts: no share of its own
    assert mean_shares([{"a": 0.2, "b": 1.0}, {"a": 0.4}]) == pytest.approx({"a": 0.3, "b": 1.0})
