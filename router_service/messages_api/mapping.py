"""The Anthropic Messages <-> OpenAI chat correspondences, both directions, pure.

Shared by the Anthropic backend (the router speaking Messages *outbound*: chat ->
Messages, Anthropic's answer -> chat) and the ``/v1/messages`` endpoint (Messages
*inbound*: the client's request -> chat, the backend's chat answer -> Messages), so one
table says what each stop reason, tool choice and image source means."""

from __future__ import annotations

from typing import Any

import orjson

# Anthropic ``stop_reason`` -> OpenAI ``finish_reason``.
STOP_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# OpenAI ``finish_reason`` -> Anthropic ``stop_reason`` (chat does not say whether "stop"
# was the end of the turn or a stop sequence: it is reported as ``end_turn``).
FINISH_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish_reason: Any) -> str:
    """OpenAI ``finish_reason`` -> Anthropic ``stop_reason`` (unknown: ``end_turn``)."""
    return FINISH_REASONS.get(str(finish_reason), "end_turn")


def image_block(url: str) -> dict[str, Any] | None:
    """An OpenAI ``image_url`` URL (a ``data:`` URL or http(s)) -> an Anthropic image block."""
    if url.startswith("data:") and ";base64," in url:
        head, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": head, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    return None


def image_url(source: dict[str, Any]) -> str:
    """An Anthropic image ``source`` (base64 or url) -> the URL an OpenAI ``image_url``
    part takes (base64 as a ``data:`` URL)."""
    if source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    return str(source.get("url", ""))


def anthropic_tool_choice(choice: Any) -> dict[str, Any] | None:
    """OpenAI ``tool_choice`` -> Anthropic's (None: leave it to the default)."""
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"type": "tool", "name": name}
    return None


def openai_tool_choice(choice: dict[str, Any]) -> str | dict[str, Any]:
    """Anthropic ``tool_choice`` (auto / any / tool / none) -> OpenAI's."""
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(str(kind), "auto")


def tool_arguments(arguments: Any) -> Any:
    """OpenAI tool-call ``arguments`` (a JSON string) -> Anthropic's ``input`` object
    (unparseable text is kept as ``{"_raw": text}`` rather than lost)."""
    if isinstance(arguments, str):
        try:
            return orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError:
            return {"_raw": arguments}
    return arguments or {}
