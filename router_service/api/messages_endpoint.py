"""``POST /v1/messages`` (the Anthropic Messages API): body -> decision -> the backend's
chat answer translated into Anthropic's ``message`` object or its event stream; and
``POST /v1/messages/count_tokens``: body -> an estimate of its input tokens.

Glue: ``messages_api`` parses and translates (pure), ``translated`` renders the answer
(whole or streamed) through it, ``run`` routes exactly as chat does
(privacy scan of every field of the client's body, forced tiers, thresholds, fallback,
``X-Router-*`` headers, one decision-log row with ``extra.endpoint = "messages"``). An
Anthropic backend gets the client's body as it came (its own model in it) and its answer,
error or event stream goes back untouched (``backends.anthropic_native``: ``thinking``,
``cache_control``, ``top_k``, server tools survive); OpenAI-compatible and Ollama backends
are reached through the chat translation, both ways. Every error is in Anthropic's envelope
``{"type": "error", "error": {"type", "message"}}`` with the matching status."""

from __future__ import annotations

import logging
import math

import orjson
from starlette.requests import Request
from starlette.responses import Response

from router_service.api.auth import check_client_auth
from router_service.api.pipeline import read_body
from router_service.api.run import ChatRun, admit, forward, relay_events, serve
from router_service.api.state import RouterState
from router_service.api.translated import relay_translated, relayed, whole_answer
from router_service.errors import ApiError
from router_service.features import content_text
from router_service.messages_api.events import MessagesStream, error_event, is_final_event
from router_service.messages_api.output import error_bytes, message_bytes, message_shell
from router_service.messages_api.protocol import (
    MessagesCall,
    anthropic_envelope,
    error_type,
    parse_count_tokens,
    parse_messages,
)
from router_service.messages_api.request import chat_body, chat_messages, scan_fields
from router_service.protocol import parse_json_object
from router_service.upstream import NativeRequest

log = logging.getLogger("router_service")
ENDPOINT = "/v1/messages"
COUNT_TOKENS = "/v1/messages/count_tokens"
CHARS_PER_TOKEN = 4  # count_tokens' estimate: no backend's tokenizer is consulted


async def _route(request: Request, run: ChatRun) -> Response:
    run.envelope = anthropic_envelope
    raw = await admit(request, run)
    data = parse_json_object(raw)
    run.stream = data.get("stream") is True
    call = parse_messages(data)
    run.stream = call.request.stream
    metadata = call.request.metadata
    outcome = await forward(
        request,
        run,
        chat_body(call),
        model=call.request.model,
        metadata=metadata.model_dump() if metadata else None,
        body_bytes=len(raw),
        fields=scan_fields(data),  # and the translated messages, as they go upstream
        native=NativeRequest("messages", data),
    )
    if outcome.native:  # an Anthropic backend answered in Messages itself
        if outcome.stream is not None:
            events = relay_events(run, outcome.stream, _stream_failed)
            return relayed(run, events, is_final=is_final_event)
        return whole_answer(run, outcome, _as_is)
    shell = message_shell(outcome.slot.backend.model)
    if outcome.stream is not None:
        events = relay_translated(run, outcome.stream, MessagesStream(shell))
        return relayed(run, events, is_final=is_final_event)
    return whole_answer(run, outcome, lambda body: message_bytes(shell, body), _client_error)


def _as_is(body: bytes) -> bytes:
    return body


def _stream_failed(message: str, code: str) -> list[bytes]:
    """A native stream broke or sent an error event -> the client's closing ``error``."""
    return [error_event(message)]


def _client_error(body: bytes, status: int) -> bytes:
    """A backend's own client error (OpenAI's envelope) -> Anthropic's."""
    return error_bytes(body, error_type(status))


async def messages(request: Request) -> Response:
    return await serve(request, _route, endpoint=ENDPOINT, api="messages")


def _error(err: ApiError) -> Response:
    return Response(
        orjson.dumps(anthropic_envelope(err)),
        err.status,
        err.headers,
        media_type="application/json",
    )


def estimate_tokens(call: MessagesCall) -> int:
    """The translated messages' text (content, tool calls' names and arguments) and the
    tools' JSON -> about ``CHARS_PER_TOKEN`` characters per token; images are not counted."""
    chars = 0
    for m in chat_messages(call):
        chars += len(content_text(m.get("content")))
        for tool_call in m.get("tool_calls") or ():
            fn = tool_call["function"]
            chars += len(fn["name"]) + len(fn["arguments"])
    tools = call.request.tools
    if tools:
        chars += len(orjson.dumps([t.model_dump(exclude_none=True) for t in tools]))
    return math.ceil(chars / CHARS_PER_TOKEN)


async def count_tokens(request: Request) -> Response:
    """An estimate of the request's input tokens (``estimate_tokens``): not routed, no
    backend called, no log row."""
    state: RouterState = request.app.state.router
    try:
        check_client_auth(state.settings, request.headers)
        raw = await read_body(request, state.settings.max_body_bytes)
        call = parse_count_tokens(parse_json_object(raw))
        tokens = estimate_tokens(call)
    except ApiError as err:
        return _error(err)
    except Exception as exc:  # still in Anthropic's envelope
        log.exception("count_tokens failed")
        return _error(ApiError(500, f"Internal router error: {type(exc).__name__}"))
    body = orjson.dumps({"input_tokens": tokens})
    return Response(body, media_type="application/json")
