"""``POST /v1/chat/completions``: body -> decision -> the backend's answer (whole or SSE).

The handler is glue: ``run`` does the shared work (auth, privacy scan, decision, upstream
fallback, headers, one decision-log row and one request metric per request, failed or not);
here the body is validated and the backend's OpenAI answer is relayed as it is."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.requests import Request
from starlette.responses import Response

from router_service.api.responses import RelayResponse
from router_service.api.run import ChatRun, admit, forward, relay_events, serve
from router_service.backends import UpstreamStream
from router_service.backends.sse import DONE_EVENT
from router_service.errors import sse_error_event
from router_service.protocol import parse_chat_request, parse_json_object

ENDPOINT = "/v1/chat/completions"


async def _route(request: Request, run: ChatRun) -> Response:
    raw = await admit(request, run)
    data = parse_json_object(raw)
    run.data = data
    run.stream = data.get("stream") is True
    req = parse_chat_request(data, max_n=run.state.settings.max_n)
    run.stream = req.stream
    outcome = await forward(
        request,
        run,
        data,
        model=req.model,
        metadata=req.metadata,
        body_bytes=len(raw),
        fields=data,
    )
    if outcome.stream is not None:
        run.state.inflight += 1  # held until the relay ends
        return RelayResponse(
            _relay(run, outcome.stream),
            run.headers(),
            run.finish,
            commit_first=run.state.settings.log_wait,
        )
    completion = outcome.completion
    assert completion is not None
    run.status = completion.status
    if completion.status >= 400:
        run.error = f"backend {outcome.slot.backend.name} answered HTTP {completion.status}"
    return run.logged(completion.body, completion.status)


def _failed(message: str, code: str) -> list[bytes]:
    """A mid-stream backend failure -> an OpenAI error event (the SDK raises on it)."""
    return [sse_error_event(message, "server_error", code), DONE_EVENT]


def _relay(run: ChatRun, stream: UpstreamStream) -> AsyncGenerator[bytes, None]:
    return relay_events(run, stream, _failed)


async def chat_completions(request: Request) -> Response:
    return await serve(request, _route, endpoint=ENDPOINT, api="chat")
