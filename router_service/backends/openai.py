"""OpenAI-compatible backend (OpenAI, OpenRouter, vLLM, llama.cpp, LM Studio ...): the
client's body with ``model`` set to the backend's model -> the backend's bytes, unmodified.

Streams are framed and each event's JSON is checked (so a malformed stream ends with a
clear error event instead of confusing the client), but the bytes of every event are
forwarded exactly as they arrived."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from router_service.backends.answers import UsageStats
from router_service.backends.base import Backend
from router_service.backends.errors import UpstreamError, json_object
from router_service.backends.sse import DONE_EVENT, SSEParser
from router_service.errors import error_envelope, error_type_for

# ``token_limit_param`` -> the spelling it replaces.
TOKEN_LIMIT_ALIASES = {"max_tokens": "max_completion_tokens", "max_completion_tokens": "max_tokens"}


def _null_content(message: Any) -> bool:
    return isinstance(message, dict) and "content" in message and message["content"] is None


class OpenAIBackend(Backend):
    kind = "openai"
    chat_path = "/chat/completions"

    def request_body(self, body: dict[str, Any], stream: bool) -> bytes:
        if body.get("model") != self.model:
            body = {**body, "model": self.model}
        return orjson.dumps(self.adapt(body))

    def adapt(self, body: dict[str, Any]) -> dict[str, Any]:
        """The client's body -> what this backend accepts (``BackendConfig``:
        ``token_limit_param``, ``drop_params``, ``null_content``); unchanged (same object)
        when nothing applies, so the common case copies nothing."""
        cfg = self.config
        out = body
        if cfg.token_limit_param is not None:
            other = TOKEN_LIMIT_ALIASES[cfg.token_limit_param]
            if other in out:
                out = dict(out)
                value = out.pop(other)
                out.setdefault(cfg.token_limit_param, value)
        if cfg.drop_params and any(k in out for k in cfg.drop_params):
            out = {k: v for k, v in out.items() if k not in cfg.drop_params}
        if cfg.null_content == "empty":
            messages = out.get("messages")
            if isinstance(messages, list) and any(_null_content(m) for m in messages):
                fixed = [{**m, "content": ""} if _null_content(m) else m for m in messages]
                out = {**out, "messages": fixed}
        return out

    def translate_completion(self, status: int, raw: bytes, stats: UsageStats) -> bytes:
        data = orjson.loads(raw)
        if not isinstance(data, dict) or "choices" not in data:
            raise ValueError("response is not a chat.completion object")
        choices = data["choices"]
        if not isinstance(choices, list) or not choices:
            raise ValueError("chat.completion without choices")  # no answer: fall back
        stats.take_usage(data.get("usage"))
        if isinstance(choices[0], dict):
            message = choices[0].get("message") or {}
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                stats.answer_parts.append(content)
            stats.finish_reason = choices[0].get("finish_reason")
        return raw

    def translate_error(self, status: int, raw: bytes) -> bytes:
        try:
            data = orjson.loads(raw)
            if isinstance(data, dict) and isinstance(data.get("error"), dict):
                return raw
        except orjson.JSONDecodeError:
            pass
        text = raw.decode("utf-8", errors="replace").strip()[:500] or f"HTTP {status}"
        message = f"backend {self.name} returned HTTP {status}: {text}"
        return orjson.dumps(error_envelope(message, error_type_for(status), None, None))

    async def stream_events(
        self, chunks: AsyncIterator[bytes], body: dict[str, Any], stats: UsageStats
    ) -> AsyncIterator[bytes]:
        parser = SSEParser()
        done = False
        started = False
        async for chunk in chunks:
            for ev in parser.feed(chunk):
                out = self._check(ev.raw, ev.data, stats, started)
                if out is None:
                    continue
                if ev.data == "[DONE]":
                    done = True
                started = True
                yield out
                if done:
                    return
        for ev in parser.close():
            out = self._check(ev.raw, ev.data, stats, started)
            if out is not None:
                started = True
                yield out
                if ev.data == "[DONE]":
                    return
        if stats.finish_reason is not None:
            yield DONE_EVENT  # complete answer, only the terminator was missing
            return
        raise UpstreamError("protocol", f"{self.name}: stream ended before [DONE]")

    def _check(
        self, raw: bytes, data: str | None, stats: UsageStats, started: bool
    ) -> bytes | None:
        if data is None:
            return raw if started else None  # comment/keep-alive: forward once streaming
        if data == "[DONE]":
            return raw
        obj = json_object(data, self.name, "SSE event")
        if "error" in obj:
            err = obj["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            if not started:
                raise UpstreamError("status", f"{self.name}: stream error: {msg}")
            return raw
        stats.take_usage(obj.get("usage"))
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content")
                if isinstance(content, str):
                    stats.answer_parts.append(content)
            if choice.get("finish_reason"):
                stats.finish_reason = choice["finish_reason"]
        return raw

    def probe_path(self) -> str:
        return "/models"
