"""Live requests + champion scores -> how a candidate model WOULD have routed them.

A ``ShadowEvaluator`` holds a candidate scorer (loaded from a model dir). ``ShadowTap``
wraps the served scorer: after the champion scored a request it calls ``offer(...)``, a
sampling check and a non-blocking put on a bounded queue (full queue -> the sample is
dropped and counted). A daemon thread scores the queued requests with the candidate,
applies the same routing policy to both models' scores (request flags such as a forced
tier or a privacy pin are left out on both sides: they are not the model's doing), and
accumulates:
agreement with the champion (intent, tier), each model's tier shares, the tier confusion
matrix, and the estimated cost of each routing (policy prices x tokens). Routing is never
affected. ``report()`` is the JSON of ``GET /v1/shadow``; ``ShadowCollector`` exposes the
same numbers as Prometheus gauges (so they also appear in the metrics JSON)."""

from __future__ import annotations

import logging
import math
import queue
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from router_service.decision import TIERS, Scorer, Scores
from router_service.policy import ResolvedBackend
from router_service.routing import RoutingPolicy, choose_tier

log = logging.getLogger("router_service.shadow")

CHARS_PER_TOKEN = 4.0  # prompt-token estimate when the upstream reported no usage
_STOP = object()


def tier_prices(backends: Sequence[ResolvedBackend]) -> dict[str, tuple[float, float]]:
    """Backends -> {tier: (USD in, USD out) per 1M tokens} of the tier's first backend
    (enabled ones preferred): the price a request routed to that tier would pay."""
    out: dict[str, tuple[float, float]] = {}
    for tier in TIERS:
        cands = sorted((b for b in backends if b.tier == tier), key=lambda b: not b.enabled)
        if cands:
            p = cands[0].config.price
            out[tier] = (p.input_per_1m, p.output_per_1m)
        else:
            out[tier] = (0.0, 0.0)
    return out


@dataclass(slots=True)
class _Item:
    messages: list[dict[str, str]]
    champion: Scores
    champion_version: str | None
    prompt_tokens: int
    completion_tokens: int


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    idx = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[idx]


