"""The Messages endpoints' part of ``GET /openapi.json``: the request models (from
``protocol``), Anthropic's ``message`` object, its server-sent events and its error
envelope -> the two path items, for ``api.openapi`` to publish and schemathesis to fuzz."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from router_service.messages_api.protocol import (
    AnthropicErrorEnvelope,
    CountTokensRequest,
    MessagesRequest,
)

MODELS: tuple[type[BaseModel], ...] = (MessagesRequest, CountTokensRequest, AnthropicErrorEnvelope)
# What every ``message`` has (anthropic.types.Message).
MESSAGE_OBJECT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
    "properties": {
        "id": {"type": "string", "pattern": "^msg_"},
        "type": {"const": "message"},
        "role": {"const": "assistant"},
        "model": {"type": "string"},
        "content": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": ["text", "tool_use"]}},
            },
        },
        "stop_reason": {"enum": ["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"]},
        "usage": {
            "type": "object",
            "required": ["input_tokens", "output_tokens"],
            "properties": {
                "input_tokens": {"type": "integer", "minimum": 0},
                "output_tokens": {"type": "integer", "minimum": 0},
            },
        },
    },
}
EVENT_NAMES = (
    "message_start|content_block_start|ping|content_block_delta|content_block_stop|"
    "message_delta|message_stop|error"
)
MESSAGE_EVENT: dict[str, Any] = {  # one server-sent event: ``event: <type>`` + its data
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "pattern": f"^({EVENT_NAMES})$"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"type": "object", "required": ["type"]},
        },
    },
}
TOKEN_COUNT: dict[str, Any] = {
    "type": "object",
    "required": ["input_tokens"],
    "properties": {"input_tokens": {"type": "integer", "minimum": 0}},
}


def paths(ref: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """``ref(model name)`` -> a ``$ref`` to that component; -> the two path items."""
    error = {
        "description": "an error, in Anthropic's envelope",
        "content": {"application/json": {"schema": ref("AnthropicErrorEnvelope")}},
    }

    def post(name: str, summary: str, ok: dict[str, Any]) -> dict[str, Any]:
        body = {"required": True, "content": {"application/json": {"schema": ref(name)}}}
        responses = {"200": ok, "4XX": error, "5XX": error}
        return {"post": {"summary": summary, "requestBody": body, "responses": responses}}

    message = {
        "description": "a message, or its events as server-sent events",
        "content": {
            "application/json": {"schema": MESSAGE_OBJECT},
            "text/event-stream": {"schema": MESSAGE_EVENT},
        },
    }
    count = {
        "description": "an estimate of the input tokens (about 4 characters per token)",
        "content": {"application/json": {"schema": TOKEN_COUNT}},
    }
    return {
        "/v1/messages": post(
            "MessagesRequest", "Route and answer an Anthropic Messages request", message
        ),
        "/v1/messages/count_tokens": post(
            "CountTokensRequest", "Estimate a Messages request's input tokens", count
        ),
    }
