"""Labelled later turns of real conversations -> does reading the conversation change intent
accuracy and routing? -> results/multiturn.json and a BENCHMARKS.md table.

The scorers read one bounded text per request (``router_service.features.scored_text``).
Until the multi-turn view they read the last user turn alone, so a follow-up such as
"continue" or "now in Python" was scored without the task it continues. This benchmark
scores the same requests through several views (``features.conversation_view``: the last
user turn, and the last turn after the head of the user turn before it when the last is
shorter than ``follow_up_chars``) with the committed model and the heuristic, and reports:

* intent accuracy, balanced accuracy and macro-F1 against hand labels of the *later* turns,
  all of them and the short follow-ups alone;
* tier shares with the default policy and the share of decisions that change against the
  last-turn view (no ground truth for the strong-win head on these conversations: the
  shares show what the view does to routing, not whether it is right).

Evaluation sets (labels only in ``data/``, texts read from the installed packages):

* ``sharegpt_later_turns``: one random later human turn of ShareGPT conversations whose
  first turn is in the *test* split (the model never trained on them), labelled in context
  by the rules of ``data/LABELLING.md`` §5 (``data/sharegpt_turn_labels/``);
* ``handwritten_multiturn_test``: the multi-turn prompts of ``data/prompts/`` in the test
  split.

The view constants were chosen on the first of these sets, so it is in-distribution for that
one choice (the heads never saw it); every grid point is in the JSON.
``--quick`` scores a few conversations of each set (checks the harness, not the claim)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import common
from router_service.features import conversation_view, last_user_text, scored_text

NAME = "multiturn"
LABELS_GLOB = "data/sharegpt_turn_labels/*.jsonl"
ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
SHORT_CHARS = 200  # "short follow-up" in the report


@dataclass(frozen=True)
class Budget:
    max_items: int | None  # per evaluation set; None = all
    follow_up_chars: tuple[int, ...]  # 0 = the last user turn alone (the old view)
    context_chars: tuple[int, ...]


FULL = Budget(None, (0, 40, 100, 200, 400, 1300), (300, 600))
QUICK = Budget(12, (0, 1300), (300,))


def sharegpt_later_turns(root: Path = common.REPO_ROOT) -> list[dict[str, Any]]:
    """``data/sharegpt_turn_labels`` + the ShareGPT package -> [{"messages", "intent"}]: each
    labelled human turn with the conversation up to it, in label-file order."""
    from training.data.sharegpt import iter_conversations

    wanted: dict[tuple[str, int], str] = {}
    for path in sorted(root.glob(LABELS_GLOB)):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                if row["intent"] is not None:
                    wanted[(row["id"], int(row["turn"]))] = row["intent"]
    ids = {cid for cid, _ in wanted}
    turns: dict[str, list[dict[str, Any]]] = {}
    for record in iter_conversations():
        if record.get("id") in ids:
            turns[record["id"]] = record.get("conversations") or []
    items = []
    for (cid, turn), intent in wanted.items():
        conv = turns.get(cid, [])
        if turn >= len(conv) or conv[turn].get("from") != "human":
            raise ValueError(f"{LABELS_GLOB}: {cid} turn {turn} is not a human turn")
        messages = [
            {"role": ROLES.get(t.get("from", ""), "user"), "content": t.get("value") or ""}
            for t in conv[: turn + 1]
        ]
        items.append({"messages": messages, "intent": intent})
    return items


def handwritten_multiturn_test() -> list[dict[str, Any]]:
    """The labelled multi-turn handwritten prompts in the test split -> [{"messages", "intent"}]."""
    from training.config import load_config
    from training.data import sources
    from training.data.corpus import normalize_key, split_of

    cfg = load_config("default", mlflow=False)
    items = []
    files = sources.expand([cfg.prompts_glob], common.REPO_ROOT)
    for row in sources.load_prompts(files):
        messages = row["messages"]
        if sum(m["role"] == "user" for m in messages) < 2 or not row.get("intent"):
            continue
        key = normalize_key(scored_text(messages))  # the corpus's split key for the row
        if split_of(key, cfg.calib_fraction, cfg.test_fraction) == "test":
            items.append({"messages": messages, "intent": row["intent"]})
    return items


def view_name(follow_up_chars: int, context_chars: int) -> str:
    """A view's name in the results (0: the last user turn alone)."""
    if follow_up_chars == 0:
        return "last_turn"
    return f"follow_up<{follow_up_chars},context={context_chars}"


def view_messages(
    messages: Sequence[Mapping[str, str]], follow_up_chars: int, context_chars: int
) -> list[dict[str, str]]:
    """A conversation -> one user message holding its view (what the scorers would read)."""
    return [
        {"role": "user", "content": conversation_view(messages, follow_up_chars, context_chars)}
    ]


def score_view(
    scorer: Any, items: Sequence[Mapping[str, Any]], follow_up: int, context: int
) -> dict[str, Any]:
    """One scorer, one view -> intents, tiers (default policy) and strong-win rates."""
    from router_service.routing import RoutingPolicy, decide

    policy = RoutingPolicy()
    out: dict[str, list[Any]] = {"intent": [], "tier": [], "strong_win_rate": []}
    for item in items:
        decision = decide(scorer, policy, view_messages(item["messages"], follow_up, context))
        out["intent"].append(decision.intent)
        out["tier"].append(decision.tier)
        out["strong_win_rate"].append(round(decision.strong_win_rate, 4))
    return out


