"""Anthropic backend: OpenAI chat request -> Messages API request (``POST /v1/messages``);
Anthropic's message or event stream -> OpenAI ``chat.completion`` / chunk events. A client's
own Messages request goes through untranslated (``backends.anthropic_native``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from router_service.backends.answers import UsageStats
from router_service.backends.anthropic_native import (
    decode_event,
    finish_reason,
    native_error,
    native_events,
    native_request,
    observe_event,
    observe_message,
    prompt_tokens,
)
from router_service.backends.base import Backend
from router_service.backends.errors import UpstreamError
from router_service.backends.sse import DONE_EVENT, ChunkWriter, SSEParser, completion_object
from router_service.errors import error_envelope, error_type_for
from router_service.features import content_text
from router_service.messages_api.mapping import (
    anthropic_tool_choice,
    image_block,
    tool_arguments,
)


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and part.get("text"):
            blocks.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image_url":
            block = image_block(str((part.get("image_url") or {}).get("url", "")))
            if block:
                blocks.append(block)
    return blocks


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Anthropic wants alternating roles: consecutive same-role turns are merged."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def openai_to_anthropic(
    body: dict[str, Any], model: str, stream: bool, default_max_tokens: int
) -> dict[str, Any]:
    """OpenAI chat request -> Anthropic Messages request."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for m in body.get("messages", []):
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(content_text(m.get("content")))
        elif role in ("tool", "function"):
            block = {
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id") or m.get("name") or "",
                "content": content_text(m.get("content")),
            }
            _append(messages, "user", [block])
        elif role == "assistant":
            blocks: list[dict[str, Any]] = []
            text = content_text(m.get("content"))
            if text:
                blocks.append({"type": "text", "text": text})
            for call in m.get("tool_calls") or ():
                fn = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": fn.get("name", ""),
                        "input": tool_arguments(fn.get("arguments")),
                    }
                )
            _append(messages, "assistant", blocks)
        else:
            _append(messages, "user", _user_blocks(m.get("content")))
    out: dict[str, Any] = {
        "model": model,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or default_max_tokens,
        "messages": messages,
    }
    if stream:
        out["stream"] = True
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), 1.0)  # Anthropic's range is 0-1
    for name in ("top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = body.get("tools")
    if tools:
        out["tools"] = [
            {
                "name": (t.get("function") or {}).get("name", ""),
                "description": (t.get("function") or {}).get("description", ""),
                "input_schema": (t.get("function") or {}).get("parameters")
                or {"type": "object", "properties": {}},
            }
            for t in tools
            if isinstance(t, dict)
        ]
    choice = anthropic_tool_choice(body.get("tool_choice"))
    if choice:
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    return out


def anthropic_to_openai(data: dict[str, Any], model: str) -> dict[str, Any]:
    """Anthropic ``message`` -> OpenAI ``chat.completion``."""
    if data.get("type") == "error":
        raise ValueError(f"Anthropic error: {data.get('error')}")
    blocks = data.get("content")
    if not isinstance(blocks, list):
        raise ValueError("no 'content' list in Anthropic response")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": orjson.dumps(block.get("input", {})).decode(),
                    },
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    usage = data.get("usage") or {}
    return completion_object(
        data.get("model") or model,
        message,
        finish_reason(data.get("stop_reason")),
        prompt_tokens(usage),
        int(usage.get("output_tokens") or 0),
        completion_id=data.get("id"),
    )


@dataclass(slots=True)
class _StreamState:
    writer: ChunkWriter
    tool_index: dict[int, int] = field(default_factory=dict)  # content block -> tool call
    done: bool = False


