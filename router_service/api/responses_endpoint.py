"""``POST /v1/responses`` (the OpenAI Responses API): body -> decision -> the backend's chat
answer translated into a ``response`` object or its typed SSE events.

Glue: ``responses_api`` parses and translates (pure), ``run`` routes exactly as chat does
(privacy scan of every field of the client's body, forced tiers, thresholds, fallback,
``X-Router-*`` headers, one decision-log row with ``extra.endpoint = "responses"``).
Stateless: ``store`` is answered without storing; ``previous_response_id``,
``conversation``, ``prompt`` and ``background`` are refused (400) by ``protocol``."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.requests import Request
from starlette.responses import Response

from router_service.api.responses import RelayResponse
from router_service.api.run import ChatRun, admit, forward, relay_events, serve
from router_service.backends import UpstreamStream
from router_service.backends.base import MALFORMED
from router_service.errors import ApiError
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
        run.state.inflight += 1  # held until the relay ends
        return RelayResponse(
            _relay(run, outcome.stream, ResponsesStream(shell)),
            run.headers(),
            run.finish,
            commit_first=run.state.settings.log_wait,
            is_final=is_final_event,
        )
    completion = outcome.completion
    assert completion is not None
    run.status = completion.status
    backend = outcome.slot.backend.name
    if completion.status >= 400:  # the backend's own client error, in OpenAI's envelope
        run.error = f"backend {backend} answered HTTP {completion.status}"
        return run.logged(completion.body, completion.status)
    try:
        body = response_bytes(shell, completion.body)
    except MALFORMED as exc:
        raise ApiError(
            502,
            f"The backend {backend} answered with a chat completion that could not be "
            f"translated: {type(exc).__name__}: {exc}",
            code="upstream_error",
        ) from None
    return run.logged(body, 200)


async def _relay(
    run: ChatRun, stream: UpstreamStream, writer: ResponsesStream
) -> AsyncGenerator[bytes, None]:
    for event in writer.start():
        yield event
    upstream = relay_events(run, stream, writer.upstream_failed)
    try:
        async for chunk in upstream:
            try:
                events = writer.feed(chunk)
            except MALFORMED as exc:
                writer.upstream_failed(f"malformed stream event: {exc}", "protocol_error")
                events = []
            for event in events:
                yield event
            if writer.failure is not None:  # an error event or an untranslatable chunk
                break
    finally:
        await upstream.aclose()
    if writer.failure is not None:
        run.relay_completed = True  # ended for the backend's error, not by the client
        if run.status < 400:
            run.status = 502
            run.error = f"mid-stream failure: {writer.failure[0]}"
    for event in writer.close():
        yield event


async def responses(request: Request) -> Response:
    return await serve(request, _route, endpoint=ENDPOINT, api="responses")
