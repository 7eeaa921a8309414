"""Chat-completions SSE chunks (the backend's stream) -> the Responses API's typed events.

``ResponsesStream`` is fed one upstream event at a time and returns the client's events,
each ``event: <type>`` + ``data: {..., "sequence_number": n}``: ``response.created`` and
``response.in_progress`` first; text deltas open a ``message`` item (``output_item.added``,
``content_part.added``) and become ``response.output_text.delta``; refusal deltas
``response.refusal.delta``; each chat tool call becomes a ``function_call`` item with
``response.function_call_arguments.delta``. ``close`` ends every open part and item
(``.done`` events, in order) and the response: ``response.completed``, or
``response.incomplete`` at the token cap, or, when the backend failed (its stream broke or
it sent an error event), ``error`` then ``response.failed``. Event shapes are the openai
SDK's ``openai.types.responses.Response*Event``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from router_service.backends.sse import chat_chunks, mid_stream_error
from router_service.responses_api.output import (
    INCOMPLETE,
    finished,
    function_call_item,
    message_item,
    new_id,
    output_text,
)

FINAL_EVENTS = (
    b"event: response.completed",
    b"event: response.incomplete",
    b"event: response.failed",
)


def is_final_event(chunk: bytes) -> bool:
    """The event that ends a Responses stream (held until the log row commits)."""
    return chunk.startswith(FINAL_EVENTS)


@dataclass(slots=True)
class _Message:
    index: int  # output_index
    id: str
    parts: list[dict[str, Any]] = field(default_factory=list)  # finished parts


@dataclass(slots=True)
class _Call:
    index: int
    id: str
    call_id: str
    name: str
    arguments: str = ""


@dataclass(slots=True)
class ResponsesStream:
    """One response's event writer; ``shell`` is ``output.response_shell``'s object."""

    shell: dict[str, Any]
    seq: int = 0
    output: list[dict[str, Any] | None] = field(default_factory=list)  # by output_index
    message: _Message | None = None
    part: dict[str, Any] | None = None  # the open part of ``message``
    calls: dict[int, _Call] = field(default_factory=dict)  # chat tool-call index -> item
    open_calls: list[_Call] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Any = None
    model: str | None = None
    failure: tuple[str, str] | None = None  # (message, code) once the backend failed
    done: bool = False

    def _event(self, kind: str, **data: Any) -> bytes:
        payload = orjson.dumps({"type": kind, **data, "sequence_number": self.seq})
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"

    def start(self) -> list[bytes]:
        return [
            self._event("response.created", response=self.shell),
            self._event("response.in_progress", response=self.shell),
        ]

    # -- upstream events ---------------------------------------------------------------
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
                self.failure = (said, "server_error")
                break
            self._chunk(chunk, out)
        return out

    @property
    def failure_message(self) -> str | None:
        return self.failure[0] if self.failure is not None else None

    def upstream_failed(self, message: str, code: str) -> list[bytes]:
        """The backend's stream broke (``run.relay_events``); ``close`` reports it."""
        self.failure = (message, code)
        return []

    def _chunk(self, chunk: dict[str, Any], out: list[bytes]) -> None:
        if self.model is None and isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._delta("output_text", text, out)
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                self._delta("refusal", refusal, out)
            for call in delta.get("tool_calls") or ():
                self._tool_delta(call, out)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def _delta(self, kind: str, text: str, out: list[bytes]) -> None:
        if self.message is None:
            index = len(self.output)
            self.message = _Message(index, new_id("msg"))
            self.output.append(None)
            item = message_item(self.message.id, [], "in_progress")
            out.append(self._event("response.output_item.added", output_index=index, item=item))
        msg = self.message
        if self.part is not None and self.part["type"] != kind:
            self._end_part(out)
        where = {"item_id": msg.id, "output_index": msg.index, "content_index": len(msg.parts)}
        if self.part is None:
            self.part = output_text("") if kind == "output_text" else {"type": kind, "refusal": ""}
            out.append(self._event("response.content_part.added", **where, part=self.part))
        if kind == "output_text":
            self.part["text"] += text
            out.append(self._event("response.output_text.delta", **where, delta=text, logprobs=[]))
        else:
            self.part["refusal"] += text
            out.append(self._event("response.refusal.delta", **where, delta=text))

    def _tool_delta(self, delta: Any, out: list[bytes]) -> None:
        if not isinstance(delta, dict):
            return
        fn = delta.get("function") or {}
        key = delta.get("index", 0)
        call = self.calls.get(key)
        if call is None:
            self._end_message(out, "completed")
            call_id = delta.get("id") or new_id("call")
            call = _Call(len(self.output), new_id("fc"), call_id, str(fn.get("name") or ""))
            self.calls[key] = call
            self.open_calls.append(call)
            self.output.append(None)
            item = function_call_item(call.id, call.call_id, call.name, "", "in_progress")
            out.append(
                self._event("response.output_item.added", output_index=call.index, item=item)
            )
        elif not call.name and fn.get("name"):
            call.name = str(fn["name"])
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            call.arguments += arguments
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=call.id,
                    output_index=call.index,
                    delta=arguments,
                )
            )

    # -- closing -----------------------------------------------------------------------
    def _end_part(self, out: list[bytes]) -> None:
        msg, part = self.message, self.part
        assert msg is not None and part is not None
        where = {"item_id": msg.id, "output_index": msg.index, "content_index": len(msg.parts)}
        if part["type"] == "output_text":
            done = self._event("response.output_text.done", **where, text=part["text"], logprobs=[])
        else:
            done = self._event("response.refusal.done", **where, refusal=part["refusal"])
        out.append(done)
        out.append(self._event("response.content_part.done", **where, part=part))
        msg.parts.append(part)
        self.part = None

    def _end_message(self, out: list[bytes], status: str) -> None:
        if self.message is None:
            return
        if self.part is not None:
            self._end_part(out)
        msg = self.message
        item = message_item(msg.id, msg.parts, status)
        self.output[msg.index] = item
        out.append(self._event("response.output_item.done", output_index=msg.index, item=item))
        self.message = None

    def _end_call(self, call: _Call, out: list[bytes]) -> None:
        where = {"item_id": call.id, "output_index": call.index}
        out.append(
            self._event("response.function_call_arguments.done", **where, arguments=call.arguments)
        )
        item = function_call_item(call.id, call.call_id, call.name, call.arguments, "completed")
        self.output[call.index] = item
        out.append(self._event("response.output_item.done", output_index=call.index, item=item))

    def close(self) -> list[bytes]:
        """The upstream stream ended: the ``.done`` events and the final response event."""
        if self.failure is not None:
            return self._failed(*self.failure)
        out: list[bytes] = []
        status = "incomplete" if self.finish_reason in INCOMPLETE else "completed"
        for call in self.open_calls:  # an open message came after them (a call closes it)
            self._end_call(call, out)
        self.open_calls = []
        self._end_message(out, status)
        items = [item for item in self.output if item is not None]
        response = finished(self.shell, items, self.finish_reason, self.usage)
        if self.model:
            response["model"] = self.model
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        out.append(self._event(kind, response=response))
        return out

    def _failed(self, message: str, code: str) -> list[bytes]:
        items = [item for item in self.output if item is not None]
        response = {
            **self.shell,
            "status": "failed",
            "error": {"code": "server_error", "message": message},
            "output": items,
        }
        return [
            self._event("error", code=code, message=message, param=None),
            self._event("response.failed", response=response),
        ]
