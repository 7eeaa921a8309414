"""``POST /v1/classify``: a chat body or ``{"prompt": ...}`` -> the routing decision as JSON.

No backend is called (it works with none configured); the decision is logged like any
other request, with ``extra.endpoint = "classify"``."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from router_service.api.auth import check_client_auth
from router_service.api.pipeline import (
    build_log_row,
    decided_tier,
    decision_headers,
    read_body,
    request_id,
    route_request,
)
from router_service.api.responses import LoggedResponse
from router_service.api.state import RouterState
from router_service.decision import Decision
from router_service.errors import ApiError
from router_service.privacy import Sensitivity
from router_service.protocol import parse_classify_request, parse_json_object

ENDPOINT = "/v1/classify"


def decision_json(
    decision: Decision, sens: Sensitivity, model: str | None, backend: str | None
) -> dict[str, Any]:
    return {
        "intent": decision.intent,
        "intent_confidence": decision.intent_confidence,
        "intent_scores": decision.intent_scores,
        "strong_win_rate": decision.strong_win_rate,
        "complexity": decision.complexity,
        "tier": decision.tier,
        "decided_tier": decided_tier(decision),
        "model": model,
        "backend": backend,
        "reason": decision.reason,
        "scorer": decision.scorer,
        "model_version": decision.model_version,
        "sensitivity": {"sensitive": sens.sensitive, "kinds": list(sens.kinds)},
        "decision_us": decision.decision_us,
    }


async def classify(request: Request) -> Response:
    state: RouterState = request.app.state.router
    rid = request_id(request)
    started = time.perf_counter()
    decision: Decision | None = None
    sens: Sensitivity | None = None
    messages: Any = None
    status, error = 200, None

    async def finish() -> None:
        state.metrics.observe_request(ENDPOINT, status)
        total_ms = (time.perf_counter() - started) * 1000.0
        await state.write_log(
            lambda: build_log_row(
                state.settings,
                rid,
                decision,
                messages=messages,
                sensitivity=sens,
                status=status,
                error=error,
                total_ms=total_ms,
                extra={"endpoint": "classify"}
                | ({} if decision is None else {"decided_tier": decided_tier(decision)}),
            )
        )

    try:
        check_client_auth(state.settings, request.headers)
        raw = await read_body(request, state.settings.max_body_bytes)
        data = parse_json_object(raw)
        req = parse_classify_request(data)
        messages = (
            data["messages"]
            if req.messages is not None
            else [{"role": "user", "content": req.prompt}]
        )
        routed = await route_request(
            state,
            request,
            model=req.model,
            metadata=req.metadata,
            messages=messages,
            body_bytes=len(raw),
            fields={k: v for k, v in data.items() if k not in ("messages", "prompt")},
        )
        sens, decision, plan = routed.sensitivity, routed.decision, routed.plan
        state.metrics.observe_decision(decision)
        first = plan.slots[0] if plan.slots else None
        body = decision_json(
            decision,
            sens,
            first.backend.model if first else None,
            first.backend.name if first else None,
        )
        if plan.note:
            body["latency_budget"] = plan.note
        headers = decision_headers(
            rid,
            decision,
            tier=first.tier if first else decision.tier,
            model=first.backend.model if first else None,
            sensitive=sens.sensitive,
        )
        wait = state.settings.log_wait
        return LoggedResponse(orjson.dumps(body), 200, headers, finish, commit_first=wait)
    except ApiError as err:
        status, error = err.status, err.message
        headers = {**err.headers, **decision_headers(rid, decision)}
        body = err.envelope()
        wait = state.settings.log_wait
        return LoggedResponse(orjson.dumps(body), err.status, headers, finish, commit_first=wait)