class ShadowEvaluator:
    """Scores a sample of live requests with a candidate model, off the request path."""

    def __init__(
        self,
        candidate: Scorer,
        routing: RoutingPolicy,
        prices: Mapping[str, tuple[float, float]],
        *,
        sample_rate: float = 1.0,
        model_dir: str | None = None,
        completion_tokens_estimate: int = 256,
        max_queue: int = 1000,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"shadow sample_rate must be in [0, 1], got {sample_rate}")
        self.candidate = candidate
        self.routing = routing
        self.prices = dict(prices)
        self.sample_rate = sample_rate
        self.model_dir = model_dir
        self.completion_tokens_estimate = completion_tokens_estimate
        self._rng = random.Random(seed)
        self._queue: queue.Queue[_Item | object] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._latencies: list[float] = []
        self.offered = self.sampled = self.dropped = self.scored = self.errors = 0
        self.intent_agree = self.tier_agree = 0
        self.confusion: dict[str, dict[str, int]] = {t: dict.fromkeys(TIERS, 0) for t in TIERS}
        self.champion_cost = self.candidate_cost = 0.0
        self.champion_versions: dict[str, int] = {}
        self.started_at = time.time()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shadow-eval", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Score what is queued, then stop the worker."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued sample was scored (tests, shutdown). -> True if empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.005)
        return self._queue.unfinished_tasks == 0

    # -- request path ------------------------------------------------------------------
    def offer(
        self,
        messages: Sequence[Mapping[str, str]],
        champion: Scores,
        champion_version: str | None = None,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> bool:
        """Maybe queue one request (and the champion's scores) for shadow scoring.
        Never raises, never blocks: a full queue drops the sample (counted)."""
        try:
            with self._lock:
                self.offered += 1
                if self.sample_rate < 1.0 and self._rng.random() >= self.sample_rate:
                    return False
            item = _Item(
                [dict(m) for m in messages],
                champion,
                champion_version,
                int(prompt_tokens) if prompt_tokens is not None else -1,
                int(completion_tokens) if completion_tokens is not None else -1,
            )
            self._queue.put_nowait(item)
        except queue.Full:
            with self._lock:
                self.dropped += 1
            return False
        except Exception:  # the shadow must never break a request
            log.exception("shadow: could not queue a request")
            return False
        with self._lock:
            self.sampled += 1
        return True

    # -- worker ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                assert isinstance(item, _Item)
                self._observe(item)
            except Exception as exc:
                with self._lock:
                    self.errors += 1
                log.warning("shadow: candidate failed on a request: %s", exc)
            finally:
                self._queue.task_done()

    def _cost(self, tier: str, prompt_tokens: int, completion_tokens: int) -> float:
        p_in, p_out = self.prices.get(tier, (0.0, 0.0))
        return (prompt_tokens * p_in + completion_tokens * p_out) / 1e6

    def _observe(self, item: _Item) -> None:
        start = time.perf_counter()
        scores = self.candidate.score(item.messages)
        tier, _ = choose_tier(self.routing, scores)
        elapsed_us = (time.perf_counter() - start) * 1e6
        champ_tier, _ = choose_tier(self.routing, item.champion)
        p_tok = item.prompt_tokens
        if p_tok < 0:
            chars = sum(len(m.get("content") or "") for m in item.messages)
            p_tok = max(1, round(chars / CHARS_PER_TOKEN))
        c_tok = item.completion_tokens
        if c_tok < 0:
            c_tok = self.completion_tokens_estimate
        with self._lock:
            self.scored += 1
            self.intent_agree += scores.intent == item.champion.intent
            self.tier_agree += tier == champ_tier
            row = self.confusion.setdefault(champ_tier, dict.fromkeys(TIERS, 0))
            row[tier] = row.get(tier, 0) + 1
            self.champion_cost += self._cost(champ_tier, p_tok, c_tok)
            self.candidate_cost += self._cost(tier, p_tok, c_tok)
            version = item.champion_version or "none"
            self.champion_versions[version] = self.champion_versions.get(version, 0) + 1
            if len(self._latencies) < 100_000:
                self._latencies.append(elapsed_us)

    # -- reporting ---------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        with self._lock:
            n = self.scored
            champ_share = {t: sum(self.confusion.get(t, {}).values()) for t in TIERS}
            cand_share = {t: sum(row.get(t, 0) for row in self.confusion.values()) for t in TIERS}
            lat = sorted(self._latencies)
            diff = self.candidate_cost - self.champion_cost
            return {
                "enabled": True,
                "candidate_model_dir": self.model_dir,
                "candidate_version": self.candidate.version,
                "candidate_scorer": self.candidate.name,
                "champion_versions": dict(self.champion_versions),
                "sample_rate": self.sample_rate,
                "offered": self.offered,
                "sampled": self.sampled,
                "dropped": self.dropped,
                "scored": n,
                "errors": self.errors,
                "queued": self._queue.qsize(),
                "agreement": {
                    "intent": self.intent_agree / n if n else None,
                    "tier": self.tier_agree / n if n else None,
                },
                "tier_share": {
                    "champion": {t: (champ_share[t] / n if n else None) for t in TIERS},
                    "candidate": {t: (cand_share[t] / n if n else None) for t in TIERS},
                },
                "tier_confusion": {k: dict(v) for k, v in self.confusion.items()},
                "estimated_cost_usd": {
                    "champion": self.champion_cost,
                    "candidate": self.candidate_cost,
                    "difference": diff,
                    "difference_pct": (
                        100.0 * diff / self.champion_cost if self.champion_cost > 0 else None
                    ),
                    "completion_tokens_estimate": self.completion_tokens_estimate,
                },
                "candidate_decision_us": {
                    "p50": _percentile(lat, 0.5),
                    "p99": _percentile(lat, 0.99),
                },
                "started_at": self.started_at,
            }


class ShadowTap:
    """The served scorer with a shadow tap: scores with ``inner`` (the champion) and hands
    the messages and the champion's scores to the shadow. Same ``name``/``version``."""

    def __init__(self, inner: Scorer, shadow: ShadowEvaluator) -> None:
        self.inner = inner
        self.shadow = shadow
        self.name = inner.name
        self.version = inner.version

    def score(self, messages: Sequence[Mapping[str, str]]) -> Scores:
        scores = self.inner.score(messages)
        self.shadow.offer(messages, scores, self.version)
        return scores


def disabled_report(reason: str = "no shadow model configured") -> dict[str, Any]:
    return {"enabled": False, "reason": reason}


class ShadowCollector(Collector):
    """Prometheus view of whichever ``ShadowEvaluator`` is current (read via ``get``)."""

    def __init__(self, get: Any) -> None:
        self._get = get

    def collect(self) -> Iterator[GaugeMetricFamily]:
        shadow: ShadowEvaluator | None = self._get()
        enabled = GaugeMetricFamily("router_shadow_enabled", "1 if a shadow model is running")
        enabled.add_metric([], 1.0 if shadow is not None else 0.0)
        yield enabled
        if shadow is None:
            return
        rep = shadow.report()
        scored = GaugeMetricFamily("router_shadow_scored", "Requests scored by the shadow model")
        scored.add_metric([], float(rep["scored"]))
        yield scored
        agree = GaugeMetricFamily(
            "router_shadow_agreement", "Shadow vs champion agreement", labels=["what"]
        )
        for what, value in rep["agreement"].items():
            if value is not None:
                agree.add_metric([what], float(value))
        yield agree
        share = GaugeMetricFamily(
            "router_shadow_tier_share", "Tier shares of each model", labels=["model", "tier"]
        )
        for model, shares in rep["tier_share"].items():
            for tier, value in shares.items():
                if value is not None:
                    share.add_metric([model, tier], float(value))
        yield share
        cost = GaugeMetricFamily(
            "router_shadow_estimated_cost_usd", "Estimated cost of each routing", labels=["model"]
        )
        cost.add_metric(["champion"], rep["estimated_cost_usd"]["champion"])
        cost.add_metric(["candidate"], rep["estimated_cost_usd"]["candidate"])
        yield cost
