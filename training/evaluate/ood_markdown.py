"""OOD table (``training.evaluate.ood``) -> markdown: the headline leave-one-source-out
table (random, prompt length, heuristic, kNN and the learned model in one run), the family
means beside the in-distribution numbers, and the candidates the selection compared."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

STRONG_COLUMNS = ("random", "length", "heuristic", "knn", "learned")


def _f(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.3f}"


def strong_rows(table: Mapping[str, Any]) -> list[str]:
    lines = [
        "| held-out source | family | n | "
        + " | ".join(STRONG_COLUMNS)
        + " | learned − heuristic [95% CI] |",
        "|---|---|---|" + "---|" * (len(STRONG_COLUMNS) + 1),
    ]
    rows = dict(table.get("strong", {}))
    pooled = table.get("pooled_correctness", {})
    if pooled.get("n"):  # no random / kNN column: those are per-fold only
        rows["all correctness folds pooled"] = {"family": "correctness", **pooled}
    for name, row in rows.items():
        a = row["apgr"]
        delta = a.get("learned", math.nan) - a.get("heuristic", math.nan)
        ci = row.get("vs_heuristic_ci", {}).get("learned")
        interval = f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""
        lines.append(
            f"| {name} | {row['family']} | {row['n']} | "
            + " | ".join(_f(a.get(c)) for c in STRONG_COLUMNS)
            + f" | {delta:+.3f}{interval} |"
        )
    return lines


def intent_rows(table: Mapping[str, Any]) -> list[str]:
    lines = [
        "| held-out source | n | heuristic macro-F1 | learned macro-F1 | heuristic acc / "
        "bal. acc | learned acc / bal. acc |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in table.get("intent", {}).items():
        h, lr = row["detail"]["heuristic"], row["detail"]["learned"]
        lines.append(
            f"| {name} | {row['n']} | {_f(h['macro_f1'])} | {_f(lr['macro_f1'])} | "
            f"{_f(h['accuracy'])} / {_f(h['balanced_accuracy'])} | "
            f"{_f(lr['accuracy'])} / {_f(lr['balanced_accuracy'])} |"
        )
    return lines


def family_rows(table: Mapping[str, Any]) -> list[str]:
    """Family means (mean and worst fold) OOD, beside the in-distribution mean."""
    summary, ind = table.get("summary", {}), table.get("in_distribution", {})
    lines = [
        "| family | metric | scorer | OOD mean | OOD worst fold | in-distribution mean | "
        "OOD mean − heuristic [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for family, metric, part in (
        ("correctness", "APGR", "strong"),
        ("preference", "APGR", "strong"),
        ("intent", "macro-F1", "intent"),
    ):
        for scorer in ("heuristic", "learned"):
            vals = summary.get(scorer, {})
            if family not in vals:
                continue
            key = "apgr" if part == "strong" else "macro_f1"
            in_vals = [
                r[key].get(scorer)
                for n, r in ind.get(part, {}).items()
                if (part == "intent" or _family_of(n) == family) and r[key].get(scorer) is not None
            ]
            in_mean = sum(in_vals) / len(in_vals) if in_vals else None
            lines.append(
                f"| {family} | {metric} | {scorer} | {_f(vals.get(family))} | "
                f"{_f(vals.get(f'{family}_worst'))} | {_f(in_mean)} | "
                f"{_margin(vals, summary.get('heuristic', {}), family)} |"
            )
    return lines


def _margin(vals: Mapping[str, Any], heuristic: Mapping[str, Any], family: str) -> str:
    """A learned scorer's family mean minus the heuristic's, with its bootstrap interval."""
    if family not in vals or family not in heuristic or vals is heuristic:
        return ""
    lo, hi = vals.get(f"{family}_vs_heuristic_lo"), vals.get(f"{family}_vs_heuristic_hi")
    interval = f" [{lo:+.3f}, {hi:+.3f}]" if lo is not None and hi is not None else ""
    return f"{vals[family] - heuristic[family]:+.3f}{interval}"


def _family_of(name: str) -> str:
    return "preference" if name.startswith("alpaca_") else "correctness"


def candidate_rows(selection: Mapping[str, Any] | None) -> list[str]:
    """The selection's candidates, family means each, and which shipped."""
    if not selection:
        return []
    summary, chosen = selection["summary"], selection["selected"]
    lines = [
        "| head | candidate | correctness OOD (mean / worst) | preference OOD (mean / worst) | "
        "intent macro-F1 OOD (mean / worst) | ShareGPT chitchat → strong | shipped |",
        "|---|---|---|---|---|---|---|",
    ]
    for part in ("strong", "intent"):
        for cand in selection["candidates"][part]:
            v = summary.get(f"learned_{cand}" if part == "strong" else f"intent_{cand}", {})
            cells = [
                f"{_f(v.get(f))} / {_f(v.get(f + '_worst'))}"
                for f in ("correctness", "preference", "intent")
            ]
            cheap = v.get("cheap_strong_share")
            cells.append("–" if cheap is None else f"{cheap:.0%}")
            mark = "yes" if chosen[part] == cand else ""
            lines.append(f"| {part} | {cand} | " + " | ".join(cells) + f" | {mark} |")
    return lines


def behaviour_rows(selection: Mapping[str, Any] | None) -> list[str]:
    """Strong share per ShareGPT intent: the heuristic beside the shipped strong-win kind."""
    behaviour = (selection or {}).get("behaviour") or {}
    shipped = behaviour.get(f"learned_{(selection or {}).get('selected', {}).get('strong')}")
    heuristic = behaviour.get("heuristic")
    if not shipped or not heuristic:
        return []
    lines = ["| ShareGPT intent | heuristic → strong | learned → strong |", "|---|---|---|"]
    for intent in (k for k in shipped if k != "cheap"):
        lines.append(f"| {intent} | {heuristic.get(intent, 0.0):.0%} | {shipped[intent]:.0%} |")
    return lines


def render(table: Mapping[str, Any], selection: Mapping[str, Any] | None = None) -> str:
    out = [
        "Strong-win routing, leave one source out (APGR; random 0.5; the interval: 95% paired "
        "bootstrap over the held-out prompts):",
        "",
        *strong_rows(table),
        "",
        "Intent, leave one source out:",
        "",
        *intent_rows(table),
        "",
        "Family means, out of distribution beside in distribution (train split -> test split "
        "of the same sources):",
        "",
        *family_rows(table),
    ]
    cands = candidate_rows(selection)
    if cands:
        out += [
            "",
            "Candidates compared by the selection (learned only; chitchat → strong: the share "
            "of labelled ShareGPT chitchat prompts the fold models send strong at the cut that "
            "sends `behaviour_strong_share` (20% by default) of all of them strong: the behaviour "
            "guard):",
            "",
            *cands,
        ]
    behaviour = behaviour_rows(selection)
    if behaviour:
        out += [
            "",
            "Which real chat prompts the strong tier gets (labelled ShareGPT prompts; learned: the "
            "mean of its fold models; each scorer's own cut sends 20% of them strong):",
            "",
            *behaviour,
        ]
    return "\n".join(out) + "\n"
