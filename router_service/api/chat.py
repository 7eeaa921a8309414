"""``POST /v1/chat/completions``: body -> decision -> the backend's answer (whole or SSE).

The handler is glue over ``pipeline`` (inputs, headers, log row), ``routing.decide``
(tier) and ``upstream`` (fallback, breaker, budgets). Every request, failed or not, ends
with one decision-log row and one request metric (``ChatRun.finish``)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from router_service.api.auth import check_client_auth, client_key_id
from router_service.api.pipeline import (
    build_log_row,
    decided_tier,
    decision_headers,
    read_body,
    request_id,
    route_request,
    unless_disconnected,
)
from router_service.api.responses import LoggedResponse, RelayResponse
from router_service.api.state import RouterState
from router_service.backends import UpstreamError, UpstreamStream, UsageStats
from router_service.backends.sse import DONE_EVENT
from router_service.decision import Decision
from router_service.errors import ApiError, sse_error_event
from router_service.policy import Price
from router_service.privacy import Sensitivity
from router_service.protocol import parse_chat_request, parse_json_object
from router_service.upstream import ExhaustedError, Outcome, failure_category

log = logging.getLogger("router_service")
ENDPOINT = "/v1/chat/completions"


@dataclass(slots=True)
class ChatRun:
    """What is known about one request so far (for headers, the log and metrics)."""

    state: RouterState
    rid: str
    started: float
    data: dict[str, Any] | None = None
    stream: bool = False
    decision: Decision | None = None
    sensitivity: Sensitivity | None = None
    outcome: Outcome | None = None
    fallbacks: list[str] = field(default_factory=list)
    status: int = 200
    error: str | None = None
    ttfb_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    relay_completed: bool = False
    upstream_failed: bool = False
    span: Any = None  # the request's OpenTelemetry span (None when tracing is off)

    def headers(self) -> dict[str, str]:
        slot = self.outcome.slot if self.outcome else None
        return decision_headers(
            self.rid,
            self.decision,
            tier=slot.tier if slot else None,
            model=slot.backend.model if slot else self._planned_model(),
            fallbacks=self.fallbacks,
            sensitive=bool(self.sensitivity and self.sensitivity.sensitive),
        )

    def _planned_model(self) -> str | None:
        if self.decision is None:
            return None
        models = self.state.tier_models(self.decision.tier)
        return models[0] if models else None

    async def finish(self) -> None:
        """Stream clean-up, metrics and one committed decision-log row; never raises."""
        state = self.state
        if self.outcome is not None and self.outcome.stream is not None:
            await self._end_stream(self.outcome.stream)
        total_ms = (time.perf_counter() - self.started) * 1000.0
        if self.decision is not None:
            state.metrics.observe_decision(self.decision)
        state.metrics.observe_request(ENDPOINT, self.status)
        slot = self.outcome.slot if self.outcome else None
        stats = None
        if self.outcome is not None:
            source = self.outcome.stream or self.outcome.completion
            stats = source.stats if source is not None else None
        if slot is not None and stats is not None and self.status < 400:
            self._observe_usage(slot.tier, slot.backend.config.price, stats)
        fields: dict[str, Any] = {
            "messages": (self.data or {}).get("messages"),
            "sensitivity": self.sensitivity,
            "backend": slot.backend.name if slot else None,
            "model": slot.backend.model if slot else None,
            "fallbacks": list(self.fallbacks),
            "status": self.status,
            "error": self.error,
            "stream": self.stream,
            "upstream_latency_ms": self.outcome.upstream_s * 1000.0 if self.outcome else None,
            "ttfb_ms": self.ttfb_s * 1000.0 if self.ttfb_s is not None else None,
            "total_ms": total_ms,
            "prompt_tokens": stats.prompt_tokens if stats else None,
            "completion_tokens": stats.completion_tokens if stats else None,
            "answer": stats.answer if stats and stats.answer_parts else None,
            "extra": self.extra,
        }
        tracing = state.tracing
        with tracing.activate(self.span), tracing.span("decision_log.write"):
            await state.write_log(
                lambda: build_log_row(state.settings, self.rid, self.decision, **fields)
            )
        if self.span is not None:
            self._end_span(fields)

    def _end_span(self, fields: dict[str, Any]) -> None:
        attributes = {
            "http.response.status_code": self.status,
            "gen_ai.request.model": (self.data or {}).get("model"),
            "gen_ai.response.model": fields["model"],
            "gen_ai.usage.input_tokens": fields["prompt_tokens"],
            "gen_ai.usage.output_tokens": fields["completion_tokens"],
            "router.backend": fields["backend"],
            "router.tier": self.outcome.slot.tier if self.outcome else None,
            "router.fallbacks": self.fallbacks or None,
            "router.stream": self.stream,
        }
        self.state.tracing.end_request(self.span, attributes, self.error)

    def _observe_usage(self, tier: str, price: Price, stats: UsageStats) -> None:
        if stats.prompt_tokens is None and stats.completion_tokens is None:
            return
        try:
            self.state.metrics.observe_usage(
                tier,
                stats.prompt_tokens or 0,
                stats.completion_tokens or 0,
                price.input_per_1m,
                price.output_per_1m,
                *self.state.strong_price,
            )
        except ValueError as exc:
            log.warning("usage metric rejected: %s", exc)

    async def _end_stream(self, stream: UpstreamStream) -> None:
        """Close the upstream (cancels generation on a disconnect) and settle the books."""
        assert self.outcome is not None
        if not self.relay_completed and not self.upstream_failed:
            self.status = 499
            self.error = "client disconnected mid-stream; upstream request cancelled"
        self.state.upstream.stream_finished(self.outcome.slot, not self.upstream_failed)
        self.state.inflight -= 1
        await stream.aclose()

    def error_response(self, err: ApiError) -> Response:
        self.status = err.status
        self.error = err.message
        if isinstance(err, ExhaustedError):
            self.error = err.detail  # the log keeps each backend's own error text
            self.fallbacks = err.fallbacks
        body = err.envelope()
        return LoggedResponse(
            orjson.dumps(body),
            err.status,
            {**err.headers, **self.headers()},
            self.finish,
            commit_first=self.state.settings.log_wait,
        )


def _privacy_error(sens: Sensitivity, err: ExhaustedError) -> ApiError:
    kinds = ", ".join(sens.kinds) or "flagged"

    def say(why: str) -> str:
        why = why.split(": ", 1)[1] if ": " in why else why
        return (
            f"This request was classified as sensitive ({kinds}) and is pinned to the local "
            f"tier, but no local backend could answer ({why}). It was not sent to any cloud "
            "backend. Start a local model server or retry later."
        )

    return ExhaustedError(
        503, say(err.message), "sensitive_local_unavailable", err.fallbacks, say(err.detail)
    )


async def _route(request: Request, run: ChatRun) -> Response:
    state = run.state
    settings = state.settings
    check_client_auth(settings, request.headers)
    if settings.max_inflight and state.inflight > settings.max_inflight:
        raise ApiError(
            429,
            f"The router is at capacity ({settings.max_inflight} requests in flight); retry.",
            code="router_overloaded",
        )
    raw = await read_body(request, settings.max_body_bytes)
    data = parse_json_object(raw)
    run.data = data
    run.stream = data.get("stream") is True
    req = parse_chat_request(data, max_n=settings.max_n)
    routed = await route_request(
        state,
        request,
        model=req.model,
        metadata=req.metadata,
        messages=data["messages"],
        body_bytes=len(raw),
        fields=data,
    )
    forced, sens, decision, plan = routed.forced, routed.sensitivity, routed.decision, routed.plan
    run.sensitivity = sens
    run.decision = decision  # observed in the metrics by ``finish``, after the answer went out
    state.tracing.decision(decision)
    run.extra = {
        "endpoint": "chat",  # which API the request came in on (classify rows: "classify")
        "client_key": client_key_id(settings, request.headers),
        "requested_model": req.model,
        "forced": forced,
        "decided_tier": decided_tier(decision),
        "sensitivity_kinds": list(sens.kinds),
    }
    if plan.note:
        run.extra["latency_budget"] = plan.note
    try:
        outcome = await unless_disconnected(
            request, state.upstream.run(plan, data, stream=req.stream)
        )
    except ExhaustedError as err:
        if sens.sensitive:
            raise _privacy_error(sens, err) from None
        raise
    run.outcome = outcome
    run.fallbacks = outcome.fallbacks
    if outcome.stream is not None:
        state.inflight += 1  # held until the relay ends
        return RelayResponse(
            _relay(run, outcome.stream),
            run.headers(),
            run.finish,
            commit_first=settings.log_wait,
        )
    completion = outcome.completion
    assert completion is not None
    run.status = completion.status
    if completion.status >= 400:
        run.error = f"backend {outcome.slot.backend.name} answered HTTP {completion.status}"
    return LoggedResponse(
        completion.body,
        completion.status,
        run.headers(),
        run.finish,
        commit_first=settings.log_wait,
    )


async def _relay(run: ChatRun, stream: UpstreamStream) -> AsyncGenerator[bytes, None]:
    """Upstream events -> client, ending with an OpenAI error event if the backend fails.
    Clean-up (closing the upstream) is ``ChatRun.finish``'s job, which always runs."""
    assert run.outcome is not None
    backend = run.outcome.slot.backend.name
    run.ttfb_s = time.perf_counter() - run.started
    yield stream.first
    while True:
        try:
            event = await stream.next_event()
        except UpstreamError as err:
            run.upstream_failed = True
            run.status = 502
            run.error = f"mid-stream failure: {err.message}"
            yield sse_error_event(
                f"The backend {backend} failed mid-stream: {err.message}",
                "server_error",
                failure_category(err),
            )
            yield DONE_EVENT
            break
        if event is None:
            break
        yield event
    run.relay_completed = True


async def chat_completions(request: Request) -> Response:
    state: RouterState = request.app.state.router
    run = ChatRun(state, request_id(request), time.perf_counter())
    state.inflight += 1
    tracing = state.tracing
    run.span = tracing.start_request("chat", {"gen_ai.operation.name": "chat"})
    try:
        with tracing.activate(run.span):
            return await _route(request, run)
    except ApiError as err:
        return run.error_response(err)
    except Exception as exc:
        log.exception("chat request %s failed", run.rid)
        return run.error_response(
            ApiError(500, f"Internal router error: {type(exc).__name__}", code="internal_error")
        )
    finally:
        state.inflight -= 1
