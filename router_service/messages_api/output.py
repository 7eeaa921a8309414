"""A backend's chat completion (OpenAI bytes) -> Anthropic's ``message`` object; a
backend's OpenAI error body -> Anthropic's error envelope.

The message: ``id`` ``msg_...``, ``content`` blocks (the answer's text, then one
``tool_use`` block per tool call with its ``arguments`` parsed into ``input``),
``stop_reason`` from ``finish_reason`` (``mapping.FINISH_REASONS``: length -> max_tokens,
tool_calls -> tool_use, stop -> end_turn), ``usage`` from the completion's. Shapes are the
anthropic SDK's ``anthropic.types.Message``."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from router_service.messages_api.mapping import stop_reason, tool_arguments


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def message_shell(model: str) -> dict[str, Any]:
    """The message before any content (``message_start``'s, and the base of the answer)."""
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }


def tool_use_block(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": str(call.get("id") or new_id("toolu")),
        "name": str(fn.get("name") or ""),
        "input": tool_arguments(fn.get("arguments")),
    }


def usage(chat_usage: Any) -> dict[str, int]:
    chat_usage = chat_usage if isinstance(chat_usage, dict) else {}
    return {
        "input_tokens": int(chat_usage.get("prompt_tokens") or 0),
        "output_tokens": int(chat_usage.get("completion_tokens") or 0),
    }


def message_object(shell: dict[str, Any], completion: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` -> the ``message`` (raises on a shape it cannot read)."""
    choice = completion["choices"][0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):  # content parts
        text = "".join(str(p.get("text", "")) for p in text if isinstance(p, dict))
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    content.extend(tool_use_block(call) for call in message.get("tool_calls") or ())
    reason = stop_reason(choice.get("finish_reason"))
    if reason == "end_turn" and any(b["type"] == "tool_use" for b in content):
        reason = "tool_use"  # some servers say "stop" after tool calls
    out = {
        **shell,
        "content": content,
        "stop_reason": reason,
        "usage": usage(completion.get("usage")),
    }
    if isinstance(completion.get("model"), str):
        out["model"] = completion["model"]
    return out


def message_bytes(shell: dict[str, Any], raw: bytes) -> bytes:
    completion = orjson.loads(raw)
    if not isinstance(completion, dict):
        raise ValueError("the completion is not a JSON object")
    return orjson.dumps(message_object(shell, completion))


def error_bytes(raw: bytes, kind: str) -> bytes:
    """A backend's OpenAI error body (passed through for a client error) -> Anthropic's
    envelope with the same message; ``kind`` is the error type for its status."""
    message = raw.decode("utf-8", errors="replace")[:500]
    try:
        data = orjson.loads(raw)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and err.get("message"):
            message = str(err["message"])
    except orjson.JSONDecodeError:
        pass
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
