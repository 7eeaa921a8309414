"""The legacy ``POST /v1/completions`` body -> one chat-completions body (the prompt as one
user message); the chat answer -> a ``text_completion`` object, or its chunks.

The prompt becomes ``messages = [{"role": "user", "content": prompt}]``; every other field
keeps its name (``max_tokens``, ``temperature``, ``stop``, ``n`` ...: each backend renames
the cap to what it reads). What a chat backend cannot do is refused with a 400 naming the
field: several prompts in one request, token-id prompts, ``echo``, ``suffix``,
``logprobs``, ``best_of`` > 1. Shapes follow the openai SDK's ``openai.types.Completion``."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from router_service.backends.sse import SSEParser
from router_service.errors import ApiError
from router_service.protocol import MAX_TOKEN_LIMIT, validated_choices

# Read and translated or refused here; never forwarded under their own name.
CONSUMED = frozenset({"prompt", "echo", "suffix", "logprobs", "best_of", "messages"})
# chat finish_reason -> the legacy one (a tool call, if a client sent tools, is a stop)
_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


class CompletionRequest(BaseModel):
    """``POST /v1/completions`` body. Unknown fields are kept and forwarded."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)]
    stream: bool = False
    n: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKEN_LIMIT)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    # Refused (a chat backend cannot do them): only these values are accepted.
    echo: Literal[False] | None = None
    suffix: None = None
    logprobs: None = None
    best_of: Literal[1] | None = None


def _refuse(param: str, why: str) -> ApiError:
    message = f"'{param}' is not supported: {why}"
    return ApiError(400, message, param=param, code="unsupported_parameter")


def parse_completion_request(data: dict[str, Any], *, max_n: int) -> CompletionRequest:
    """Parsed body -> validated request (400 naming the bad or unsupported field)."""
    chat = "this router answers completions with chat models, one text prompt at a time"
    prompt = data.get("prompt")
    if not isinstance(prompt, str | list):
        message = "Invalid request at 'prompt': a prompt string is required."
        raise ApiError(400, message, param="prompt", code="invalid_value")
    if isinstance(prompt, list) and (len(prompt) != 1 or not isinstance(prompt[0], str)):
        raise _refuse("prompt", f"{chat}; send one string (token ids and batches are not)")
    if data.get("echo") is True:
        raise _refuse("echo", f"{chat}, which cannot echo the prompt")
    for name in ("suffix", "logprobs"):
        if data.get(name) is not None:
            raise _refuse(name, f"{chat}, which take no {name}")
    best_of = data.get("best_of")
    if isinstance(best_of, int) and not isinstance(best_of, bool) and best_of > 1:
        raise _refuse("best_of", f"{chat}; send n for several answers")
    return validated_choices(CompletionRequest, data, max_n=max_n)


def chat_body(req: CompletionRequest, data: dict[str, Any]) -> dict[str, Any]:
    """The completions request -> a chat-completions body."""
    body = {k: v for k, v in data.items() if k not in CONSUMED}
    prompt = req.prompt if isinstance(req.prompt, str) else req.prompt[0]
    body["messages"] = [{"role": "user", "content": prompt}]
    return body


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with content parts
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def _finish(reason: Any) -> str | None:
    return None if reason is None else _FINISH.get(reason, "stop")


def _completion_id(chat_id: Any) -> str:
    tail = chat_id.split("-", 1)[-1] if isinstance(chat_id, str) and chat_id else ""
    return f"cmpl-{tail or int(time.time() * 1000)}"


def completion_bytes(chat: bytes) -> bytes:
    """A chat ``chat.completion`` body -> a ``text_completion`` body (``ValueError`` /
    ``KeyError`` / ``TypeError`` when it is not a chat completion)."""
    data = orjson.loads(chat)
    choices = [
        {
            "text": _text(c["message"].get("content")),
            "index": c.get("index", i),
            "logprobs": None,
            "finish_reason": _finish(c.get("finish_reason")) or "stop",
        }
        for i, c in enumerate(data["choices"])
    ]
    out = {
        "id": _completion_id(data.get("id")),
        "object": "text_completion",
        "created": data.get("created") or int(time.time()),
        "model": data.get("model"),
        "choices": choices,
        "usage": data.get("usage"),
    }
    return orjson.dumps(out)


def completion_chunk(event: bytes) -> bytes | None:
    """One chat SSE event -> the ``text_completion`` chunk event (None: nothing to say, e.g.
    the role-only first chunk). ``[DONE]``, comments and error events pass unchanged."""
    parser = SSEParser()
    data = next((ev.data for ev in (*parser.feed(event), *parser.close())), None)
    if data is None or data == "[DONE]":
        return event
    chunk = orjson.loads(data)
    if not isinstance(chunk, dict) or "error" in chunk:
        return event
    choices = []
    for i, c in enumerate(chunk.get("choices") or ()):
        if not isinstance(c, dict):
            continue
        delta = c.get("delta")
        text = _text(delta.get("content")) if isinstance(delta, dict) else ""
        finish = _finish(c.get("finish_reason"))
        if text or finish:
            choice = {"text": text, "index": c.get("index", i), "logprobs": None}
            choices.append({**choice, "finish_reason": finish})
    usage = chunk.get("usage")
    if not choices and not isinstance(usage, dict):
        return None
    out: dict[str, Any] = {
        "id": _completion_id(chunk.get("id")),
        "object": "text_completion",
        "created": chunk.get("created") or int(time.time()),
        "model": chunk.get("model"),
        "choices": choices,
    }
    if isinstance(usage, dict):
        out["usage"] = usage
    return b"data: " + orjson.dumps(out) + b"\n\n"