class AnthropicBackend(Backend):
    kind = "anthropic"
    chat_path = "/v1/messages"

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.config.anthropic_version, **self.config.headers}
        if self.resolved.api_key:
            headers["x-api-key"] = self.resolved.api_key
        return headers

    def request_body(self, body: dict[str, Any], stream: bool) -> bytes:
        cfg = self.config
        return orjson.dumps(openai_to_anthropic(body, self.model, stream, cfg.default_max_tokens))

    def translate_completion(self, status: int, raw: bytes, stats: UsageStats) -> bytes:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("response is not a JSON object")
        return self.completion_bytes(anthropic_to_openai(data, self.model), stats)

    def translate_error(self, status: int, raw: bytes) -> bytes:
        message = raw.decode("utf-8", errors="replace").strip()[:500]
        err_type = error_type_for(status)
        try:
            data = orjson.loads(raw)
            err = data.get("error") if isinstance(data, dict) else None
            if isinstance(err, dict):
                message = str(err.get("message", message))
                err_type = str(err.get("type", err_type))
        except orjson.JSONDecodeError:
            pass
        text = f"backend {self.name} (anthropic) returned HTTP {status}: {message or 'no body'}"
        return orjson.dumps(error_envelope(text, err_type, None, None))

    async def stream_events(
        self, chunks: AsyncIterator[bytes], body: dict[str, Any], stats: UsageStats
    ) -> AsyncIterator[bytes]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        state = _StreamState(ChunkWriter(self.model, include_usage))
        parser = SSEParser()
        async for chunk in chunks:
            for ev in parser.feed(chunk):
                for out in self._event(ev.data, state, stats):
                    yield out
                if state.done:
                    return
        for ev in parser.close():
            for out in self._event(ev.data, state, stats):
                yield out
            if state.done:
                return
        raise UpstreamError("protocol", f"{self.name}: Anthropic stream ended before message_stop")

    def _event(self, data: str | None, state: _StreamState, stats: UsageStats) -> list[bytes]:
        if data is None:
            return []
        ev = decode_event(data, self.name)
        observe_event(ev, stats, self.name)  # usage, answer text, stop reason; raises on error
        kind = ev.get("type")
        w = state.writer
        if kind == "message_start":
            msg = ev.get("message") or {}
            if msg.get("id"):
                w.id = msg["id"]
            return [w.role()]
        if kind == "content_block_start":
            block = ev.get("content_block") or {}
            if block.get("type") == "tool_use":
                k = len(state.tool_index)
                state.tool_index[int(ev.get("index", 0))] = k
                return [w.tool_call_start(k, block.get("id", ""), block.get("name", ""))]
            if block.get("type") == "text" and block.get("text"):
                return [w.content(block["text"])]
            return []
        if kind == "content_block_delta":
            delta = ev.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [w.content(delta.get("text", ""))]
            if delta.get("type") == "input_json_delta":
                k = state.tool_index.get(int(ev.get("index", 0)), 0)
                return [w.tool_call_arguments(k, delta.get("partial_json", ""))]
            return []
        if kind == "message_stop":
            reason = stats.finish_reason = stats.finish_reason or "stop"
            out = [w.finish(reason)]
            if w.include_usage:
                out.append(w.usage(stats.prompt_tokens or 0, stats.completion_tokens or 0))
            out.append(DONE_EVENT)
            state.done = True
            return out
        return []  # message_delta (read by observe_event), ping, content_block_stop, unknown

    # -- the client's own Messages requests, untranslated ------------------------------
    def speaks(self, api: str) -> bool:
        return api == "messages"

    def native_body(self, body: dict[str, Any], stream: bool) -> bytes:
        return native_request(body, self.model, stream, self.config.default_max_tokens)

    def read_native(self, raw: bytes, stats: UsageStats) -> bytes:
        return observe_message(raw, stats)

    def native_error(self, status: int, raw: bytes) -> bytes:
        return native_error(status, raw)

    def native_events(
        self, chunks: AsyncIterator[bytes], stats: UsageStats
    ) -> AsyncIterator[bytes]:
        return native_events(chunks, stats, self.name)

    def probe_path(self) -> str:
        return "/v1/models"
