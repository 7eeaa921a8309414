"""Anthropic's Messages wire format passed through untranslated: a client's Messages body ->
the upstream request (the backend's model, the stream flag); the upstream's message, error
or event stream -> the same bytes, read on the way for what the log and the metrics keep
(usage, answer text, stop reason).

Used when a ``POST /v1/messages`` request is routed to an Anthropic backend: nothing the
chat translation cannot carry (``thinking``, ``cache_control``, ``top_k``, server tools,
citations, future fields) is lost in either direction. ``observe_event`` is shared with the
translating path (``backends.anthropic``), so both keep the same books."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from router_service.backends.answers import UsageStats
from router_service.backends.errors import UpstreamError, json_object
from router_service.backends.sse import SSEParser
from router_service.messages_api.mapping import STOP_REASONS
from router_service.messages_api.output import error_bytes
from router_service.messages_api.protocol import error_type


def prompt_tokens(usage: dict[str, Any]) -> int:
    """Anthropic usage -> input tokens, cache writes and reads included."""
    return sum(
        int(usage.get(k) or 0)
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )


def finish_reason(stop_reason: Any) -> str:
    """Anthropic ``stop_reason`` -> the chat ``finish_reason`` the log records."""
    return STOP_REASONS.get(stop_reason or "", "stop")


def native_request(
    body: dict[str, Any], model: str, stream: bool, default_max_tokens: int
) -> bytes:
    """The client's Messages body -> the upstream's: every field as the client sent it, but
    the backend's model, and ``stream`` only when streaming."""
    out = {**body, "model": model}
    out.pop("stream", None)
    if stream:
        out["stream"] = True
    out.setdefault("max_tokens", default_max_tokens)
    return orjson.dumps(out)


def observe_message(raw: bytes, stats: UsageStats) -> bytes:
    """A 2xx Messages answer -> the same bytes, with ``stats`` filled from them; a body that
    is not a ``message`` object raises ``ValueError`` (the router fails over)."""
    data = orjson.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise ValueError("response is not an Anthropic message object")
    usage = data.get("usage") or {}
    stats.prompt_tokens = prompt_tokens(usage)
    if usage.get("output_tokens") is not None:
        stats.completion_tokens = int(usage["output_tokens"])
    for block in data["content"]:
        if isinstance(block, dict) and block.get("type") == "text":
            stats.answer_parts.append(str(block.get("text", "")))
    stats.finish_reason = finish_reason(data.get("stop_reason"))
    return raw


def native_error(status: int, raw: bytes) -> bytes:
    """A non-2xx upstream body -> Anthropic's error envelope: the upstream's own when it sent
    one (relayed as it is), else one carrying its text (``messages_api.output.error_bytes``,
    typed for the status as the router's own Messages errors are)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return raw
    return error_bytes(raw.strip() or f"HTTP {status}".encode(), error_type(status))


def decode_event(data: str, name: str) -> dict[str, Any]:
    """One SSE ``data`` payload -> the event object (``UpstreamError`` if it is not one)."""
    return json_object(data, name, "SSE event")


def observe_event(ev: dict[str, Any], stats: UsageStats, name: str) -> None:
    """One Anthropic stream event -> ``stats`` (usage, answer text, stop reason); an
    ``error`` event raises ``UpstreamError`` with the upstream's message."""
    kind = ev.get("type")
    if kind == "message_start":
        stats.prompt_tokens = prompt_tokens((ev.get("message") or {}).get("usage") or {})
    elif kind == "content_block_start":
        block = ev.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            stats.answer_parts.append(block["text"])
    elif kind == "content_block_delta":
        delta = ev.get("delta") or {}
        if delta.get("type") == "text_delta":
            stats.answer_parts.append(delta.get("text", ""))
    elif kind == "message_delta":
        reason = (ev.get("delta") or {}).get("stop_reason")
        if reason:
            stats.finish_reason = finish_reason(reason)
        usage = ev.get("usage") or {}
        if usage.get("output_tokens") is not None:
            stats.completion_tokens = int(usage["output_tokens"])
    elif kind == "error":
        err = ev.get("error") or {}
        raise UpstreamError("status", f"{name}: Anthropic stream error: {err.get('message')}")


def _is_stop(data: str, stats: UsageStats, name: str) -> bool:
    ev = decode_event(data, name)
    observe_event(ev, stats, name)
    if ev.get("type") != "message_stop":
        return False
    stats.finish_reason = stats.finish_reason or "stop"
    return True


async def native_events(
    chunks: AsyncIterator[bytes], stats: UsageStats, name: str
) -> AsyncIterator[bytes]:
    """Upstream body chunks -> its SSE events exactly as they arrived, through
    ``message_stop``; a stream that ends before it, or an ``error`` event, raises
    ``UpstreamError`` (the client's stream then ends with the router's ``error`` event)."""
    parser = SSEParser()
    async for chunk in chunks:
        for ev in parser.feed(chunk):
            if ev.data is None:  # a comment
                continue
            stop = _is_stop(ev.data, stats, name)
            yield ev.raw
            if stop:
                return
    for ev in parser.close():  # a last event without its blank line
        if ev.data is not None and _is_stop(ev.data, stats, name):
            yield ev.raw
            return
    raise UpstreamError("protocol", f"{name}: Anthropic stream ended before message_stop")
