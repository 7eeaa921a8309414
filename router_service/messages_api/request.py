"""A validated Messages request -> one chat-completions body (what every backend speaks),
and the client's body -> what the privacy scan reads.

``system`` (a string or text blocks) -> one system message first. A user turn's blocks:
``text`` -> text parts, ``image`` -> an ``image_url`` part (base64 as a ``data:`` URL),
``tool_result`` -> a ``role: tool`` message with ``tool_call_id`` (emitted first, where
chat wants them: right after the assistant's tool calls; a result's images go on to the
user message after it; ``is_error`` -> the text prefixed ``Error:``); a lone text part ->
plain string content. An assistant turn: text blocks -> ``content``, ``tool_use`` ->
``tool_calls`` (``input`` as JSON ``arguments``), ``thinking`` blocks are not forwarded.
``tools`` -> function tools (``input_schema`` -> ``parameters``), ``tool_choice`` auto /
any / tool / none -> auto / required / the function / none (``disable_parallel_tool_use``
-> ``parallel_tool_calls: false``), ``stop_sequences`` -> ``stop``, ``max_tokens`` ->
``max_completion_tokens`` (each backend renames it to what it reads), ``metadata.user_id``
-> ``user``; ``top_k`` has no chat counterpart and is dropped, as are unknown fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel

from router_service.messages_api.mapping import image_url, openai_tool_choice
from router_service.messages_api.protocol import (
    ImageBlock,
    MessagesCall,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)


def system_text(call: MessagesCall) -> str | None:
    system = call.system
    if isinstance(system, list):
        return "\n\n".join(b.text for b in system if b.text) or None
    return system or None


def _image_part(block: ImageBlock) -> dict[str, Any]:
    source = block.source.model_dump()
    return {"type": "image_url", "image_url": {"url": image_url(source)}}


def _parts_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def _tool_result(block: ToolResultBlock, images: list[dict[str, Any]]) -> dict[str, Any]:
    content = block.content
    if isinstance(content, list):
        texts = [b.text for b in content if isinstance(b, TextBlock)]
        images.extend(_image_part(b) for b in content if isinstance(b, ImageBlock))
        text = "\n".join(texts)
    else:
        text = content or ""
    if block.is_error:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}


def _user(content: list[BaseModel]) -> list[dict[str, Any]]:
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    result_images: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, ToolResultBlock):
            tool_messages.append(_tool_result(block, result_images))
        elif isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append(_image_part(block))
    parts.extend(result_images)
    if parts:
        tool_messages.append({"role": "user", "content": _parts_content(parts)})
    return tool_messages


def _assistant(content: list[BaseModel]) -> dict[str, Any]:
    texts = [b.text for b in content if isinstance(b, TextBlock)]
    calls = [
        {
            "id": b.id,
            "type": "function",
            "function": {"name": b.name, "arguments": orjson.dumps(b.input).decode()},
        }
        for b in content
        if isinstance(b, ToolUseBlock)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def chat_messages(call: MessagesCall) -> list[dict[str, Any]]:
    """``system`` + the turns -> chat messages."""
    messages: list[dict[str, Any]] = []
    system = system_text(call)
    if system:
        messages.append({"role": "system", "content": system})
    for role, content in call.messages:
        if isinstance(content, str):
            messages.append({"role": role, "content": content})
        elif role == "assistant":
            messages.append(_assistant(content))
        else:
            messages.extend(_user(content))
    return messages


def chat_body(call: MessagesCall) -> dict[str, Any]:
    """The Messages request -> a chat-completions body."""
    req = call.request
    body: dict[str, Any] = {"model": req.model, "messages": chat_messages(call)}
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # -> message_delta's usage
    body["max_completion_tokens"] = req.max_tokens
    if req.stop_sequences:
        body["stop"] = list(req.stop_sequences)
    for key in ("temperature", "top_p"):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    if req.metadata is not None and req.metadata.user_id:
        body["user"] = req.metadata.user_id
    if req.tools:  # chat refuses tool_choice without tools
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "parameters": t.input_schema,
                },
            }
            for t in req.tools
        ]
        choice = req.tool_choice
        if choice is not None:
            body["tool_choice"] = openai_tool_choice(choice.model_dump())
            if getattr(choice, "disable_parallel_tool_use", None):
                body["parallel_tool_calls"] = False
    return body


def _strip(block: Any) -> Any:
    """A block without its base64 payload (the scan reads text, not image bytes)."""
    if not isinstance(block, dict):
        return block
    out = dict(block)
    source = out.get("source")
    if isinstance(source, dict) and "data" in source:
        out["source"] = {k: v for k, v in source.items() if k != "data"}
    if isinstance(out.get("content"), list):  # a tool_result's blocks
        out["content"] = [_strip(b) for b in out["content"]]
    return out


def scan_fields(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The client's Messages body -> what the privacy scan reads: every field as sent
    (system, every block of every message with all its keys: tool inputs and results,
    thinking, image URLs; tools, metadata, unknown fields ...), image payloads left out.
    The client's ``messages`` are under another key (the scan reads a ``messages`` field
    as chat messages, and those are the translated ones, scanned too), so a secret in
    either pins the request to the local tier."""
    messages = data.get("messages")
    stripped: Any = messages
    if isinstance(messages, list):
        stripped = []
        for m in messages:
            if isinstance(m, dict) and isinstance(m.get("content"), list):
                m = {**m, "content": [_strip(b) for b in m["content"]]}
            stripped.append(m)
    out = {k: v for k, v in data.items() if k != "messages"}
    out["client_messages"] = stripped
    return out
