"""A validated Responses request -> one chat-completions body (what every backend speaks),
and the client's body -> what the privacy scan reads.

``instructions`` -> a system message first; message items -> chat messages (parts:
``input_text``/``output_text`` -> ``text``, ``input_image`` -> ``image_url``, ``input_file``
-> ``file``; a lone text part -> plain string content); ``function_call`` items -> the
assistant message's ``tool_calls`` (merged into the assistant message just before them, as
one chat turn); ``function_call_output`` -> a ``role: tool`` message with ``tool_call_id``.
Function tools are nested the chat way (``{"type": "function", "function": {...}}``),
``text.format`` -> ``response_format``, ``max_output_tokens`` -> ``max_completion_tokens``
(each backend renames it to what it reads: ``token_limit_param``), ``reasoning.effort`` ->
``reasoning_effort``. Fields only the Responses API has are consumed here; unknown fields
go on to the backend as chat passes them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from router_service.responses_api.protocol import (
    FormatJsonObject,
    FormatJsonSchema,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    InputFile,
    InputImage,
    MessageItem,
    Refusal,
    ResponsesCall,
    ToolChoiceAllowed,
    ToolChoiceFunction,
)

# Read (and translated, echoed or refused) here, or chat-only fields that would change what
# is translated back (``messages``, ``n``): never forwarded under their own name.
CONSUMED = frozenset(
    {
        "model", "input", "instructions", "stream", "tools", "tool_choice",
        "parallel_tool_calls", "text", "reasoning", "max_output_tokens", "temperature",
        "top_p", "metadata", "user", "store", "previous_response_id", "conversation",
        "prompt", "background", "truncation", "include", "stream_options", "max_tool_calls",
        "top_logprobs", "messages", "n",
    }
)  # fmt: skip
_IMAGE_DETAIL = ("low", "high", "auto")  # what chat's image_url takes


def _part(part: BaseModel, role: str) -> dict[str, Any]:
    if isinstance(part, InputImage):
        image: dict[str, Any] = {"url": part.image_url}
        if part.detail in _IMAGE_DETAIL:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(part, InputFile):
        fields = ("file_data", "file_id", "filename")
        return {"type": "file", "file": {k: getattr(part, k) for k in fields if getattr(part, k)}}
    if isinstance(part, Refusal):
        if role == "assistant":
            return {"type": "refusal", "refusal": part.refusal}
        return {"type": "text", "text": part.refusal}
    return {"type": "text", "text": part.text}  # type: ignore[attr-defined]


def _content(content: str | list[Any], role: str) -> str | list[dict[str, Any]]:
    """Responses content -> chat content; text alone becomes a plain string (the form
    every backend takes; an assistant's text parts are one answer, joined)."""
    if isinstance(content, str):
        return content
    parts = [_part(p, role) for p in content]
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    if role == "assistant" and parts and all(p["type"] == "text" for p in parts):
        return "".join(str(p["text"]) for p in parts)
    return parts


def _tool_call(item: FunctionCallItem) -> dict[str, Any]:
    function = {"name": item.name, "arguments": item.arguments}
    return {"id": item.call_id, "type": "function", "function": function}


def chat_messages(call: ResponsesCall) -> list[dict[str, Any]]:
    """``instructions`` + input items -> chat messages."""
    instructions = call.request.instructions
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    turn_open = False  # the last message is an assistant turn that tool calls may join
    for item in call.items:
        if isinstance(item, FunctionCallItem):
            if turn_open:
                messages[-1].setdefault("tool_calls", []).append(_tool_call(item))
            else:
                messages.append({"role": "assistant", "content": None})
                messages[-1]["tool_calls"] = [_tool_call(item)]
            turn_open = True
        elif isinstance(item, FunctionCallOutputItem):
            content = _content(item.output, "tool")
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": content})
            turn_open = False
        else:
            assert isinstance(item, MessageItem)
            messages.append(_message(item))
            turn_open = item.role == "assistant"
    return messages


def _message(item: MessageItem) -> dict[str, Any]:
    content = _content(item.content, item.role)
    if item.role != "assistant" or isinstance(content, str):
        return {"role": item.role, "content": content}
    refusals = [p["refusal"] for p in content if p["type"] == "refusal"]
    rest = [p for p in content if p["type"] != "refusal"]
    out: dict[str, Any] = {"role": "assistant", "content": _content_or_none(rest)}
    if refusals:
        out["refusal"] = "".join(refusals)
    return out


def _content_or_none(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]] | None:
    if not parts:
        return None
    if all(p["type"] == "text" for p in parts):
        return "".join(str(p["text"]) for p in parts)
    return parts


