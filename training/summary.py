"""Evaluation report -> a rich summary table (printed at the end of train and eval)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from training.evaluate.report import ROUTELLM_MMLU_APGR


def _f(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def summary_table(report: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Table:
    table = Table(title=f"learned-router {report.get('model_version') or ''}".strip())
    table.add_column("what")
    table.add_column("value", overflow="fold")
    ood = report.get("ood", {}).get("summary", {})
    for family, metric in (("correctness", "APGR"), ("preference", "APGR"), ("intent", "F1")):
        learned, heur = ood.get("learned", {}), ood.get("heuristic", {})
        if family in learned:
            table.add_row(
                f"OOD {metric} {family} (mean / worst held-out source)",
                f"learned {_f(learned[family])} / {_f(learned.get(family + '_worst'))}   "
                f"heuristic {_f(heur.get(family))} / {_f(heur.get(family + '_worst'))}",
            )
    for name, block in report.get("intent", {}).items():
        table.add_row(
            f"intent acc / macro-F1, {name} (n={block['n']})",
            f"learned {_f(block['learned']['accuracy'])} / {_f(block['learned']['macro_f1'])}   "
            f"heuristic {_f(block['heuristic']['accuracy'])} / "
            f"{_f(block['heuristic']['macro_f1'])}",
        )
    for section, label in (("routing", "test split"), ("routing_lobo", "leave-one-out")):
        for bench, b in report.get(section, {}).items():
            row = "   ".join(f"{name} {_f(m['apgr'])}" for name, m in b["scorers"].items())
            table.add_row(f"APGR {bench} ({label}, n={b['n']})", row)
            learned = b["scorers"].get("learned")
            if learned:
                table.add_row(
                    f"CPT50 / CPT80 {bench} learned",
                    f"{_f(learned['cpt50'])} / {_f(learned['cpt80'])}",
                )
    table.add_row("RouteLLM reference (MMLU APGR)", f"{ROUTELLM_MMLU_APGR}")
    tr = report.get("transformer")
    if tr:
        cells: list[str] = []
        if "intent" in tr:
            cells.append(f"intent acc {_f(tr['intent']['accuracy'])}")
        cells += [
            f"APGR {b} {_f(block['scorers']['learned']['apgr'])}"
            for b, block in tr.get("routing", {}).items()
        ]
        cells += [
            f"LOBO {b} {_f(block['scorers']['learned']['apgr'])}"
            for b, block in tr.get("routing_lobo", {}).items()
        ]
        table.add_row("full MiniLM heads (not shipped)", "   ".join(cells))
    cal = report.get("calibration", {})
    if cal:
        table.add_row(
            "ECE intent / strong-win (before -> after)",
            f"{_f(cal.get('intent_ece_before'))} -> {_f(cal.get('intent_ece_after'))}   "
            f"{_f(cal.get('strong_win_ece_before'))} -> {_f(cal.get('strong_win_ece_after'))}",
        )
    else:
        m = report.get("metrics", {})
        wins = "   ".join(
            f"{key.rsplit('_', 1)[1]} {_f(v)}"
            for key, v in m.items()
            if key.startswith("strong_win_ece_")
        )
        table.add_row("ECE intent / strong-win", f"{_f(m.get('intent_ece'))} / {wins}")
    lat = report.get("latency", {})
    if lat.get("n"):
        table.add_row(
            f"decision latency p50 / p99 (n={lat['n']})",
            f"{_f(lat['decision_p50_us'], 0)} / {_f(lat['decision_p99_us'], 0)} µs",
        )
    for key, value in (extra or {}).items():
        table.add_row(key, str(value))
    return table


def print_summary(report: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> None:
    Console().print(summary_table(report, extra))
