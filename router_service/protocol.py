"""Raw request bytes -> validated OpenAI wire-format objects (or an ``ApiError``).

The models check what the router reads (``model``, ``messages``, ``stream``, ``n``,
``metadata`` ...) and allow every other field (``extra="allow"``). The router forwards the
*original* parsed dict, never a re-dump of these models, so unknown fields, ``tools``,
``response_format``, ``stop`` etc. reach the backend exactly as the client sent them."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from router_service.errors import ApiError, validation_error

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
FORCE_TIERS = ("local", "primary", "strong")
AUTO_MODEL = "auto"
MAX_TOKEN_LIMIT = 2**31 - 1  # no backend takes more; larger JSON integers are refused


WithN = TypeVar("WithN", bound=BaseModel)


class ContentPart(BaseModel):
    """One part of a multi-part ``content`` (text, image_url, input_audio, file ...)."""

    model_config = ConfigDict(extra="allow")

    type: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions`` body. Unknown fields are kept and forwarded."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    n: int | None = Field(default=None, ge=1)
    metadata: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKEN_LIMIT)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKEN_LIMIT)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    stream_options: dict[str, Any] | None = None
    user: str | None = None


class ClassifyRequest(BaseModel):
    """``POST /v1/classify`` body: a chat request's ``messages`` or a bare ``prompt``."""

    model_config = ConfigDict(extra="allow")

    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(default=None, min_length=1)
    model: str | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_input(self) -> ClassifyRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' (a string) or 'messages' (a list)")
        return self


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorEnvelope(BaseModel):
    """``{"error": {...}}`` — the shape of every error this service returns."""

    error: ErrorDetail


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Body bytes -> a JSON object; invalid UTF-8, invalid JSON or a non-object -> 400."""
    if not raw:
        raise ApiError(400, "Request body is empty; expected a JSON object.", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise ApiError(
                400,
                f"Request body is not valid UTF-8 (byte {uexc.start}).",
                code="invalid_encoding",
            ) from None
        raise ApiError(400, f"Request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(
            400,
            f"Request body must be a JSON object, got {type(data).__name__}.",
            code="invalid_json",
        )
    return data


def validated_choices(model: type[WithN], data: dict[str, Any], *, max_n: int) -> WithN:
    """Parsed body -> ``model`` validated (400 naming the bad field), with at most ``max_n``
    choices asked for (``n``)."""
    try:
        req = model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False)) from None
    n = getattr(req, "n", None)
    if n is not None and n > max_n:
        raise ApiError(
            400,
            f"'n' is {n}; this router allows at most {max_n} choices per request.",
            param="n",
            code="invalid_value",
        )
    return req


def parse_chat_request(data: dict[str, Any], *, max_n: int) -> ChatCompletionRequest:
    """Parsed body -> validated chat request (400 naming the bad field)."""
    return validated_choices(ChatCompletionRequest, data, max_n=max_n)


def parse_classify_request(data: dict[str, Any]) -> ClassifyRequest:
    try:
        return ClassifyRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False)) from None


_TRUE_WORDS = frozenset(
    {"1", "true", "yes", "on", "sensitive", "private", "confidential", "high", "pii", "restricted"}
)


def flag_is_true(value: Any) -> bool:
    """Header or metadata value -> bool (``true``, ``1``, ``sensitive``, ``private``...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_WORDS
    return False
