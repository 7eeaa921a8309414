"""A parsed ``POST /v1/messages`` body -> a validated Anthropic Messages request (or an
``ApiError`` naming the field), and any ``ApiError`` -> Anthropic's error envelope.

The models check what the router reads and translates (the anthropic SDK's
``anthropic.types.MessageCreateParams`` and its block params are the reference); unknown
top-level fields are accepted and not forwarded (they are Anthropic's and would make an
OpenAI-compatible backend refuse the request). Content blocks are dispatched by hand on
their ``type``, so an error names the exact place (``messages[1].content[0].source``);
a block type the chat pipeline cannot carry (documents, server tools) is refused with a
400 saying so, never dropped silently. ``thinking`` blocks in the history are accepted and
not forwarded (only Anthropic can verify their signatures)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router_service.errors import ApiError, validation_error
from router_service.protocol import MAX_TOKEN_LIMIT

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")  # cache_control, citations ...


# -- content blocks ----------------------------------------------------------------------
class TextBlock(_Open):
    type: Literal["text"]
    text: str


class Base64Source(_Open):
    type: Literal["base64"]
    media_type: str = Field(min_length=1)
    data: str = Field(min_length=1)


class UrlSource(_Open):
    type: Literal["url"]
    url: str = Field(pattern=r"^https?://")


class ImageBlock(_Open):
    type: Literal["image"]
    source: Annotated[Base64Source | UrlSource, Field(discriminator="type")]


class ToolUseBlock(_Open):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]


class ToolResultBlock(_Open):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool | None = None


class ThinkingBlock(_Open):
    type: Literal["thinking", "redacted_thinking"]


Block = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock
BLOCKS: dict[str, type[BaseModel]] = {
    "text": TextBlock,
    "image": ImageBlock,
    "tool_use": ToolUseBlock,
    "tool_result": ToolResultBlock,
    "thinking": ThinkingBlock,
    "redacted_thinking": ThinkingBlock,
}
RESULT_BLOCKS: dict[str, type[BaseModel]] = {"text": TextBlock, "image": ImageBlock}
# Which blocks each role's turn may hold (what the model said vs. what the client sends).
ROLE_BLOCKS: dict[str, dict[str, type[BaseModel]]] = {
    "user": {k: BLOCKS[k] for k in ("text", "image", "tool_result")},
    "assistant": {k: BLOCKS[k] for k in ("text", "tool_use", "thinking", "redacted_thinking")},
}


UserBlock = TextBlock | ImageBlock | ToolResultBlock
AssistantBlock = TextBlock | ToolUseBlock | ThinkingBlock


class UserMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["user"]
    content: (
        str
        | Annotated[list[Annotated[UserBlock, Field(discriminator="type")]], Field(min_length=1)]
    )


class AssistantMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["assistant"]
    content: (
        str
        | Annotated[
            list[Annotated[AssistantBlock, Field(discriminator="type")]], Field(min_length=1)
        ]
    )


Message = Annotated[UserMessage | AssistantMessage, Field(discriminator="role")]


class Tool(_Open):
    type: Literal["custom"] | None = None  # server tools (web search ...) run on Anthropic
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoiceAuto(_Open):
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(_Open):
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(_Open):
    type: Literal["tool"]
    name: str = Field(min_length=1)
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(_Open):
    type: Literal["none"]


ToolChoice = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone,
    Field(discriminator="type"),
]


class Metadata(_Open):
    user_id: str | None = None


class MessagesRequest(BaseModel):
    """``POST /v1/messages`` body (for ``/openapi.json`` and the top-level checks)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1, le=MAX_TOKEN_LIMIT)
    messages: list[Message] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0, le=MAX_TOKEN_LIMIT)
    metadata: Metadata | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None


class CountTokensRequest(BaseModel):
    """``POST /v1/messages/count_tokens`` body: the request without its output cap."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicErrorEnvelope(BaseModel):
    """Anthropic's error body: ``{"type": "error", "error": {"type", "message"}}``."""

    type: Literal["error"]
    error: AnthropicErrorDetail


@dataclass(frozen=True, slots=True)
class MessagesCall:
    """A validated request: its top-level fields plus its typed parts."""

    request: MessagesRequest
    system: str | list[TextBlock] | None
    messages: list[tuple[str, str | list[BaseModel]]]  # (role, content)


# -- errors ------------------------------------------------------------------------------
_TYPES: dict[int, str] = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """HTTP status -> Anthropic's error ``type``."""
    return _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_envelope(err: ApiError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(err.status), "message": err.message}}


