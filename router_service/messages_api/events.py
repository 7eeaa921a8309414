"""Chat-completions SSE chunks (the backend's stream) -> Anthropic's Messages events.

``MessagesStream`` is fed one upstream event at a time and returns the client's events,
each ``event: <type>`` + ``data: {"type": <type>, ...}``: ``message_start`` first; text
deltas open a ``text`` block (``content_block_start``, then ``content_block_delta`` with a
``text_delta``); each chat tool call opens a ``tool_use`` block whose argument pieces are
``input_json_delta``s; a block ends (``content_block_stop``) when the next one starts; one
``ping`` follows the first block start. ``close`` ends the open block, then
``message_delta`` (``stop_reason``, ``usage``) and ``message_stop``; when the backend
failed (its stream broke or it sent an error event) the stream ends with an ``error``
event instead. Shapes are the anthropic SDK's ``anthropic.types.Raw*Event``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from router_service.backends.sse import chat_chunks, mid_stream_error
from router_service.messages_api.mapping import stop_reason
from router_service.messages_api.output import new_id, usage

FINAL_EVENTS = (b"event: message_stop", b"event: error")


def is_final_event(chunk: bytes) -> bool:
    """The event that ends a Messages stream (held until the log row commits)."""
    return chunk.startswith(FINAL_EVENTS)


def event(kind: str, **data: Any) -> bytes:
    payload = orjson.dumps({"type": kind, **data})
    return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"


def error_event(message: str, kind: str = "api_error") -> bytes:
    return event("error", error={"type": kind, "message": message})


@dataclass(slots=True)
class MessagesStream:
    """One message's event writer; ``shell`` is ``output.message_shell``'s object."""

    shell: dict[str, Any]
    blocks: int = 0  # content blocks started so far
    open: str | None = None  # "text" or "tool_use": the open block's type
    tools: dict[int, int] = field(default_factory=dict)  # chat tool-call index -> block
    pinged: bool = False
    finish_reason: str | None = None
    usage: Any = None
    failure: str | None = None  # the message, once the backend failed
    done: bool = False

    @property
    def failure_message(self) -> str | None:
        return self.failure

    def start(self) -> list[bytes]:
        return [event("message_start", message=self.shell)]

    def feed(self, raw: bytes) -> list[bytes]:
        """One upstream SSE event (bytes) -> the client's events."""
        if self.failure is not None or self.done:
            return []
        out: list[bytes] = []
        for chunk in chat_chunks(raw):
            if chunk is None:
                self.done = True
                break
            said = mid_stream_error(chunk)
            if said is not None:
                self.failure = said
                break
            self._chunk(chunk, out)
        return out

    def upstream_failed(self, message: str, code: str) -> list[bytes]:
        """The backend's stream broke (``run.relay_events``); ``close`` reports it."""
        self.failure = message
        return []

    def _chunk(self, chunk: dict[str, Any], out: list[bytes]) -> None:
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self.open != "text":
                    self._start({"type": "text", "text": ""}, out)
                    self.open = "text"
                delta_ = {"type": "text_delta", "text": text}
                out.append(event("content_block_delta", index=self.blocks - 1, delta=delta_))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    self._tool_delta(call, out)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def _start(self, block: dict[str, Any], out: list[bytes]) -> None:
        self._stop(out)
        out.append(event("content_block_start", index=self.blocks, content_block=block))
        self.blocks += 1
        if not self.pinged:
            self.pinged = True
            out.append(event("ping"))

    def _stop(self, out: list[bytes]) -> None:
        if self.open is not None:
            out.append(event("content_block_stop", index=self.blocks - 1))
            self.open = None

    def _tool_delta(self, call: dict[str, Any], out: list[bytes]) -> None:
        fn = call.get("function") or {}
        key = call.get("index", 0)
        if key not in self.tools:
            block = {
                "type": "tool_use",
                "id": str(call.get("id") or new_id("toolu")),
                "name": str(fn.get("name") or ""),
                "input": {},
            }
            self._start(block, out)
            self.open = "tool_use"
            self.tools[key] = self.blocks - 1
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            index = self.tools[key]
            if index != self.blocks - 1 or self.open != "tool_use":  # blocks do not reopen
                self.failure = "the backend interleaved two tool calls' arguments"
                return
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out.append(event("content_block_delta", index=index, delta=delta))

    def close(self) -> list[bytes]:
        """The upstream stream ended: the open block's stop, ``message_delta`` and
        ``message_stop`` (or the ``error`` event when the backend failed)."""
        if self.failure is not None:
            return [error_event(self.failure)]
        out: list[bytes] = []
        self._stop(out)
        if not self.pinged:
            out.append(event("ping"))
        reason = stop_reason(self.finish_reason)
        if reason == "end_turn" and self.tools:
            reason = "tool_use"
        delta = {"stop_reason": reason, "stop_sequence": None}
        out.append(event("message_delta", delta=delta, usage=usage(self.usage)))
        out.append(event("message_stop"))
        return out
