"""``learned-router judge`` arguments -> a judge run over the decision log (training.loop.judge).

The judge is any OpenAI-compatible endpoint: by default the strong tier's first enabled
backend of the policy, or ``--judge-backend NAME``, or ``--judge-base-url`` +
``--judge-model`` (key from the variable named by ``--judge-api-key-env``, prices from
``--judge-price-in/out``, USD per 1M tokens). Pairwise mode also asks the strong tier:
the policy's, or ``--strong-base-url`` + ``--strong-model`` with ``--strong-api-key-env``
and ``--strong-price-in/out``. ``--max-spend`` needs a price on some endpoint."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

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
from training.loop.judge import JudgeOptions, JudgeSummary, run_judge
from training.loop.judge_calls import Priced

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
    j.add_argument("--strong-api-key-env", help="environment variable holding the strong key")
    j.add_argument("--strong-price-in", type=float, help="USD / 1M input tokens (strong)")
    j.add_argument("--strong-price-out", type=float, help="USD / 1M output tokens (strong)")
    s = p.add_argument_group("which requests")
    s.add_argument("--tier", action="append", choices=TIERS, help="repeatable (local, primary)")
    s.add_argument("--intent", action="append", choices=INTENTS, help="repeatable (all)")
    s.add_argument("--since", type=parse_time, help="ISO time or age (24h, 7d)")
    s.add_argument("--until", type=parse_time, help="ISO time or age")
    s.add_argument("--sample-rate", type=_rate, default=1.0, help="share of requests judged")
    s.add_argument("--seed", type=int, default=0, help="sampling seed (same seed = same sample)")
    s.add_argument("--max-count", type=int, help="judge at most this many requests this run")
    s.add_argument(
        "--max-spend",
        type=float,
        help="USD cap: no request starts whose worst-case cost could take spend past it",
    )
    r = p.add_argument_group("throughput")
    r.add_argument("--concurrency", type=int, default=8)
    r.add_argument("--rps", type=float, default=0.0, help="max judge calls/s (0 = unlimited)")
    r.add_argument("--max-retries", type=int, default=4, help="retries on 429/5xx/timeouts")
    r.add_argument("--timeout", type=float, default=60.0, help="seconds per judge call")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _usage_error(message: str) -> NoReturn:
    """A misused command line -> the message on stderr and exit status 2 (as argparse)."""
    print(f"learned-router judge: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _adhoc(
    name: str,
    url: str,
    model: str,
    key_env: str | None,
    prices: tuple[float, float],
    args: Any,
    environ: Mapping[str, str],
) -> ResolvedBackend:
    """An endpoint given on the command line -> a backend, its key read from the variable
    ``key_env`` names. Like a policy backend, it is refused when that variable is unset."""
    t = float(args.timeout)
    config = BackendConfig(
        name=name,
        type="openai",
        base_url=url,
        model=model,
        api_key_env=key_env,
        timeouts=Timeouts(connect=min(t, 10.0), first_byte=t, idle=t, total=t),
        price=Price(input_per_1m=prices[0], output_per_1m=prices[1]),
    )
    key = environ.get(key_env, "").strip() if key_env else ""
    if key_env and not key:
        raise SystemExit(f"judge: ${key_env} (--{name}-api-key-env) is not set")
    return ResolvedBackend("strong", config, key or None, True, None)


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


def _strong(
    args: Any, backends: list[ResolvedBackend], environ: Mapping[str, str]
) -> ResolvedBackend:
    """Pairwise: ``--strong-*`` flags or the policy -> the resolved strong endpoint."""
    if not args.strong_base_url:
        return _from_policy(backends, None, "strong answers")
    prices = (args.strong_price_in or 0.0, args.strong_price_out or 0.0)
    model = args.strong_model or "strong"
    return _adhoc(
        "strong", args.strong_base_url, model, args.strong_api_key_env, prices, args, environ
    )


def _check_flags(args: Any) -> None:
    """``--strong-*`` endpoint flags without ``--strong-base-url`` -> a usage error (they
    would be silently ignored: the policy's strong backend has its own key and prices)."""
    given = [
        flag
        for flag in ("strong_model", "strong_api_key_env", "strong_price_in", "strong_price_out")
        if getattr(args, flag) is not None
    ]
    if given and not args.strong_base_url:
        names = ", ".join("--" + flag.replace("_", "-") for flag in given)
        _usage_error(f"{names}: only valid with --strong-base-url")


def _check_spend_cap(max_spend: float | None, endpoints: Mapping[str, ResolvedBackend]) -> None:
    """``--max-spend`` with every endpoint priced at 0 -> a usage error (exit 2); with
    some unpriced -> a warning on stderr.

    Refusing, not warning, is deliberate: a cap that can never trigger is worse than no
    cap, since the user believes spend is bounded while a paid endpoint bills without
    limit, and a warning scrolls away under the progress bar. A free local judge just
    omits ``--max-spend``."""
    if max_spend is None:
        return
    unpriced = [
        name
        for name, res in endpoints.items()
        if res.config.price.input_per_1m <= 0 and res.config.price.output_per_1m <= 0
    ]
    if len(unpriced) == len(endpoints):
        _usage_error(
            "--max-spend needs prices, but every endpoint costs $0: pass "
            "--judge-price-in/--judge-price-out (pairwise: --strong-price-in/"
            "--strong-price-out) or set prices in the policy"
        )
    for name in unpriced:
        print(
            f"learned-router judge: warning: the {name} endpoint has no price; "
            "--max-spend counts its calls as $0",
            file=sys.stderr,
        )


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
        postfix = {"ok": summary.ok, "failed": summary.failed, "cost": f"${summary.cost_usd:.4f}"}
        if summary.calls_without_usage:
            postfix["cost_estimated"] = f"${summary.cost_estimated_usd:.4f}"
        postfix["est_total"] = f"${est:.4f}"
        bar.set_postfix(postfix)

    return bar, update


def _endpoints(
    args: argparse.Namespace, settings: Any, environ: Mapping[str, str]
) -> dict[str, ResolvedBackend]:
    """Arguments + policy + environment -> {"judge": ..., "strong": ... (pairwise)}."""
    policy_path = args.policy or settings.policy
    policy: Policy | None = None
    if policy_path and Path(policy_path).is_file():
        policy = load_policy(Path(policy_path))
    backends = resolve_backends(policy, environ) if policy else []
    if args.judge_base_url:
        if not args.judge_model:
            raise SystemExit("judge: --judge-base-url needs --judge-model")
        prices = (args.judge_price_in, args.judge_price_out)
        url, model, key_env = args.judge_base_url, args.judge_model, args.judge_api_key_env
        judge_res = _adhoc("judge", url, model, key_env, prices, args, environ)
    else:
        judge_res = _from_policy(backends, args.judge_backend, "judge")
    endpoints = {"judge": judge_res}
    if args.mode == "pairwise":
        endpoints["strong"] = _strong(args, backends, environ)
    return endpoints


def run(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """Parsed ``judge`` arguments (+ the environment, for API keys) -> exit status."""
    from router_service.settings import Settings

    environ = os.environ if environ is None else environ
    _check_flags(args)
    settings = Settings()
    endpoints = _endpoints(args, settings, environ)
    _check_spend_cap(args.max_spend, endpoints)
    strong = Priced.of(endpoints["strong"]) if "strong" in endpoints else None
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
    judge = Priced.of(endpoints["judge"])
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
