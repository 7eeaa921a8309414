"""Ollama backend: OpenAI chat request -> native ``/api/chat`` request; Ollama's answer
(JSON or NDJSON stream) -> OpenAI ``chat.completion`` / ``chat.completion.chunk`` events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from router_service.backends.answers import UsageStats
from router_service.backends.base import Backend
from router_service.backends.errors import UpstreamError, json_object
from router_service.backends.sse import DONE_EVENT, ChunkWriter, LineParser, completion_object
from router_service.errors import error_envelope, error_type_for
from router_service.features import content_text

# OpenAI request field -> Ollama ``options`` field.
_OPTION_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "top_k": "top_k",
    "min_p": "min_p",
    "repeat_penalty": "repeat_penalty",
}


def _images(content: Any) -> list[str]:
    """Data-URL image parts -> base64 strings (Ollama takes raw base64 images)."""
    out: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                if isinstance(url, str) and url.startswith("data:") and "," in url:
                    out.append(url.split(",", 1)[1])
    return out


def _message_to_ollama(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role", "user")
    if role == "developer":
        role = "system"
    elif role == "function":
        role = "tool"
    out: dict[str, Any] = {"role": role, "content": content_text(message.get("content"))}
    images = _images(message.get("content"))
    if images:
        out["images"] = images
    calls = message.get("tool_calls")
    if calls:
        converted = []
        for call in calls:
            fn = call.get("function") or {}
            args = fn.get("arguments")
            if isinstance(args, str):
                try:
                    args = orjson.loads(args) if args.strip() else {}
                except orjson.JSONDecodeError:
                    args = {"_raw": args}
            converted.append({"function": {"name": fn.get("name", ""), "arguments": args or {}}})
        out["tool_calls"] = converted
    if role == "tool" and message.get("name"):
        out["tool_name"] = message["name"]
    return out


def openai_to_ollama(body: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """OpenAI chat request -> Ollama ``/api/chat`` request."""
    out: dict[str, Any] = {
        "model": model,
        "messages": [_message_to_ollama(m) for m in body.get("messages", [])],
        "stream": stream,
    }
    options: dict[str, Any] = {}
    for src, dst in _OPTION_FIELDS.items():
        if body.get(src) is not None:
            options[dst] = body[src]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    stop = body.get("stop")
    if stop is not None:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    if options:
        out["options"] = options
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_object":
            out["format"] = "json"
        elif fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema")
            out["format"] = schema if isinstance(schema, dict) else "json"
    if body.get("tools"):
        out["tools"] = body["tools"]
    for passthrough in ("keep_alive", "think"):
        if passthrough in body:
            out[passthrough] = body[passthrough]
    return out


def _finish_reason(data: dict[str, Any], has_tools: bool) -> str:
    if has_tools:
        return "tool_calls"
    return "length" if data.get("done_reason") == "length" else "stop"


def _tool_calls(message: dict[str, Any], start: int = 0) -> list[dict[str, Any]]:
    out = []
    for i, call in enumerate(message.get("tool_calls") or (), start=start):
        fn = call.get("function") or {}
        args = fn.get("arguments", {})
        out.append(
            {
                "id": call.get("id") or f"call_{i}",
                "type": "function",
                "function": {
                    "name": fn.get("name", ""),
                    "arguments": args if isinstance(args, str) else orjson.dumps(args).decode(),
                },
            }
        )
    return out


def ollama_to_openai(data: dict[str, Any], model: str) -> dict[str, Any]:
    """Ollama ``/api/chat`` response -> OpenAI ``chat.completion``."""
    if "error" in data:
        raise ValueError(f"Ollama error: {data['error']}")
    message = data.get("message")
    if not isinstance(message, dict):
        raise ValueError("no 'message' in Ollama response")
    calls = _tool_calls(message)
    out_msg: dict[str, Any] = {"role": "assistant", "content": message.get("content", "")}
    if calls:
        out_msg["tool_calls"] = calls
    return completion_object(
        data.get("model") or model,
        out_msg,
        _finish_reason(data, bool(calls)),
        int(data.get("prompt_eval_count") or 0),
        int(data.get("eval_count") or 0),
    )


class OllamaBackend(Backend):
    kind = "ollama"
    chat_path = "/api/chat"

    def request_body(self, body: dict[str, Any], stream: bool) -> bytes:
        return orjson.dumps(openai_to_ollama(body, self.model, stream))

    def translate_completion(self, status: int, raw: bytes, stats: UsageStats) -> bytes:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("response is not a JSON object")
        return self.completion_bytes(ollama_to_openai(data, self.model), stats)

    def translate_error(self, status: int, raw: bytes) -> bytes:
        message = raw.decode("utf-8", errors="replace").strip()[:500]
        try:
            data = orjson.loads(raw)
            if isinstance(data, dict) and data.get("error"):
                message = str(data["error"])
        except orjson.JSONDecodeError:
            pass
        text = f"backend {self.name} (ollama) returned HTTP {status}: {message or 'no body'}"
        return orjson.dumps(error_envelope(text, error_type_for(status), None, None))

    def probe_path(self) -> str:
        return "/api/version"

    async def stream_events(
        self, chunks: AsyncIterator[bytes], body: dict[str, Any], stats: UsageStats
    ) -> AsyncIterator[bytes]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        state = _StreamState(ChunkWriter(self.model, include_usage))
        parser = LineParser()
        async for chunk in chunks:
            for line in parser.feed(chunk):
                for out in self._line(line, state, stats):
                    yield out
                if state.done:
                    return
        for line in parser.close():
            for out in self._line(line, state, stats):
                yield out
            if state.done:
                return
        raise UpstreamError("protocol", f"{self.name}: Ollama stream ended before done=true")

    def _line(self, line: bytes, state: _StreamState, stats: UsageStats) -> list[bytes]:
        data = json_object(line, self.name, "NDJSON line")
        if "error" in data:
            raise UpstreamError("status", f"{self.name}: Ollama error: {data['error']}")
        writer = state.writer
        out: list[bytes] = []
        if not state.started:
            state.started = True
            out.append(writer.role())
        message = data.get("message")
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str) and content:
                stats.answer_parts.append(content)
                out.append(writer.content(content))
            for call in _tool_calls(message, start=state.n_calls):
                fn = call["function"]
                out.append(
                    writer.tool_call_start(state.n_calls, call["id"], fn["name"], fn["arguments"])
                )
                state.n_calls += 1
        if data.get("done"):
            reason = _finish_reason(data, state.n_calls > 0)
            stats.finish_reason = reason
            stats.prompt_tokens = int(data.get("prompt_eval_count") or 0)
            stats.completion_tokens = int(data.get("eval_count") or 0)
            out.append(writer.finish(reason))
            if writer.include_usage:
                out.append(writer.usage(stats.prompt_tokens, stats.completion_tokens))
            out.append(DONE_EVENT)
            state.done = True
        return out


@dataclass(slots=True)
class _StreamState:
    writer: ChunkWriter
    started: bool = False
    done: bool = False
    n_calls: int = 0
