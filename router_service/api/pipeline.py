"""Request pieces -> routing inputs and outputs, as plain functions (no routes here).

Body limits, which tier a request is forced to, the client's sensitivity flag, the privacy
scan and decision, cancelling upstream work when the client disconnects, the ``X-Router-*``
headers and the decision-log row. Who is calling (keys) is ``auth``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from router_service.decision import Decision, Scorer, Tier
from router_service.errors import ApiError
from router_service.logstore import LogRow
from router_service.policy import ResolvedBackend
from router_service.privacy import Sensitivity, detect_sensitive, redact, redact_messages
from router_service.protocol import AUTO_MODEL, FORCE_TIERS, flag_is_true
from router_service.routing import RoutingPolicy, decide
from router_service.settings import Settings
from router_service.upstream import Plan

if TYPE_CHECKING:
    from router_service.api.state import RouterState

T = TypeVar("T")
REQUEST_ID_KEY = "router.request_id"
# Above this body size the privacy scan (linear, but ~60-180 ms for 1 MB) and scoring run
# in a worker thread so one huge prompt cannot stall every other request on the loop.
OFFLOAD_BYTES = 64 * 1024


def request_id(request: Request) -> str:
    return str(request.scope.get(REQUEST_ID_KEY, ""))


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KiB"


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"Request body too large: the limit is {limit} bytes ({_mib(limit)}); "
        "set ROUTER_MAX_BODY_BYTES to change it.",
        code="request_too_large",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (declared or actually sent)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "Invalid Content-Length header.", code="invalid_header") from None
        if size > limit:
            raise too_large(limit)
    chunks: list[bytes] = []
    total = 0
    while True:  # the ASGI messages themselves: ``request.stream()`` costs a generator
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _scan_and_decide(
    scorer: Scorer,
    routing: RoutingPolicy,
    messages: Any,
    flag: bool,
    forced: Tier | None,
    fields: Mapping[str, Any] | None = None,
) -> tuple[Sensitivity, Decision]:
    sens = detect_sensitive(messages, client_flag=flag, fields=fields)
    decision = decide(scorer, routing, messages, sensitive=sens.sensitive, forced=forced)
    return sens, decision


async def scan_and_decide(
    scorer: Scorer,
    routing: RoutingPolicy,
    messages: Any,
    *,
    client_flag: bool,
    forced: Tier | None,
    body_bytes: int,
    fields: Mapping[str, Any] | None = None,
) -> tuple[Sensitivity, Decision]:
    """Messages (+ the request's other fields, scanned too) -> (sensitivity, decision); off
    the event loop for bodies over 64 KiB."""
    args = (scorer, routing, messages, client_flag, forced, fields)
    if body_bytes <= OFFLOAD_BYTES:
        return _scan_and_decide(*args)
    return await asyncio.to_thread(_scan_and_decide, *args)


@dataclass(frozen=True, slots=True)
class Routed:
    """Where one request goes: the forced tier (if any), its sensitivity, the decision and
    the upstream plan (backends in the order they will be tried)."""

    forced: Tier | None
    sensitivity: Sensitivity
    decision: Decision
    plan: Plan


async def route_request(
    state: RouterState,
    request: Request,
    *,
    model: str | None,
    metadata: Mapping[str, Any] | None,
    messages: Any,
    body_bytes: int,
    fields: Mapping[str, Any] | None = None,
) -> Routed:
    """A parsed request -> ``Routed`` (forced tier from ``model`` / ``X-Force-Route``,
    privacy scan of ``messages`` and every other request field in ``fields``, decision,
    then the plan), as chat completions, the Responses API and classify share it."""
    forced, preferred = resolve_target(model, request.headers.get("x-force-route"), state.models)
    sens, decision = await scan_and_decide(
        state.scorer,
        state.policy.routing,
        messages,
        client_flag=client_flag(request.headers, metadata),
        forced=forced,
        body_bytes=body_bytes,
        fields=fields,
    )
    plan = state.upstream.plan(
        decision.tier,
        sensitive=sens.sensitive,
        forced=forced is not None,
        preferred=preferred.name if preferred else None,
        budget_rule=decision.intent,
    )
    return Routed(forced, sens, routed_decision(decision, plan), plan)


def decided_tier(decision: Decision) -> str:
    """The tier the policy chose (``routed_decision`` may have moved the request)."""
    return str(decision.extra.get("decided_tier", decision.tier))


def routed_decision(decision: Decision, plan: Plan) -> Decision:
    """The decision as routed: when the plan starts on another tier than the policy chose
    (that tier disabled, a latency budget), the tier is the plan's, the reason says why and
    ``extra["decided_tier"]`` keeps the policy's choice. One tier everywhere: the body of
    ``/v1/classify``, the ``X-Router-Tier`` header, the metrics and the log row."""
    if not plan.slots or plan.slots[0].tier == decision.tier:
        return decision
    extra = {**decision.extra, "decided_tier": decision.tier}
    routed = plan.slots[0].tier
    why = plan.note or f"no usable {decision.tier} backend"
    reason = f"{decision.reason}; routed to {routed} ({why})"
    return replace(decision, tier=routed, reason=reason, extra=extra)


class ClientDisconnected(ApiError):
    """The client went away before its answer; nothing more is sent upstream (-> 499)."""

    def __init__(self) -> None:
        super().__init__(
            499,
            "client disconnected before the answer; upstream request cancelled",
            code="client_disconnected",
        )


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work`` (the body has been read) while watching the connection: when the
    client disconnects first, ``work`` is cancelled (closing its upstream request, so no
    further tier is tried either) and ``ClientDisconnected`` is raised."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_until_disconnect(request.receive))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        watch.cancel()
        raise
    if task.done():
        watch.cancel()
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise ClientDisconnected


def resolve_target(
    model: str | None,
    force_header: str | None,
    models: Mapping[str, ResolvedBackend],
) -> tuple[Tier | None, ResolvedBackend | None]:
    """(``model`` field, ``X-Force-Route``) -> (forced tier or None, preferred backend)."""
    forced: Tier | None = None
    if force_header is not None and force_header.strip():
        value = force_header.strip().lower()
        if value not in FORCE_TIERS:
            raise ApiError(
                400,
                f"X-Force-Route must be one of {list(FORCE_TIERS)}, got {force_header!r}.",
                param="X-Force-Route",
                code="invalid_value",
            )
        forced = value  # type: ignore[assignment]
    if model is None or model == AUTO_MODEL:
        return forced, None
    if model in FORCE_TIERS:
        return forced or model, None  # type: ignore[return-value]
    backend = models.get(model)
    if backend is None:
        known = [AUTO_MODEL, *FORCE_TIERS, *models]
        raise ApiError(
            404,
            f"The model '{model}' does not exist on this router. Use one of: {', '.join(known)}.",
            param="model",
            code="model_not_found",
        )
    if not backend.enabled:
        raise ApiError(
            503,
            f"The model '{model}' is served by backend '{backend.name}' ({backend.tier} tier), "
            f"which is disabled: {backend.disabled_reason}.",
            param="model",
            code="backend_disabled",
        )
    return forced or backend.tier, backend


def client_flag(headers: Mapping[str, str], metadata: Mapping[str, Any] | None) -> bool:
    """``X-Router-Sensitive: true`` or ``metadata.sensitivity`` set -> True."""
    if flag_is_true(headers.get("x-router-sensitive")):
        return True
    return bool(metadata) and flag_is_true(metadata.get("sensitivity"))  # type: ignore[union-attr]


def _fmt(value: float | None, digits: int) -> str:
    return "none" if value is None else f"{value:.{digits}f}"


_DECISION_HEADERS = (
    "X-Router-Tier",
    "X-Router-Model",
    "X-Router-Intent",
    "X-Router-Confidence",
    "X-Router-Decision-Us",
    "X-Router-Scorer",
    "X-Router-Model-Version",
    "X-Router-Strong-Win-Rate",
    "X-Router-Reason",
)


def decision_headers(
    rid: str,
    decision: Decision | None,
    *,
    tier: str | None = None,
    model: str | None = None,
    fallbacks: Sequence[str] = (),
    sensitive: bool = False,
) -> dict[str, str]:
    """The ``X-Router-*`` headers of a response (``tier``/``model``: who actually served)."""
    headers = {"X-Router-Request-Id": rid}
    if decision is None:  # failed before routing: same header set, nothing decided
        headers.update(dict.fromkeys(_DECISION_HEADERS, "none"))
    else:
        headers["X-Router-Tier"] = tier or decision.tier
        headers["X-Router-Model"] = model or "none"
        headers["X-Router-Intent"] = decision.intent
        headers["X-Router-Confidence"] = _fmt(decision.intent_confidence, 4)
        headers["X-Router-Decision-Us"] = _fmt(decision.decision_us, 1)
        headers["X-Router-Scorer"] = decision.scorer
        headers["X-Router-Model-Version"] = decision.model_version or "none"
        headers["X-Router-Strong-Win-Rate"] = _fmt(decision.strong_win_rate, 4)
        headers["X-Router-Reason"] = _header_text(decision.reason, 300)
    if sensitive:
        headers["X-Router-Sensitive"] = "true"
    if fallbacks:
        headers["X-Router-Fallback"] = _header_text("; ".join(fallbacks), 1000)
    return headers


def _header_text(text: str, limit: int) -> str:
    """Any text -> a header value (latin-1, one line, at most ``limit`` characters)."""
    one_line = " ".join(text.split())
    return one_line.encode("latin-1", "replace").decode("latin-1")[:limit]


def loggable_messages(
    messages: Any, redaction: str, sensitivity: Sensitivity | None = None
) -> list[dict[str, Any]]:
    """Messages as the log may keep them: all, PII-redacted, or roles only.

    When the detector already scanned these messages and found nothing, redaction would
    change nothing, so the second scan is skipped."""
    if not isinstance(messages, list):
        return []
    valid = [m for m in messages if isinstance(m, dict)]
    if redaction == "none":
        return valid
    if redaction == "all":
        return [{"role": m.get("role")} for m in valid]
    if sensitivity is not None and not [k for k in sensitivity.kinds if k != "client_flag"]:
        return valid
    return redact_messages(valid)


def loggable_answer(answer: str | None, settings: Settings) -> str | None:
    if answer is None or not settings.log_answers or settings.log_redaction == "all":
        return None
    return redact(answer) if settings.log_redaction == "pii" else answer


def build_log_row(
    settings: Settings,
    rid: str,
    decision: Decision | None,
    *,
    messages: Any,
    sensitivity: Sensitivity | None,
    **fields: Any,
) -> LogRow:
    """Everything known about one request -> a ``LogRow`` (redacted per settings)."""
    fields["messages"] = loggable_messages(messages, settings.log_redaction, sensitivity)
    fields["answer"] = loggable_answer(fields.get("answer"), settings)
    fields["sensitive"] = bool(sensitivity and sensitivity.sensitive)
    if decision is None:
        return LogRow(request_id=rid, **fields)
    return LogRow.from_decision(rid, decision, **fields)
