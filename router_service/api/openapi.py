"""The wire models -> the OpenAPI 3.1 document served at ``GET /openapi.json``.

Covers what clients call: chat completions, the Responses API, legacy completions, the
Anthropic Messages API, classify, feedback, models and health. Request bodies are the
pydantic models the handlers validate with (``protocol``, ``responses_api.protocol``,
``completions_api``, ``messages_api.protocol``, ``feedback``: the fields the router reads;
every other field is allowed), and every error response is OpenAI's envelope (Anthropic's
on the Messages endpoints), so a schema-driven fuzzer (the test suite runs schemathesis
against it) can check both the inputs it may send and the answers it must get back."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from router_service import __version__
from router_service.api.feedback import FeedbackBody
from router_service.completions_api import CompletionRequest
from router_service.messages_api import schema as messages_schema
from router_service.protocol import ChatCompletionRequest, ClassifyRequest, ErrorEnvelope
from router_service.responses_api.protocol import ResponsesRequestSchema

REF = "#/components/schemas/{model}"
OBJECT: dict[str, Any] = {"type": "object"}
TEXT_COMPLETION: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices"],
    "properties": {
        "object": {"const": "text_completion"},
        "choices": {
            "type": "array",
            "items": {"type": "object", "required": ["text", "index", "finish_reason"]},
        },
    },
}
# What every Responses ``response`` object has (openai.types.responses.Response).
RESPONSE_OBJECT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object", "created_at", "status", "model", "output"],
    "properties": {
        "id": {"type": "string", "pattern": "^resp_"},
        "object": {"const": "response"},
        "created_at": {"type": "integer"},
        "status": {"enum": ["completed", "incomplete", "failed", "in_progress"]},
        "model": {"type": "string"},
        "output": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "id"],
                "properties": {"type": {"enum": ["message", "function_call"]}},
            },
        },
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=name)}


def _errors(*statuses: str) -> dict[str, Any]:
    error = _json(_ref("ErrorEnvelope"), "an error, in OpenAI's envelope")
    return dict.fromkeys(statuses, error)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _post(name: str, summary: str, ok: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(name)}},
            },
            "responses": {"200": ok, **_errors("4XX", "5XX")},
        }
    }


def _get(summary: str, ok: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": ok, **_errors("4XX", "5XX")}}}


@lru_cache(maxsize=4)
def openapi_document(max_n: int = 8) -> dict[str, Any]:
    """-> the document; ``max_n`` is the router's ``Settings.max_n`` (choices per request)."""
    models: tuple[type[BaseModel], ...] = (
        ChatCompletionRequest,
        ResponsesRequestSchema,
        CompletionRequest,
        ClassifyRequest,
        FeedbackBody,
        ErrorEnvelope,
        *messages_schema.MODELS,
    )
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    schemas = top.get("$defs", {})
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        schemas[name]["properties"]["n"]["anyOf"][0]["maximum"] = max_n
    # The models' cross-field rules (``model_validator``s), which pydantic cannot emit:
    schemas["ClassifyRequest"]["oneOf"] = [  # exactly one of prompt / messages
        {"required": [given], "properties": {given: {"type": kind}, other: {"type": "null"}}}
        for given, kind, other in (
            ("prompt", "string", "messages"),
            ("messages", "array", "prompt"),
        )
    ]
    schemas["FeedbackBody"]["anyOf"] = [  # thumbs and/or score
        {"required": [name], "properties": {name: {"type": kind}}}
        for name, kind in (("thumbs", "string"), ("score", "integer"))
    ]
    completion = {
        "description": "a chat.completion, or its chunks as server-sent events",
        "content": {
            "application/json": {"schema": OBJECT},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    }
    response_event = {  # one server-sent event: ``event: <type>`` + its JSON ``data``
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"type": "string", "pattern": r"^(response\.[a-z_.]+|error)$"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {
                    "type": "object",
                    "required": ["type", "sequence_number"],
                    "properties": {"sequence_number": {"type": "integer", "minimum": 0}},
                },
            },
        },
    }
    response = {
        "description": "a response object, or its typed events as server-sent events",
        "content": {
            "application/json": {"schema": _ref("ResponseObject")},
            "text/event-stream": {"schema": response_event},
        },
    }
    text_completion = {
        "description": "a text_completion, or its chunks as server-sent events",
        "content": {
            "application/json": {"schema": TEXT_COMPLETION},
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {"type": "string"}},
                }
            },
        },
    }
    health = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"enum": ["ok", "degraded"]}},
    }
    models_list = {
        "type": "object",
        "required": ["object", "data"],
        "properties": {"object": {"const": "list"}, "data": {"type": "array"}},
    }
    model = {
        "type": "object",
        "required": ["id", "object"],
        "properties": {"id": {"type": "string"}, "object": {"const": "model"}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "learned-router", "version": __version__},
        "paths": {
            "/v1/chat/completions": _post(
                "ChatCompletionRequest", "Route and answer a chat completion", completion
            ),
            "/v1/responses": _post(
                "ResponsesRequestSchema", "Route and answer an OpenAI Responses request", response
            ),
            "/v1/completions": _post(
                "CompletionRequest", "The legacy text API, answered by chat", text_completion
            ),
            "/v1/classify": _post(
                "ClassifyRequest", "The decision, no model called", _json(OBJECT, "a decision")
            ),
            "/v1/feedback": _post(
                "FeedbackBody", "Rate a routed answer", _json(OBJECT, "the stored rating")
            ),
            "/v1/models": _get("Models and tiers", _json(models_list, "the model list")),
            "/v1/models/{model_id}": {
                "get": {
                    **_get("One model or tier", _json(model, "the model"))["get"],
                    "parameters": [
                        {
                            "name": "model_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1},
                        }
                    ],
                }
            },
            **messages_schema.paths(_ref),
            "/health": _get("Liveness and backend reachability", _json(health, "status")),
        },
        "components": {"schemas": {**schemas, "ResponseObject": RESPONSE_OBJECT}},
    }


async def openapi_json(request: Request) -> Response:
    max_n = request.app.state.router.settings.max_n
    return Response(orjson.dumps(openapi_document(max_n)), media_type="application/json")