def chat_tool(tool: FunctionTool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    for key in ("description", "parameters", "strict"):
        value = getattr(tool, key)
        if value is not None:
            function[key] = value
    return {"type": "function", "function": function}


def chat_tool_choice(choice: str | BaseModel) -> str | dict[str, Any]:
    if isinstance(choice, ToolChoiceFunction):
        return {"type": "function", "function": {"name": choice.name}}
    if isinstance(choice, ToolChoiceAllowed):
        tools = [{"type": "function", "function": {"name": t.name}} for t in choice.tools]
        return {"type": "allowed_tools", "allowed_tools": {"mode": choice.mode, "tools": tools}}
    assert isinstance(choice, str)
    return choice


def response_format(call: ResponsesCall) -> dict[str, Any] | None:
    """``text.format`` -> chat ``response_format`` (None for plain text, the default)."""
    fmt = call.text.format if call.text else None
    if isinstance(fmt, FormatJsonObject):
        return {"type": "json_object"}
    if isinstance(fmt, FormatJsonSchema):
        schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema_}
        if fmt.description is not None:
            schema["description"] = fmt.description
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        return {"type": "json_schema", "json_schema": schema}
    return None


def chat_body(call: ResponsesCall, data: Mapping[str, Any]) -> dict[str, Any]:
    """The Responses request (``call``, parsed from ``data``) -> a chat-completions body."""
    req = call.request
    body: dict[str, Any] = {k: v for k, v in data.items() if k not in CONSUMED}
    body["model"] = req.model
    body["messages"] = chat_messages(call)
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # -> the usage of response.completed
    if req.max_output_tokens is not None:
        body["max_completion_tokens"] = req.max_output_tokens
    for key in ("temperature", "top_p", "user"):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    if call.tools:  # chat refuses tool_choice / parallel_tool_calls without tools
        body["tools"] = [chat_tool(t) for t in call.tools]
        if call.tool_choice is not None:
            body["tool_choice"] = chat_tool_choice(call.tool_choice)
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
    fmt = response_format(call)
    if fmt is not None:
        body["response_format"] = fmt
    if call.text is not None and call.text.verbosity is not None:
        body["verbosity"] = call.text.verbosity
    if req.reasoning is not None and req.reasoning.effort is not None:
        body["reasoning_effort"] = req.reasoning.effort
    return body


def _strip_payload(part: Any) -> Any:
    """A content part without its binary payload (chat's scan skips image and file data
    the same way: it reads text, not base64)."""
    if not isinstance(part, dict):
        return part
    out = {k: v for k, v in part.items() if k != "file_data"}
    url = out.get("image_url")
    if isinstance(url, str) and url.startswith("data:"):
        out.pop("image_url")
    return out


def scan_fields(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The client's Responses body -> what the privacy scan reads: every field as sent
    (instructions, every input item with all its keys, tools, text.format's schema,
    metadata, unknown fields ...), image and file payloads left out. The translated chat
    messages are scanned too (what goes upstream, e.g. an answer's parts joined), so a
    secret anywhere in either pins the request to the local tier."""
    items = data.get("input")
    if not isinstance(items, list):
        return data
    stripped = []
    for item in items:
        if isinstance(item, dict):
            item = dict(item)
            for key in ("content", "output"):
                if isinstance(item.get(key), list):
                    item[key] = [_strip_payload(p) for p in item[key]]
        stripped.append(item)
    return {**data, "input": stripped}
