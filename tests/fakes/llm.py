"""Wire formats of the three backend kinds, for fake servers: OpenAI chat completions
(JSON and SSE), Anthropic Messages (JSON and SSE events) and Ollama /api/chat (JSON and
NDJSON). Each ``*_responder(text)`` answers any chat request with ``text``."""

from __future__ import annotations

from typing import Any

import orjson

from .server import Recorded, Reply


def sse(obj: Any) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else orjson.dumps(obj)) + b"\n\n"


# -- OpenAI ------------------------------------------------------------------------------
def openai_completion(text: str, model: str = "fake", usage: tuple[int, int] = (7, 3)) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        },
    }


def openai_chunk(delta: dict, model: str = "fake", finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def openai_stream_chunks(pieces: list[str], model: str = "fake") -> list[bytes]:
    out = [sse(openai_chunk({"role": "assistant", "content": ""}, model))]
    out += [sse(openai_chunk({"content": p}, model)) for p in pieces]
    out.append(sse(openai_chunk({}, model, "stop")))
    out.append(b"data: [DONE]\n\n")
    return out


def hanging_stream() -> Reply:
    """A chat stream that sends one chunk and then never ends (the upstream would keep
    generating forever): what a client disconnect must cancel."""
    return Reply(
        chunks=[sse(openai_chunk({"role": "assistant", "content": "x"}))],
        content_type="text/event-stream",
        hang=True,
    )


def openai_responder(text: str, **stream_kw: Any) -> Any:
    def respond(rec: Recorded) -> Reply:
        if rec.method == "GET":
            return Reply.json({"object": "list", "data": []})
        body = rec.json()
        model = body.get("model", "fake")
        if body.get("stream"):
            words = [w + " " for w in text.split(" ")]
            words[-1] = words[-1].rstrip()
            return Reply(
                chunks=openai_stream_chunks(words, model),
                content_type="text/event-stream",
                **stream_kw,
            )
        return Reply.json(openai_completion(text, model))

    return respond


# -- Anthropic ---------------------------------------------------------------------------
def anthropic_message(text: str, model: str = "claude-fake", tool: dict | None = None) -> dict:
    content: list[dict] = [{"type": "text", "text": text}]
    if tool:
        content.append(
            {"type": "tool_use", "id": "toolu_1", "name": tool["name"], "input": tool["input"]}
        )
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if tool else "end_turn",
        "usage": {"input_tokens": 11, "output_tokens": 5},
    }


def anthropic_event(kind: str, **data: Any) -> bytes:
    return f"event: {kind}\n".encode() + sse({"type": kind, **data})


def anthropic_stream(pieces: list[str], model: str = "claude-fake") -> list[bytes]:
    out = [
        anthropic_event(
            "message_start",
            message={  # the shell Anthropic sends: the SDK's stream helper builds on it
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 11, "output_tokens": 1},
            },
        ),
        anthropic_event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        anthropic_event("ping"),
    ]
    for p in pieces:
        out.append(
            anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": p})
        )
    out += [
        anthropic_event("content_block_stop", index=0),
        anthropic_event(
            "message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 5}
        ),
        anthropic_event("message_stop"),
    ]
    return out


def anthropic_responder(text: str) -> Any:
    def respond(rec: Recorded) -> Reply:
        if rec.method == "GET":
            return Reply.json({"data": []})
        body = rec.json()
        if body.get("stream"):
            return Reply(
                chunks=anthropic_stream(text.split("|"), body["model"]),
                content_type="text/event-stream",
            )
        return Reply.json(anthropic_message(text.replace("|", ""), body["model"]))

    return respond


# -- Ollama ------------------------------------------------------------------------------
def ollama_line(content: str, model: str = "llama-fake", done: bool = False, **kw: Any) -> bytes:
    obj: dict[str, Any] = {
        "model": model,
        "created_at": "2024-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content},
        "done": done,
    }
    if done:
        obj.update({"done_reason": "stop", "prompt_eval_count": 9, "eval_count": 4})
    obj.update(kw)
    return orjson.dumps(obj) + b"\n"


def ollama_responder(text: str) -> Any:
    def respond(rec: Recorded) -> Reply:
        if rec.method == "GET":
            return Reply.json({"version": "0.5.0"})
        body = rec.json()
        if body.get("stream", True):
            lines = [ollama_line(p, body["model"]) for p in text.split("|")]
            lines.append(ollama_line("", body["model"], done=True))
            return Reply(chunks=lines, content_type="application/x-ndjson")
        return Reply(chunks=[ollama_line(text.replace("|", ""), body["model"], done=True)])

    return respond
