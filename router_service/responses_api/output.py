"""A chat completion (the backend's answer) -> the Responses API ``response`` object.

``response_shell`` is everything about the response that the request decides (id, model,
the echoed parameters); ``response_bytes`` adds what the answer says: ``output`` (a
``message`` item with ``output_text`` / ``refusal`` parts, then one ``function_call`` item
per tool call, its ``call_id`` the chat tool call's id), ``status`` (``incomplete`` with
``incomplete_details`` when the backend stopped at the token cap or a content filter) and
``usage`` (``input_tokens`` / ``output_tokens`` / ``total_tokens``). Shapes follow the
openai SDK's ``openai.types.responses.Response``."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from router_service.responses_api.protocol import ResponsesCall

# chat finish_reason -> the Responses incomplete reason (any other reason completes)
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    """``resp_...``, ``msg_...``, ``fc_...``: the Responses API's id forms."""
    return f"{prefix}_{uuid.uuid4().hex}"


def response_shell(call: ResponsesCall, response_id: str, model: str) -> dict[str, Any]:
    """The response before any output (``status`` in_progress): ids and echoed request."""
    req = call.request
    fmt = call.text.format if call.text else None
    text = {
        "format": fmt.model_dump(by_alias=True) if fmt is not None else {"type": "text"},
        "verbosity": call.text.verbosity if call.text else None,
    }
    choice = call.tool_choice
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "metadata": req.metadata or {},
        "model": model,
        "output": [],
        "parallel_tool_calls": req.parallel_tool_calls is not False,
        "previous_response_id": None,
        "reasoning": req.reasoning.model_dump() if req.reasoning else None,
        "store": False,  # nothing is stored, whatever the request said: the router is stateless
        "temperature": req.temperature,
        "text": text,
        "tool_choice": "auto" if choice is None else _dump(choice),
        "tools": [t.model_dump() for t in call.tools],
        "top_p": req.top_p,
        "truncation": "disabled",
        "usage": None,
        "user": req.user,
    }


def _dump(value: Any) -> Any:
    return value if isinstance(value, str) else value.model_dump()


def usage(chat_usage: Any) -> dict[str, Any] | None:
    """Chat ``usage`` -> Responses ``usage`` (None when the backend reported none)."""
    if not isinstance(chat_usage, dict):
        return None
    prompt = chat_usage.get("prompt_tokens")
    completion = chat_usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    cached = (chat_usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    reasoning = (chat_usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": cached if isinstance(cached, int) else 0,
            "cache_write_tokens": 0,  # chat completions report no cache writes
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": reasoning if isinstance(reasoning, int) else 0
        },
        "total_tokens": prompt + completion,
    }


def finished(
    shell: dict[str, Any], output: list[dict[str, Any]], finish_reason: Any, chat_usage: Any
) -> dict[str, Any]:
    """The shell completed: output items, status from the finish reason, usage."""
    reason = INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    return {
        **shell,
        "status": "incomplete" if reason else "completed",
        "completed_at": int(time.time()),
        "incomplete_details": {"reason": reason} if reason else None,
        "output": output,
        "usage": usage(chat_usage),
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": parts,
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with content parts
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def output_items(message: dict[str, Any], finish_reason: Any) -> list[dict[str, Any]]:
    """A chat ``message`` -> Responses output items."""
    status = "incomplete" if finish_reason in INCOMPLETE else "completed"
    parts = []
    text = _text(message.get("content"))
    if text:
        parts.append(output_text(text))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append({"type": "refusal", "refusal": refusal})
    calls = message.get("tool_calls") or []
    items = [message_item(new_id("msg"), parts, status)] if parts else []
    for call in calls:
        fn = call.get("function") or {}
        arguments = fn.get("arguments")
        if not isinstance(arguments, str):  # a server that sends an object
            arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
        call_id = call.get("id") or new_id("call")
        name = str(fn.get("name") or "")
        items.append(function_call_item(new_id("fc"), call_id, name, arguments, "completed"))
    return items


def response_bytes(shell: dict[str, Any], completion: bytes) -> bytes:
    """The shell + a chat ``chat.completion`` body -> the Responses ``response`` bytes
    (``ValueError``/``KeyError``/``TypeError`` on a body that is not a chat completion)."""
    data = orjson.loads(completion)
    choice = data["choices"][0]
    finish = choice.get("finish_reason")
    items = output_items(choice["message"], finish)
    response = finished(shell, items, finish, data.get("usage"))
    if isinstance(data.get("model"), str) and data["model"]:
        response["model"] = data["model"]
    if isinstance(data.get("service_tier"), str):
        response["service_tier"] = data["service_tier"]
    return orjson.dumps(response)
