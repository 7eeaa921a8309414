"""``learned-router calibrate``: logged decisions + target shares -> new routing thresholds.

    learned-router calibrate --strong-share 0.2 [--primary-share 0.3] [--policy FILE]
                             [--since ISO] [--until ISO] [--min-rows-per-intent 50]
                             [--global] [--dry-run | --out FILE]
                             [--database-url URL | --sqlite-path router_logs.db
                              | --decisions FILE]

``--decisions FILE`` reads the JSON lines ``learned-router classify --input`` prints instead
of the decision log, so thresholds can be set from a sample of prompts before any traffic:
``learned-router classify --input prompts.jsonl > d.jsonl; learned-router calibrate
--decisions d.jsonl --strong-share 0.2``.

Reads ``(intent, strong_win_rate)`` of logged decisions (privacy-pinned, forced and
heuristic rows excluded), picks per-intent cut points so that ``--strong-share`` of
traffic goes strong (and ``--primary-share`` primary; without it each intent keeps its
current ``local_below``), prints the tier shares before and after on the same rows, and
rewrites ``routing.intents`` in the policy file (``--policy``, else ROUTER_POLICY, else
policies/default.yaml). Only that block changes; the rest of the file, comments
included, is kept. The result is validated as a whole policy before it is written
(atomically). Exit status: 0 ok, 1 no usable rows, 2 usage / policy / database error."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from router_service.calibration import (
    Cut,
    calibrate_thresholds,
    calibration_rows,
    pretty_cut,
    replace_routing_intents,
    tier_shares,
)
from router_service.intents import INTENTS
from router_service.logstore.access import (
    LogAccessError,
    add_database_args,
    add_time_args,
    describe,
    open_for_reading,
    resolve_settings,
)
from router_service.policy import Policy, PolicyError, load_policy, parse_policy

PROG = "learned-router calibrate"
DEFAULT_POLICY = Path("policies/default.yaml")
COLUMNS = ("intent", "strong_win_rate", "reason")


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {value}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="set per-intent routing thresholds from logged traffic for target tier shares",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument("--strong-share", type=_share, required=True, metavar="S")
    parser.add_argument("--primary-share", type=_share, metavar="P")
    parser.add_argument("--policy", type=Path, metavar="FILE", help="policy YAML to rewrite")
    parser.add_argument("--min-rows-per-intent", type=int, default=50, metavar="N")
    parser.add_argument(
        "--global", dest="global_cut", action="store_true", help="one cut for all intents"
    )
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--dry-run", action="store_true", help="print, do not write")
    out.add_argument("--out", type=Path, metavar="FILE", help="write here, not over --policy")
    parser.add_argument(
        "--decisions",
        type=Path,
        metavar="FILE",
        help="JSON lines printed by `learned-router classify --input` (instead of the log)",
    )
    add_time_args(parser)
    add_database_args(parser)
    parser.set_defaults(func=run)


def read_decisions(path: Path) -> list[dict[str, Any]]:
    """``classify --input`` output lines -> rows with intent, strong_win_rate and reason;
    error lines (``{"error": ...}``) and lines that are not JSON objects are skipped."""
    import json

    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "error" not in rec:
            rows.append({k: rec.get(k) for k in COLUMNS})
    return rows


def _fmt_shares(shares: dict[str, float]) -> str:
    return "  ".join(f"{tier} {shares[tier]:6.1%}" for tier in ("local", "primary", "strong"))


ROUNDING_SLACK = 0.001  # a rounded cut may move this share of the rows to the next tier


def _pretty(cuts: dict[str, Cut], pairs: list[tuple[str, float]], one_cut: bool) -> dict[str, Cut]:
    """Round each cut to a short decimal. Per-intent cuts route their intent's rows exactly
    as before; one global cut is rounded once, against every row, give or take 0.1% of
    them (an exact split of 10k dense scores would need 9 digits), and stays one number."""
    by_intent: dict[str, list[float]] = {}
    for intent, p in pairs:
        by_intent.setdefault(intent, []).append(p)
    everything = sorted(p for _, p in pairs)
    slack = int(len(everything) * ROUNDING_SLACK) if one_cut else 0
    out: dict[str, Cut] = {}
    for intent, (lo, hi) in cuts.items():
        values = everything if one_cut else sorted(by_intent.get(intent, []))
        hi_r = pretty_cut(hi, values, slack)
        out[intent] = (min(pretty_cut(lo, values, slack), hi_r), hi_r)
    return out


def new_policy_text(text: str, path: Path, cuts: dict[str, Cut], comment: str) -> str:
    """Policy text + thresholds -> validated new text (comment-preserving when possible)."""
    candidate = replace_routing_intents(text, cuts, comment)
    try:
        policy = parse_policy(yaml.safe_load(candidate), path)
        ok = {k: (v.local_below, v.strong_above) for k, v in policy.routing.intents.items()}
        if ok == cuts and _same_except_intents(text, candidate):
            return candidate
    except (yaml.YAMLError, PolicyError):
        pass
    print(f"{PROG}: could not edit {path} in place; rewriting it (comments are lost)",
          file=sys.stderr)  # fmt: skip
    data = yaml.safe_load(text) or {}
    data.setdefault("routing", {})["intents"] = {
        k: {"local_below": lo, "strong_above": hi} for k, (lo, hi) in cuts.items()
    }
    parse_policy(data, path)  # raises PolicyError naming the field
    return str(yaml.safe_dump(data, sort_keys=False))


def _same_except_intents(before: str, after: str) -> bool:
    a, b = yaml.safe_load(before) or {}, yaml.safe_load(after) or {}
    for doc in (a, b):
        if isinstance(doc.get("routing"), dict):
            doc["routing"].pop("intents", None)
            if not doc["routing"]:
                doc.pop("routing")
    return bool(a == b)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    if args.primary_share is not None and args.strong_share + args.primary_share > 1.0 + 1e-9:
        print(f"{PROG}: --strong-share + --primary-share must be <= 1", file=sys.stderr)
        return 2
    if args.min_rows_per_intent < 1:
        print(f"{PROG}: --min-rows-per-intent must be >= 1", file=sys.stderr)
        return 2
    try:
        where = resolve_settings(args)
        policy_path = Path(where["policy"] or DEFAULT_POLICY)
        policy: Policy = load_policy(policy_path)
    except (LogAccessError, PolicyError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if args.decisions is not None:
        try:
            pairs = calibration_rows(read_decisions(args.decisions))
        except OSError as exc:
            print(f"{PROG}: cannot read {args.decisions}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        source = str(args.decisions)
    else:
        try:
            log = open_for_reading(where["database_url"], where["sqlite_path"])
        except LogAccessError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
        try:
            pairs = calibration_rows(log.iter_rows(args.since, args.until, columns=COLUMNS))
        except Exception as exc:
            print(f"{PROG}: reading the decision log failed: {exc}", file=sys.stderr)
            return 2
        finally:
            log.close_sync()
        source = describe(where["database_url"], where["sqlite_path"])
    if not pairs:
        print(f"{PROG}: no calibratable decisions in {source} (need rows with an intent and "
              "a strong_win_rate, not privacy/forced/heuristic)", file=sys.stderr)  # fmt: skip
        return 1

    current = {k: (v.local_below, v.strong_above) for k, v in policy.routing.intents.items()}
    cuts = calibrate_thresholds(
        pairs_as_rows(pairs),
        args.strong_share,
        args.primary_share,
        per_intent=not args.global_cut,
        min_rows_per_intent=args.min_rows_per_intent,
        current=current,
    )
    cuts = _pretty(cuts, pairs, one_cut=args.global_cut)
    default = policy.routing.default_tier
    counts = {i: sum(1 for intent, _ in pairs if intent == i) for i in INTENTS}
    print(f"calibrating on {len(pairs)} decisions from {source}")
    print(f"{'intent':18s} {'rows':>6s}  {'before (local_below, strong_above)':>36s}  after")
    for intent in INTENTS:
        before = current.get(intent)
        b = f"({before[0]:g}, {before[1]:g})" if before else f"(none: {default})"
        own = counts[intent] >= args.min_rows_per_intent and not args.global_cut
        a = f"({cuts[intent][0]:g}, {cuts[intent][1]:g})" + ("" if own else "  [global]")
        print(f"{intent:18s} {counts[intent]:6d}  {b:>36s}  {a}")
    print(f"shares before: {_fmt_shares(tier_shares(pairs, current, default))}")
    print(f"shares after:  {_fmt_shares(tier_shares(pairs, cuts, default))}")

    if args.dry_run:
        print("dry run: policy not written")
        return 0
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    primary = "" if args.primary_share is None else f", primary {args.primary_share:g}"
    comment = (
        f"learned-router calibrate {stamp}: strong {args.strong_share:g}{primary}, "
        f"{len(pairs)} rows"
    )
    try:
        text = policy_path.read_text(encoding="utf-8")
        new_text = new_policy_text(text, policy_path, cuts, comment)
        target = args.out or policy_path
        _write_atomic(target, new_text)
    except (OSError, PolicyError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote routing.intents to {target}")
    return 0


def pairs_as_rows(pairs: list[tuple[str, float]]) -> list[dict[str, Any]]:
    return [{"intent": i, "strong_win_rate": p} for i, p in pairs]