# -- validation --------------------------------------------------------------------------
def _param(loc: Loc) -> str:
    out = str(loc[0])
    for p in loc[1:]:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _invalid(loc: Loc, message: str) -> ApiError:
    param = _param(loc)
    return ApiError(400, f"Invalid request at '{param}': {message}", param=param)


def _check(model: type[M], value: Any, loc: Loc) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errors = [{**e, "loc": (*loc, *e["loc"])} for e in exc.errors(include_url=False)]
        raise validation_error(errors) from None


def _block(value: Any, loc: Loc, models: Mapping[str, type[BaseModel]]) -> BaseModel:
    if not isinstance(value, dict):
        raise _invalid(loc, "expected a content block (an object with a 'type')")
    kind = value.get("type")
    model = models.get(kind) if isinstance(kind, str) else None
    if model is None:
        what = ", ".join(dict.fromkeys(models))
        raise _invalid(
            (*loc, "type"),
            f"block type {kind!r} is not supported here; use {what} (documents, search "
            "results and server-tool blocks are answered by Anthropic only).",
        )
    if model is ToolResultBlock:
        content = value.get("content")
        if isinstance(content, list):
            for i, b in enumerate(content):  # each result block checked where it is
                _block(b, (*loc, "content", i), RESULT_BLOCKS)
    return _check(model, value, loc)


def _content(value: Any, loc: Loc, role: str) -> str | list[BaseModel]:
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        raise _invalid(loc, "expected a string or a non-empty list of content blocks")
    models = ROLE_BLOCKS[role]
    for i, b in enumerate(value):
        kind = b.get("type") if isinstance(b, dict) else None
        if isinstance(kind, str) and kind in BLOCKS and kind not in models:
            raise _invalid(
                (*loc, i, "type"),
                f"a {role} turn cannot hold a {kind!r} block; it takes {', '.join(models)}.",
            )
    return [_block(b, (*loc, i), BLOCKS) for i, b in enumerate(value)]


def _tools(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise _invalid(("tools",), "expected a list of tools")
    for i, tool in enumerate(value):
        if isinstance(tool, dict) and tool.get("type") not in (None, "custom"):
            raise _invalid(
                ("tools", i, "type"),
                f"tool type {tool.get('type')!r} is a server tool Anthropic runs; this router "
                "forwards client tools only (name, description, input_schema).",
            )
        _check(Tool, tool, ("tools", i))


def _system(value: Any) -> str | list[TextBlock] | None:
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _invalid(("system",), "expected a string or a list of text blocks")
    blocks = [_block(b, ("system", i), {"text": TextBlock}) for i, b in enumerate(value)]
    return [b for b in blocks if isinstance(b, TextBlock)]


def _messages(raw: Any) -> list[tuple[str, str | list[BaseModel]]]:
    if not isinstance(raw, list) or not raw:
        what = "missing" if raw is None else "not a non-empty list"
        raise ApiError(400, f"'messages' is {what}: send a list of messages.", param="messages")
    out: list[tuple[str, str | list[BaseModel]]] = []
    for i, m in enumerate(raw):
        loc: Loc = ("messages", i)
        if not isinstance(m, dict):
            raise _invalid(loc, "expected a message object ({'role', 'content'})")
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise _invalid(
                (*loc, "role"),
                f"role {role!r} is not a Messages role: use 'user' or 'assistant' "
                "(the system prompt is the top-level 'system' field).",
            )
        if "content" not in m:
            raise _invalid((*loc, "content"), "field required")
        out.append((role, _content(m["content"], (*loc, "content"), role)))
    return out


def parse_messages(data: dict[str, Any]) -> MessagesCall:
    """Parsed body -> ``MessagesCall`` (400 naming the bad or unsupported field)."""
    system = _system(data.get("system"))
    messages = _messages(data.get("messages"))
    _tools(data.get("tools"))
    req = _check(MessagesRequest, data, ())
    return MessagesCall(req, system, messages)


def parse_count_tokens(data: dict[str, Any]) -> MessagesCall:
    """A count_tokens body -> the same ``MessagesCall`` (``max_tokens`` is not part of it)."""
    system = _system(data.get("system"))
    messages = _messages(data.get("messages"))
    _tools(data.get("tools"))
    _check(CountTokensRequest, data, ())
    req = _check(MessagesRequest, {**data, "max_tokens": 1, "stream": False}, ())
    return MessagesCall(req, system, messages)
