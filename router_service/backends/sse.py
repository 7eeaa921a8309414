"""Bytes of a Server-Sent-Events or NDJSON stream -> events; OpenAI chunk objects -> SSE bytes.

``SSEParser`` splits an upstream SSE byte stream into complete events (keeping each
event's raw bytes, so pass-through forwards exactly what arrived). ``LineParser`` does the
same for NDJSON (Ollama); ``chat_chunks`` reads the chunk objects out of one chat event.
``ChunkWriter`` builds OpenAI ``chat.completion.chunk`` events for the translating
backends."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

DONE_EVENT = b"data: [DONE]\n\n"


@dataclass(slots=True)
class SSEEvent:
    raw: bytes  # the event exactly as received, terminated by a blank line
    event: str | None
    data: str | None  # data lines joined with "\n"; None for comment-only events


class SSEParser:
    """Incremental SSE framing: ``feed(bytes) -> [SSEEvent]``, ``close() -> [SSEEvent]``."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if b"\r" in chunk or self._buf.endswith(b"\r"):
            buf = (self._buf + chunk).replace(b"\r\n", b"\n")
            if buf.endswith(b"\r"):
                self._buf = buf
                return []
            buf = buf.replace(b"\r", b"\n")
        else:
            buf = self._buf + chunk
        if b"\n\n" not in buf:
            self._buf = buf
            return []
        *blocks, self._buf = buf.split(b"\n\n")
        return [ev for block in blocks if (ev := _parse_block(block)) is not None]

    def close(self) -> list[SSEEvent]:
        """End of stream: a final event without its blank line is still an event."""
        rest, self._buf = self._buf.strip(b"\n"), b""
        if not rest:
            return []
        ev = _parse_block(rest)
        return [ev] if ev is not None else []


def _parse_block(block: bytes) -> SSEEvent | None:
    if not block.strip():
        return None
    event: str | None = None
    data: list[str] = []
    for line in block.decode("utf-8", errors="replace").split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    return SSEEvent(block + b"\n\n", event, "\n".join(data) if data else None)


class LineParser:
    """Incremental NDJSON framing: ``feed(bytes) -> [line bytes]`` (blank lines dropped)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk
        if b"\n" not in buf:
            self._buf = buf
            return []
        *lines, self._buf = buf.split(b"\n")
        return [line for line in lines if line.strip()]

    def close(self) -> list[bytes]:
        rest, self._buf = self._buf, b""
        return [rest] if rest.strip() else []


def chat_chunks(raw: bytes) -> Iterator[dict[str, Any] | None]:
    """One upstream chat SSE event (bytes) -> its chunk objects, ``None`` for ``[DONE]``
    (keep-alive comments skipped); ``ValueError`` when a payload is not a JSON object."""
    parser = SSEParser()
    for ev in (*parser.feed(raw), *parser.close()):
        if ev.data is None:
            continue
        if ev.data == "[DONE]":
            yield None
            return
        chunk = orjson.loads(ev.data)
        if not isinstance(chunk, dict):
            raise ValueError(f"stream event is not an object: {ev.data[:120]!r}")
        yield chunk


def mid_stream_error(chunk: dict[str, Any]) -> str | None:
    """A chunk carrying the backend's ``error`` -> the client-facing message, else None."""
    if "error" not in chunk:
        return None
    err = chunk["error"]
    said = err.get("message") if isinstance(err, dict) else str(err)
    return f"The backend sent an error mid-stream: {said}"


def sse_data(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


@dataclass(slots=True)
class ChunkWriter:
    """Builds OpenAI streaming chunks for one response (translating backends)."""

    model: str
    include_usage: bool = False
    id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return sse_data(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
        )

    def role(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def content(self, text: str) -> bytes:
        return self._chunk({"content": text})

    def tool_call_start(self, index: int, call_id: str, name: str, arguments: str = "") -> bytes:
        call = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        return self._chunk({"tool_calls": [call]})

    def tool_call_arguments(self, index: int, arguments: str) -> bytes:
        return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})

    def finish(self, reason: str) -> bytes:
        return self._chunk({}, reason)

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        return sse_data(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )


def completion_object(
    model: str,
    message: dict[str, Any],
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    completion_id: str | None = None,
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` (translating backends)."""
    return {
        "id": completion_id or new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
