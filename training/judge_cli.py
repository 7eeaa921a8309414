"""``learned-router judge`` arguments -> a judge run over the decision log (see training.judge).

The judge is any OpenAI-compatible endpoint: by default the strong tier's first enabled
backend of the policy, or ``--judge-backend NAME``, or ``--judge-base-url`` +
``--judge-model`` (prices from ``--judge-price-in/out``, USD per 1M tokens)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from router_service.backends import build_backend
from router_service.decision import TIERS
from router_service.intents import INTENTS
from router_service.logstore import create_decision_log
from router_service.policy import (
    BackendConfig,
    Policy,
    Price,
    ResolvedBackend,
    Timeouts,
    load_policy,
    resolve_backends,
)
from training.judge import JudgeOptions, JudgeSummary, Priced, run_judge

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(value: str) -> datetime:
    """ISO-8601 (naive = UTC) or a relative age like ``24h`` / ``7d`` (= now minus that)."""
    m = _RELATIVE.match(value.strip())
    if m:
        return datetime.now(UTC) - timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {value!r}: use ISO-8601 (2025-01-31T12:00) or an age like 24h, 7d"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _rate(value: str) -> float:
    x = float(value)
    if not 0.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return x


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "judge",
        help="grade logged cheap-tier answers with a judge model (-> feedback table)",
        description=__doc__,
    )
    src = p.add_argument_group("decision log and policy (default: ROUTER_* settings)")
    src.add_argument("--database-url", help="SQLAlchemy URL of the decision log")
    src.add_argument("--sqlite-path", type=Path, help="SQLite decision log file")
    src.add_argument("--policy", type=Path, help="policy YAML (judge/strong backends, prices)")
    j = p.add_argument_group("judge model")
    j.add_argument("--judge-backend", help="backend name from the policy to use as the judge")
    j.add_argument("--judge-base-url", help="OpenAI-compatible base URL, e.g. http://host/v1")
    j.add_argument("--judge-model", help="model name at --judge-base-url")
    j.add_argument("--judge-api-key-env", help="environment variable holding the judge API key")
    j.add_argument("--judge-price-in", type=float, default=0.0, help="USD / 1M input tokens")
    j.add_argument("--judge-price-out", type=float, default=0.0, help="USD / 1M output tokens")
    j.add_argument("--mode", choices=["single", "pairwise"], default="single")
    j.add_argument("--strong-base-url", help="pairwise: OpenAI-compatible strong model URL")
    j.add_argument("--strong-model", help="pairwise: model name at --strong-base-url")
    s = p.add_argument_group("which requests")
    s.add_argument("--tier", action="append", choices=TIERS, help="repeatable (local, primary)")
    s.add_argument("--intent", action="append", choices=INTENTS, help="repeatable (all)")
    s.add_argument("--since", type=parse_time, help="ISO time or age (24h, 7d)")
    s.add_argument("--until", type=parse_time, help="ISO time or age")
    s.add_argument("--sample-rate", type=_rate, default=1.0, help="share of requests judged")
    s.add_argument("--seed", type=int, default=0, help="sampling seed (same seed = same sample)")
    s.add_argument("--max-count", type=int, help="judge at most this many requests this run")
    s.add_argument("--max-spend", type=float, help="stop before spending more USD than this")
    r = p.add_argument_group("throughput")
    r.add_argument("--concurrency", type=int, default=8)
    r.add_argument("--rps", type=float, default=0.0, help="max judge calls/s (0 = unlimited)")
    r.add_argument("--max-retries", type=int, default=4, help="retries on 429/5xx/timeouts")
    r.add_argument("--timeout", type=float, default=60.0, help="seconds per judge call")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _adhoc(name: str, url: str, model: str, key_env: str | None, args: Any) -> ResolvedBackend:
    t = float(args.timeout)
    config = BackendConfig(
        name=name,
        type="openai",
        base_url=url,
        model=model,
        api_key_env=key_env,
        timeouts=Timeouts(connect=min(t, 10.0), first_byte=t, idle=t, total=t),
        price=Price(input_per_1m=args.judge_price_in, output_per_1m=args.judge_price_out),
    )
    key = os.environ.get(key_env, "").strip() or None if key_env else None
    return ResolvedBackend("strong", config, key, True, None)


def _from_policy(backends: list[ResolvedBackend], name: str | None, what: str) -> ResolvedBackend:
    if name is not None:
        found = [b for b in backends if b.name == name]
        if not found:
            raise SystemExit(f"judge: no backend named {name!r} in the policy")
        if not found[0].enabled:
            raise SystemExit(f"judge: backend {name!r} is disabled: {found[0].disabled_reason}")
        return found[0]
    strong = [b for b in backends if b.tier == "strong" and b.enabled]
    if not strong:
        reasons = "; ".join(
            f"{b.name}: {b.disabled_reason}" for b in backends if b.tier == "strong"
        )
        raise SystemExit(
            f"judge: no enabled strong-tier backend for the {what} ({reasons or 'none defined'}); "
            "set its API key or pass --judge-base-url/--judge-model"
        )
    return strong[0]


def _priced(resolved: ResolvedBackend) -> Priced:
    price = resolved.config.price
    return Priced(build_backend(resolved), price.input_per_1m, price.output_per_1m)


def _progress(total_hint: list[int], enabled: bool) -> tuple[Any, Any]:
    if not enabled:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=0, unit="req", desc="judging", dynamic_ncols=True, file=sys.stderr)

    def update(summary: JudgeSummary, total: int) -> None:
        if bar.total != total:
            bar.total = total
        done = summary.ok + summary.failed
        bar.update(done - bar.n)
        est = summary.cost_usd / done * total if done else 0.0
        bar.set_postfix(
            ok=summary.ok,
            failed=summary.failed,
            cost=f"${summary.cost_usd:.4f}",
            est_total=f"${est:.4f}",
        )

    return bar, update


def run(args: argparse.Namespace) -> int:
    from router_service.settings import Settings

    settings = Settings()
    policy_path = args.policy or settings.policy
    policy: Policy | None = None
    if policy_path and Path(policy_path).is_file():
        policy = load_policy(Path(policy_path))
    backends = resolve_backends(policy, os.environ) if policy else []
    if args.judge_base_url:
        if not args.judge_model:
            raise SystemExit("judge: --judge-base-url needs --judge-model")
        judge_res = _adhoc(
            "judge", args.judge_base_url, args.judge_model, args.judge_api_key_env, args
        )
    else:
        judge_res = _from_policy(backends, args.judge_backend, "judge")
    strong = None
    if args.mode == "pairwise":
        if args.strong_base_url:
            strong_res = _adhoc(
                "strong", args.strong_base_url, args.strong_model or "strong", None, args
            )
        else:
            strong_res = _from_policy(backends, None, "strong answers")
        strong = _priced(strong_res)
    opts = JudgeOptions(
        mode=args.mode,
        tiers=tuple(args.tier or ("local", "primary")),
        intents=frozenset(args.intent) if args.intent else None,
        since=args.since,
        until=args.until,
        sample_rate=args.sample_rate,
        seed=args.seed,
        max_count=args.max_count,
        max_spend_usd=args.max_spend,
        concurrency=max(1, args.concurrency),
        rps=max(0.0, args.rps),
        max_retries=max(0, args.max_retries),
        timeout_s=args.timeout,
        progress=not args.no_progress,
    )
    decision_log = create_decision_log(
        args.database_url or settings.database_url, args.sqlite_path or settings.sqlite_path
    )
    decision_log.create_schema()
    judge = _priced(judge_res)
    bar, update = _progress([], opts.progress)

    async def go() -> JudgeSummary:
        try:
            return await run_judge(decision_log, judge, opts, strong=strong, on_progress=update)
        finally:
            await judge.backend.aclose()
            if strong is not None:
                await strong.backend.aclose()

    try:
        summary = asyncio.run(go())
    finally:
        if bar is not None:
            bar.close()
        decision_log.close_sync()
    print(json.dumps(summary.as_dict(), indent=2) if args.json else summary.describe())
    return 0 if summary.failed == 0 or summary.ok > 0 else 1
