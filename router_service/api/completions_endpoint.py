"""``POST /v1/completions`` (the legacy text API): the prompt routed as one chat user
message by the same decision as chat, the chat answer translated back to a
``text_completion`` (whole, or chunk by chunk ending in ``[DONE]``).

Glue: ``completions_api`` parses and translates (pure); ``run`` routes, falls back, sets
the ``X-Router-*`` headers and writes the log row (``extra.endpoint = "completions"``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.requests import Request
from starlette.responses import Response

from router_service.api.run import ChatRun, admit, forward, relay_events, serve
from router_service.api.translated import relayed, whole_answer
from router_service.backends import UpstreamStream
from router_service.backends.answers import MALFORMED
from router_service.backends.sse import DONE_EVENT
from router_service.completions_api import (
    chat_body,
    completion_bytes,
    completion_chunk,
    parse_completion_request,
)
from router_service.errors import sse_error_event
from router_service.protocol import parse_json_object

ENDPOINT = "/v1/completions"


async def _route(request: Request, run: ChatRun) -> Response:
    raw = await admit(request, run)
    data = parse_json_object(raw)
    run.stream = data.get("stream") is True
    req = parse_completion_request(data, max_n=run.state.settings.max_n)
    run.stream = req.stream
    outcome = await forward(
        request,
        run,
        chat_body(req, data),
        model=req.model,
        metadata=req.metadata,
        body_bytes=len(raw),
        fields=data,
    )
    if outcome.stream is not None:
        return relayed(run, _relay(run, outcome.stream))
    return whole_answer(run, outcome, completion_bytes)


def _failed(message: str, code: str) -> list[bytes]:
    return [sse_error_event(message, "server_error", code), DONE_EVENT]


async def _relay(run: ChatRun, stream: UpstreamStream) -> AsyncGenerator[bytes, None]:
    upstream = relay_events(run, stream, _failed)
    try:
        async for event in upstream:
            try:
                out = completion_chunk(event)
            except MALFORMED as exc:
                run.relay_completed = True  # ended for the backend's event, not by the client
                run.status, run.error = 502, f"mid-stream failure: untranslatable event: {exc}"
                for end in _failed(
                    f"The backend sent an event the router could not translate: {exc}",
                    "protocol_error",
                ):
                    yield end
                return
            if out is not None:
                yield out
    finally:
        await upstream.aclose()


async def completions(request: Request) -> Response:
    return await serve(request, _route, endpoint=ENDPOINT, api="completions")
