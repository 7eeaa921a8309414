"""``POST /v1/responses`` (the OpenAI Responses API): body -> decision -> the backend's chat
answer translated into a ``response`` object or its typed SSE events.

Glue: ``responses_api`` parses and translates (pure), ``run`` routes exactly as chat does
(privacy scan of every field of the client's body, forced tiers, thresholds, fallback,
``X-Router-*`` headers, one decision-log row with ``extra.endpoint = "responses"``).
Stateless: ``store`` is answered without storing; ``previous_response_id``,
``conversation``, ``prompt`` and ``background`` are refused (400) by ``protocol``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from router_service.api.run import ChatRun, admit, forward, serve
from router_service.api.translated import relay_translated, relayed, whole_answer
from router_service.protocol import parse_json_object
from router_service.responses_api.events import ResponsesStream, is_final_event
from router_service.responses_api.output import new_id, response_bytes, response_shell
from router_service.responses_api.protocol import parse_responses
from router_service.responses_api.request import chat_body, scan_fields

ENDPOINT = "/v1/responses"


async def _route(request: Request, run: ChatRun) -> Response:
    raw = await admit(request, run)
    data = parse_json_object(raw)
    run.stream = data.get("stream") is True
    call = parse_responses(data)
    run.stream = call.request.stream
    outcome = await forward(
        request,
        run,
        chat_body(call, data),
        model=call.request.model,
        metadata=call.request.metadata,
        body_bytes=len(raw),
        fields=scan_fields(data),  # and the translated messages, as they go upstream
    )
    shell = response_shell(call, new_id("resp"), outcome.slot.backend.model)
    if outcome.stream is not None:
        events = relay_translated(run, outcome.stream, ResponsesStream(shell))
        return relayed(run, events, is_final=is_final_event)
    return whole_answer(run, outcome, lambda body: response_bytes(shell, body))


async def responses(request: Request) -> Response:
    return await serve(request, _route, endpoint=ENDPOINT, api="responses")
