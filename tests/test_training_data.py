"""Data stage: every source format, de-duplication, hash splits without leakage,
contamination exclusion, feedback labels, unlabelled logs; plus the real corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from router_service.features import FEATURE_NAMES, messages_from_payload, scored_text
from training.config import REPO_ROOT, TrainConfig, load_config
from training.data import sources
from training.data.corpus import build_corpus, load_corpus, load_raw, normalize_key, split_of

WEAK, STRONG = sources.WEAK_MODEL, sources.STRONG_MODEL


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def make_routellm(root: Path, n: int = 300) -> list[str]:
    """Fake RouteLLM folder; returns the contaminated prompts."""
    rng = np.random.default_rng(0)
    rows = [
        {
            "prompt": f"Question {i}: what is {i} + {i * 3}?\nA. 1\nB. 2\nAnswer:",
            WEAK: bool(rng.random() < 0.6),
            STRONG: bool(rng.random() < 0.8),
        }
        for i in range(n)
    ]
    (root / "mmlu" / "responses").mkdir(parents=True)
    half = n // 2
    pd.DataFrame(rows[:half]).to_csv(root / "mmlu/responses/mmlu_algebra.csv", index=False)
    pd.DataFrame(rows[half:]).to_csv(root / "mmlu/responses/mmlu_history.csv", index=False)
    gsm = [
        {
            "prompt": f"Tom has {i} apples and buys {i + 2} more. How many?",
            WEAK: i % 3 == 0,
            STRONG: i % 2 == 0,
            f"{WEAK}_response": "so, 4",
            f"{STRONG}_response": "4",
        }
        for i in range(120)
    ]
    (root / "gsm8k").mkdir()
    pd.DataFrame(gsm).to_csv(root / "gsm8k/gsm8k_responses.csv", index=False)
    bad = [rows[i]["prompt"] for i in range(0, n, 5)] + [gsm[i]["prompt"] for i in range(0, 120, 4)]
    for bench, prompts in (("mmlu", bad[: n // 5]), ("gsm8k", bad[n // 5 :])):
        write_jsonl(
            root / bench / "contaminated_prompts.jsonl",
            [
                {
                    "train_prompt": p + " (paraphrase)",
                    "eval_prompt": p,
                    "train_idx": 1,
                    "eval_idx": i,
                }
                for i, p in enumerate(prompts)
            ],
        )
    return bad


@pytest.fixture
def cfg(tmp_path: Path) -> TrainConfig:
    root = tmp_path / "routellm"
    make_routellm(root)
    write_jsonl(
        tmp_path / "prompts/a.jsonl",
        [
            {"prompt": "hi there", "intent": "chitchat"},
            {"prompt": "Hi   THERE", "intent": "chitchat"},  # duplicate after normalisation
            {
                "messages": [
                    {"role": "system", "content": "be nice"},
                    {"role": "user", "content": [{"type": "text", "text": "write a poem"}]},
                ],
                "intent": "creative_writing",
                "lang": "en",
            },
            {"prompt": "translate 'chat' to German", "intent": "translation"},
            {"prompt": "no label here"},
            {"prompt": "bad label", "intent": "not_an_intent"},
        ],
    )
    # A mixed-type file (content as a string on one line, as parts on another).
    write_jsonl(
        tmp_path / "prompts/b.jsonl",
        [
            {
                "messages": [{"role": "user", "content": "fix this bug: KeyError"}],
                "intent": "debugging",
            },
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "sql to count rows"}]}
                ],
                "intent": "coding",
            },
        ]
        + [
            {"prompt": f"what is the capital of country number {i}?", "intent": "knowledge_qa"}
            for i in range(60)
        ],
    )
    write_jsonl(
        tmp_path / "feedback/judge.jsonl",
        [
            {
                "request_id": "r1",
                "prompt": "prove the riemann hypothesis",
                "tier": "local",
                "score": 2,
                "judge": "j",
            },
            {"request_id": "r2", "prompt": "say hello", "tier": "local", "score": 9, "judge": "j"},
            {
                "request_id": "r3",
                "messages": [{"role": "user", "content": "derive the formula"}],
                "tier": "primary",
                "preference": "strong",
                "judge": "j",
            },
            {
                "request_id": "r4",
                "prompt": "count to three",
                "tier": "strong",
                "score": 3,
                "judge": "j",
            },
            {
                "request_id": "r5",
                "prompt": "a failed call",
                "tier": "local",
                "score": 1,
                "status": "failed",
                "judge_model": "j",
            },
        ],
    )
    write_jsonl(
        tmp_path / "logs/l.jsonl",
        [
            {
                "request_id": f"q{i}",
                "messages": [{"role": "user", "content": f"logged prompt {i}"}],
                "intent": "knowledge_qa",
                "tier": "local",
                "strong_win_rate": 0.1,
            }
            for i in range(40)
        ],
    )
    alpaca = tmp_path / "alpaca"
    write_jsonl(
        alpaca / "prompts.jsonl",
        [{"prompt_id": "a1", "instruction": "Plan a trip to Rome.", "dataset": "koala"}],
    )
    (alpaca / "preferences.csv").write_text(
        "prompt_id,weak_model,annotator,preference\n"
        "a1,Mixtral-8x7B-Instruct-v0.1,alpaca_eval_gpt4_turbo_fn,1.0\n"
        "a1,Mixtral-8x7B-Instruct-v0.1,alpaca_eval_cot_gpt4_turbo_fn,2.0\n"
        "a1,vicuna-7b,weighted_alpaca_eval_gpt4_turbo,1.25\n"
    )
    write_jsonl(
        tmp_path / "alpaca_intents/l.jsonl", [{"prompt_id": "a1", "intent": "brainstorming"}]
    )
    return TrainConfig(
        prompts_glob=str(tmp_path / "prompts/*.jsonl"),
        sharegpt_labels_glob=str(tmp_path / "none/*.jsonl"),
        routellm_dir=str(root),
        alpaca_eval_dir=str(alpaca),
        alpaca_eval_intents_glob=str(tmp_path / "alpaca_intents/*.jsonl"),
        feedback_globs=(str(tmp_path / "feedback/*.jsonl"),),
        request_log_globs=(str(tmp_path / "logs/*.jsonl"),),
        cache_dir=str(tmp_path / "cache"),
    )


def corpus_of(cfg: TrainConfig):
    labelled, logs, contaminated = load_raw(cfg)
    return build_corpus(cfg, labelled, logs, contaminated), contaminated


def test_every_source_is_loaded_with_its_labels(cfg: TrainConfig) -> None:
    corpus, _ = corpus_of(cfg)
    f = corpus.frame
    assert corpus.features.shape == (len(f), len(FEATURE_NAMES))
    assert corpus.features.dtype == np.float32
    by_text = dict(zip(f["key"], f.index, strict=True))
    assert f.loc[by_text["write a poem"], "intent"] == "creative_writing"
    assert f.loc[by_text["sql to count rows"], "intent"] == "coding"
    assert "no label here" not in by_text and "bad label" not in by_text
    fb = f[f["win_source"] == "feedback"].set_index("key")["strong_win"].to_dict()
    # score 2 on local -> 1, score 9 -> 0, preference strong -> 1; strong-tier score and
    # failed judgements carry no verdict
    assert fb == {"prove the riemann hypothesis": 1, "say hello": 0, "derive the formula": 1}
    assert set(f["win_source"].dropna()) == {"mmlu", "gsm8k", "feedback", "alpaca_eval"}
    trip = f.loc[by_text["plan a trip to rome."]]
    assert (trip["intent"], trip["intent_source"], trip["win_group"]) == (
        "brainstorming",
        "alpaca_eval",
        "alpaca_koala",
    )
    assert trip["strong_win"] == 0.75 and trip["strong_correct"] == 0.5  # multi; Mixtral split
    bench = f[f["win_source"].isin(["mmlu", "gsm8k"])]
    assert bench["weak_correct"].notna().all() and bench["strong_correct"].notna().all()
    assert (
        bench["strong_win"] == ((bench["strong_correct"] == 1) & (bench["weak_correct"] == 0))
    ).all()
    assert len(corpus.unlabelled) == 40 and corpus.stats["log_pseudo_labels"] == 0
    assert not f["intent_source"].eq("logs").any()


def test_duplicates_merge_and_no_text_is_in_two_splits(cfg: TrainConfig) -> None:
    corpus, _ = corpus_of(cfg)
    f = corpus.frame
    assert corpus.stats["duplicates_merged"] >= 1
    assert f["key"].is_unique
    assert (f["key"] == f["text"].map(normalize_key)).all()
    assert f.groupby("key")["split"].nunique().max() == 1
    assert set(f["split"]) == {"train", "calib", "test"}
    for key, split in zip(f["key"], f["split"], strict=True):
        assert split_of(key, cfg.calib_fraction, cfg.test_fraction) == split


def test_contaminated_prompts_never_reach_evaluation_splits(cfg: TrainConfig) -> None:
    corpus, contaminated = corpus_of(cfg)
    bad = {normalize_key(p) for p in contaminated}
    f = corpus.frame
    evaluation = f[f["split"] != "train"]
    assert not set(evaluation["key"]) & bad
    assert corpus.stats["contaminated_excluded"] > 0
    assert f.loc[f["key"].isin(bad), "split"].eq("train").all()
    assert f["contaminated"].sum() == f["key"].isin(bad).sum()


def test_logged_intents_become_train_only_pseudo_labels_when_asked(cfg: TrainConfig) -> None:
    cfg.log_intents_as_labels = True
    corpus, _ = corpus_of(cfg)
    pseudo = corpus.frame[corpus.frame["intent_source"] == "logs"]
    assert len(pseudo) == corpus.stats["log_pseudo_labels"] > 0
    assert pseudo["split"].eq("train").all()


def test_hub_dataset_names_pass_through_globbing(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("{}\n")
    found = sources.expand(["hf:owner/name:train", "*.jsonl", "missing/*.csv"], tmp_path)
    assert found == [tmp_path / "a.jsonl", Path("hf:owner/name:train")]


def test_split_is_stable_and_roughly_proportional() -> None:
    keys = [f"prompt number {i}" for i in range(20000)]
    splits = [split_of(k, 0.15, 0.15) for k in keys]
    assert splits == [split_of(k, 0.15, 0.15) for k in keys]
    share = {s: splits.count(s) / len(splits) for s in ("train", "calib", "test")}
    assert abs(share["train"] - 0.70) < 0.02 and abs(share["test"] - 0.15) < 0.02


def test_missing_routellm_folder_is_a_clear_error(cfg: TrainConfig, tmp_path: Path) -> None:
    cfg.routellm_dir = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="ROUTER_ROUTELLM_DIR"):
        load_raw(cfg)


def test_config_presets_and_files(tmp_path: Path) -> None:
    assert load_config("default").embedder == "static"
    tiny = load_config("tiny", seed=5)
    assert tiny.name == "tiny" and tiny.seed == 5 and tiny.intent_max_iter < 50
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"preset": "tiny", "knn_k": 3, "benchmarks": ["mmlu"]}))
    c = load_config(str(path))
    assert c.knn_k == 3 and c.benchmarks == ("mmlu",) and c.name == "tiny"
    path.write_text(json.dumps({"no_such_field": 1}))
    with pytest.raises(ValueError, match="no_such_field"):
        load_config(str(path))
    with pytest.raises(ValueError, match="neither a preset"):
        load_config("nope")


def test_real_corpus_has_disjoint_splits_and_no_contamination_in_evaluation() -> None:
    cfg = load_config("default")
    if not cfg.resolved_routellm_dir().is_dir():
        pytest.skip(f"RouteLLM data not found at {cfg.resolved_routellm_dir()}")
    corpus = load_corpus(cfg)
    f = corpus.frame
    assert f["key"].is_unique
    assert f.groupby("key")["split"].nunique().max() == 1
    bad = {
        normalize_key(scored_text(messages_from_payload(p)))
        for p in sources.load_contaminated(cfg.resolved_routellm_dir(), cfg.benchmarks)
    }
    assert not set(f.loc[f["split"] != "train", "key"]) & bad
    assert corpus.intent_mask("test", "sharegpt").sum() > 0
    assert corpus.win_mask("test", ["mmlu"]).sum() > 100
    assert (REPO_ROOT / "data").is_dir()
