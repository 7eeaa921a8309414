"""One routed request, whichever API it came in on -> its decision, upstream call and books.

Chat completions and the Responses API share this: ``serve`` (inflight count, span, every
failure -> an OpenAI error envelope), ``admit`` (client key, capacity, body), ``forward``
(privacy scan + decision + plan via ``pipeline.route_request``, then ``upstream.run`` with
fallback; a sensitive request that no local backend answers -> 503, never a cloud call),
``relay_events`` (a stream's events, ending in the API's own error events if the backend
fails mid-stream) and ``ChatRun`` (the ``X-Router-*`` headers, metrics and one decision-log
row per request, whatever happened). The route handlers only parse and render."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
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
from router_service.api.responses import LoggedResponse
from router_service.api.state import RouterState
from router_service.backends import UpstreamError, UpstreamStream, UsageStats
from router_service.decision import Decision
from router_service.errors import ApiError
from router_service.policy import Price
from router_service.privacy import Sensitivity
from router_service.upstream import ExhaustedError, NativeRequest, Outcome, failure_category

log = logging.getLogger("router_service")


@dataclass(slots=True)
class ChatRun:
    """What is known about one request so far (for headers, the log and metrics).

    ``endpoint`` is the metrics label (the path), ``api`` the log's ``extra.endpoint``;
    ``data`` is the chat-completions body sent upstream (for the Responses API: the
    translation of the client's body)."""

    state: RouterState
    rid: str
    started: float
    endpoint: str = "/v1/chat/completions"
    api: str = "chat"
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
    # The API's own error body for an ``ApiError`` (None: OpenAI's envelope); the
    # Messages API answers in Anthropic's.
    envelope: Callable[[ApiError], dict[str, Any]] | None = None

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
        state.metrics.observe_request(self.endpoint, self.status)
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
            "extra": self.extra or {"endpoint": self.api},
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

    def logged(self, body: bytes, status: int) -> Response:
        """A whole answer with this request's headers; the books close after it is sent."""
        return LoggedResponse(
            body, status, self.headers(), self.finish, commit_first=self.state.settings.log_wait
        )

    def error_response(self, err: ApiError) -> Response:
        self.status = err.status
        self.error = err.message
        if isinstance(err, ExhaustedError):
            self.error = err.detail  # the log keeps each backend's own error text
            self.fallbacks = err.fallbacks
        body = self.envelope(err) if self.envelope is not None else err.envelope()
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


async def admit(request: Request, run: ChatRun) -> bytes:
    """Client key and capacity checks, then the body (size-limited)."""
    state = run.state
    settings = state.settings
    check_client_auth(settings, request.headers)
    if settings.max_inflight and state.inflight > settings.max_inflight:
        raise ApiError(
            429,
            f"The router is at capacity ({settings.max_inflight} requests in flight); retry.",
            code="router_overloaded",
        )
    return await read_body(request, settings.max_body_bytes)


async def forward(
    request: Request,
    run: ChatRun,
    body: dict[str, Any],
    *,
    model: str | None,
    metadata: Mapping[str, Any] | None,
    body_bytes: int,
    fields: Mapping[str, Any],
    native: NativeRequest | None = None,
) -> Outcome:
    """A chat-completions ``body`` -> the first usable upstream answer (``Outcome``).

    The privacy scan reads ``body["messages"]`` (what goes upstream) and every field of
    ``fields`` (chat: the body itself; Responses: the client's own body). Sets the run's
    decision, sensitivity, log extras and outcome as it goes, so the headers and the log
    row say how far the request got. ``native``: the client's own request, for backends
    that speak its API (``Outcome.native`` says whether one answered)."""
    state = run.state
    settings = state.settings
    run.data = body
    routed = await route_request(
        state,
        request,
        model=model,
        metadata=metadata,
        messages=body["messages"],
        body_bytes=body_bytes,
        fields=fields,
    )
    forced, sens, decision, plan = routed.forced, routed.sensitivity, routed.decision, routed.plan
    run.sensitivity = sens
    run.decision = decision  # observed in the metrics by ``finish``, after the answer went out
    state.tracing.decision(decision)
    run.extra = {
        "endpoint": run.api,  # which API the request came in on (classify rows: "classify")
        "client_key": client_key_id(settings, request.headers),
        "requested_model": model,
        "forced": forced,
        "decided_tier": decided_tier(decision),
        "sensitivity_kinds": list(sens.kinds),
    }
    if plan.note:
        run.extra["latency_budget"] = plan.note
    try:
        outcome = await unless_disconnected(
            request, state.upstream.run(plan, body, stream=run.stream, native=native)
        )
    except ExhaustedError as err:
        if sens.sensitive:
            raise _privacy_error(sens, err) from None
        raise
    run.outcome = outcome
    run.fallbacks = outcome.fallbacks
    return outcome


async def relay_events(
    run: ChatRun, stream: UpstreamStream, failed: Callable[[str, str], list[bytes]]
) -> AsyncGenerator[bytes, None]:
    """Upstream events as they arrive (chat SSE; for a native answer, the client API's own
    events); when the backend fails mid-stream,
    ``failed(message, code)`` gives the events that end the client's stream. Clean-up
    (closing the upstream) is ``ChatRun.finish``'s job, which always runs."""
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
            message = f"The backend {backend} failed mid-stream: {err.message}"
            for out in failed(message, failure_category(err)):
                yield out
            break
        if event is None:
            break
        yield event
    run.relay_completed = True


Route = Callable[[Request, ChatRun], Awaitable[Response]]


async def serve(request: Request, route: Route, *, endpoint: str, api: str) -> Response:
    """Run ``route`` for one request: inflight count, tracing span, and every failure as an
    OpenAI error envelope with the ``X-Router-*`` headers and its log row."""
    state: RouterState = request.app.state.router
    run = ChatRun(state, request_id(request), time.perf_counter(), endpoint, api)
    state.inflight += 1
    tracing = state.tracing
    run.span = tracing.start_request(api, {"gen_ai.operation.name": "chat"})
    try:
        with tracing.activate(run.span):
            return await route(request, run)
    except ApiError as err:
        return run.error_response(err)
    except Exception as exc:
        log.exception("%s request %s failed", api, run.rid)
        return run.error_response(
            ApiError(500, f"Internal router error: {type(exc).__name__}", code="internal_error")
        )
    finally:
        state.inflight -= 1