def summarise(
    items: Sequence[Mapping[str, Any]], scored: Mapping[str, Any], base: Mapping[str, Any]
) -> dict[str, Any]:
    """One view's predictions -> intent scores (all, short follow-ups), tier shares and the
    share of decisions that differ from the last-turn view ``base``."""
    from router_service.decision import TIERS
    from training.evaluate.ood import intent_scores

    truth = [i["intent"] for i in items]
    short = [len(last_user_text(i["messages"])) < SHORT_CHARS for i in items]
    pred = scored["intent"]
    tiers = scored["tier"]
    short_truth = [t for t, s in zip(truth, short, strict=True) if s]
    short_pred = [p for p, s in zip(pred, short, strict=True) if s]
    n = max(len(items), 1)
    return {
        "intent": intent_scores(truth, pred),
        "intent_short": intent_scores(short_truth, short_pred),
        "tier_shares": {t: tiers.count(t) / n for t in TIERS},
        "tier_changed": sum(a != b for a, b in zip(tiers, base["tier"], strict=True)) / n,
        "intent_changed": sum(a != b for a, b in zip(pred, base["intent"], strict=True)) / n,
    }


def run(budget: Budget, model_dir: Path) -> dict[str, Any]:
    from router_service.features import CONTEXT_CHARS, FOLLOW_UP_CHARS
    from router_service.heuristic import HeuristicScorer
    from router_service.learned import LearnedScorer

    t0 = time.perf_counter()
    sets = {
        "sharegpt_later_turns": sharegpt_later_turns(),
        "handwritten_multiturn_test": handwritten_multiturn_test(),
    }
    if budget.max_items is not None:
        sets = {k: v[: budget.max_items] for k, v in sets.items()}
    learned = LearnedScorer.load(model_dir)
    scorers = {"learned": learned, "heuristic": HeuristicScorer()}
    views = [(0, 0)] + [
        (k, c) for k in budget.follow_up_chars if k > 0 for c in budget.context_chars
    ]
    results: dict[str, Any] = {
        "model_version": learned.version,
        "shipped_view": {"follow_up_chars": FOLLOW_UP_CHARS, "context_chars": CONTEXT_CHARS},
        "sets": {},
    }
    for set_name, items in sets.items():
        block: dict[str, Any] = {
            "n": len(items),
            "n_short": sum(len(last_user_text(i["messages"])) < SHORT_CHARS for i in items),
            "views": {},
        }
        for scorer_name, scorer in scorers.items():
            base = score_view(scorer, items, 0, 0)
            for k, c in views:
                scored = base if k == 0 else score_view(scorer, items, k, c)
                by_scorer = block["views"].setdefault(view_name(k, c), {})
                by_scorer[scorer_name] = summarise(items, scored, base)
        results["sets"][set_name] = block
    results["seconds"] = round(time.perf_counter() - t0, 1)
    return results


def markdown(results: Mapping[str, Any]) -> str:
    shipped = results["shipped_view"]
    ship = view_name(shipped["follow_up_chars"], shipped["context_chars"])
    parts = [
        "Intent on labelled *later* turns of real conversations, each scored through one view "
        "of the conversation (`features.conversation_view`): `last_turn` reads the last user "
        "turn alone (the router before multi-turn views); `follow_up<K,context=C` reads a "
        "last turn shorter than K characters after the first C characters of the user turn "
        f"before it. Shipped: `{ship}`. Model `{results['model_version']}`; tier shares with "
        'the default policy; "changed" = share of requests whose intent / tier differs from '
        "the last-turn view. The view was chosen on `sharegpt_later_turns` (the heads never "
        "trained on it). ShareGPT is a training source (first turns), so these are unseen "
        "turns of a seen source; the held-out-source intent figures are the OOD table's.",
    ]
    for set_name, block in results["sets"].items():
        rows = []
        for view, by_scorer in block["views"].items():
            for scorer, r in by_scorer.items():
                i, s, sh = r["intent"], r["intent_short"], r["tier_shares"]
                rows.append(
                    [
                        f"**{view}**" if view == ship else view,
                        f"`{scorer}`",
                        common.fmt(i["accuracy"], 3),
                        common.fmt(i["balanced_accuracy"], 3),
                        common.fmt(i["macro_f1"], 3),
                        common.fmt(s["accuracy"], 3),
                        " / ".join(f"{100 * sh[t]:.0f}%" for t in ("local", "primary", "strong")),
                        f"{100 * r['intent_changed']:.0f}% / {100 * r['tier_changed']:.0f}%",
                    ]
                )
        parts += [
            "",
            f"`{set_name}`: {block['n']} turns, {block['n_short']} of them shorter than "
            f"{SHORT_CHARS} characters.",
            "",
            common.md_table(
                [
                    "view",
                    "scorer",
                    "accuracy",
                    "bal. acc",
                    "macro-F1",
                    f"accuracy, turns < {SHORT_CHARS} chars",
                    "local / primary / strong",
                    "changed intent / tier",
                ],
                rows,
            ),
        ]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.add_argument("--model-dir", type=Path, default=common.REPO_ROOT / "models" / "default")
    ns = parser.parse_args(argv)
    args = common.bench_args(ns)
    budget = QUICK if args.quick else FULL
    results = run(budget, ns.model_dir)
    doc = common.envelope(NAME, results, params=asdict(budget), quick=args.quick)
    common.publish(NAME, doc, markdown(results), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
