"""A parsed ``POST /v1/responses`` body -> validated OpenAI Responses wire objects (or an
``ApiError`` naming the field), in the style of ``router_service.protocol``.

The models check what the router reads and translates; unknown top-level fields are kept
(``extra="allow"``) and passed on to the chat backend, as chat does. The fields that are a
choice of shapes (``input`` and its items and parts, ``tools``, ``tool_choice``,
``text.format``) are dispatched by hand on their ``type``, so an error names the exact place
(``input[2].content[0].text``) instead of every member of a union; ``ResponsesRequestSchema``
types them for the published OpenAPI document. What a stateless router cannot do is refused
first with a message saying why (``STATELESS``). The openai SDK's own types
(``openai.types.responses``) are the reference for every shape here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from router_service.errors import ApiError, validation_error
from router_service.protocol import MAX_TOKEN_LIMIT

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]
STATELESS = (
    "This router is stateless: it stores no responses or conversations. Resend the whole "
    "conversation as input items (the earlier output items, then the new input)."
)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- content parts -----------------------------------------------------------------------
class InputText(_Open):
    type: Literal["input_text"]
    text: str


class OutputText(_Open):
    """An earlier answer's text sent back as history (its annotations are not forwarded)."""

    type: Literal["output_text"]
    text: str


class Refusal(_Open):
    type: Literal["refusal"]
    refusal: str


class InputImage(_Open):
    type: Literal["input_image"]
    image_url: str = Field(min_length=1, description="a URL or a data: URL")
    detail: Literal["low", "high", "auto", "original"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_file_id(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("file_id") and not value.get("image_url"):
            raise ValueError(
                "an image by file_id needs OpenAI's Files API, which this router does not "
                "serve; send image_url (a URL or a data: URL)"
            )
        return value


class InputFile(_Open):
    type: Literal["input_file"]
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None
    file_url: None = None  # chat completions take a file's data or id, not a URL

    @model_validator(mode="before")
    @classmethod
    def _no_file_url(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("file_url") is not None:
            raise ValueError(
                "file_url is not supported (chat completions take no file URLs); send the "
                "file as file_data (a data: URL) or file_id"
            )
        return value


Part = Annotated[
    InputText | OutputText | Refusal | InputImage | InputFile, Field(discriminator="type")
]
OutputPart = Annotated[InputText | InputImage | InputFile, Field(discriminator="type")]
PARTS: dict[str, type[BaseModel]] = {
    "input_text": InputText,
    "output_text": OutputText,
    "refusal": Refusal,
    "input_image": InputImage,
    "input_file": InputFile,
}
OUTPUT_PARTS = {k: PARTS[k] for k in ("input_text", "input_image", "input_file")}


# -- input items -------------------------------------------------------------------------
class MessageItem(_Open):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[Part]


class FunctionCallItem(_Open):
    """A tool call the model made earlier (an output item sent back as history)."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str


class FunctionCallOutputItem(_Open):
    """The client's result for a ``function_call`` (-> a chat ``role: tool`` message)."""

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[OutputPart]


InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem
ITEMS: dict[str, type[BaseModel]] = {
    "message": MessageItem,
    "function_call": FunctionCallItem,
    "function_call_output": FunctionCallOutputItem,
}


# -- tools, tool choice, text format, reasoning ------------------------------------------
class FunctionTool(_Open):
    type: Literal["function"]
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


TOOLS: dict[str, type[BaseModel]] = {"function": FunctionTool}


class ToolChoiceFunction(_Open):
    type: Literal["function"]
    name: str = Field(min_length=1)


class ToolChoiceAllowed(_Open):
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: list[ToolChoiceFunction]


TOOL_CHOICE_MODES = ("none", "auto", "required")
TOOL_CHOICES: dict[str, type[BaseModel]] = {
    "function": ToolChoiceFunction,
    "allowed_tools": ToolChoiceAllowed,
}
ToolChoice = (
    Literal["none", "auto", "required"]
    | Annotated[ToolChoiceFunction | ToolChoiceAllowed, Field(discriminator="type")]
)


class FormatText(_Open):
    type: Literal["text"]


class FormatJsonObject(_Open):
    type: Literal["json_object"]


class FormatJsonSchema(_Open):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: Literal["json_schema"]
    name: str = Field(min_length=1)
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


Format = FormatText | FormatJsonObject | FormatJsonSchema
FORMATS: dict[str, type[BaseModel]] = {
    "text": FormatText,
    "json_object": FormatJsonObject,
    "json_schema": FormatJsonSchema,
}


class TextConfig(_Open):
    format: Annotated[Format, Field(discriminator="type")] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(_Open):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None


# -- the request -------------------------------------------------------------------------
class ResponsesRequest(BaseModel):
    """``POST /v1/responses`` body; the ``Any`` fields are checked by ``parse_responses``."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: Any
    instructions: str | None = None
    stream: bool = False
    tools: Any = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    text: Any = None
    reasoning: Reasoning | None = None
    max_output_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKEN_LIMIT)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    metadata: dict[str, Any] | None = None
    user: str | None = None
    store: bool | None = None  # accepted; nothing is stored (see STATELESS)
    # Refused (they need state this router does not keep): only null is accepted.
    previous_response_id: None = None
    conversation: None = None
    prompt: None = None
    background: Literal[False] | None = None


class ResponsesRequestSchema(ResponsesRequest):
    """The same request with its choice-of-shape fields typed (for ``/openapi.json``)."""

    input: str | Annotated[list[InputItem], Field(min_length=1)]
    tools: list[FunctionTool] | None = None
    tool_choice: ToolChoice | None = None
    text: TextConfig | None = None


@dataclass(frozen=True, slots=True)
class ResponsesCall:
    """A validated Responses request: the body's model plus its typed parts."""

    request: ResponsesRequest
    items: list[InputItem]
    tools: list[FunctionTool]
    tool_choice: str | ToolChoiceFunction | ToolChoiceAllowed | None
    text: TextConfig | None


def _param(loc: Loc) -> str:
    out = str(loc[0])
    for p in loc[1:]:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _invalid(loc: Loc, message: str, code: str = "invalid_value") -> ApiError:
    param = _param(loc)
    return ApiError(400, f"Invalid request at '{param}': {message}", param=param, code=code)


def _check(model: type[M], value: Any, loc: Loc) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errors = [{**e, "loc": (*loc, *e["loc"])} for e in exc.errors(include_url=False)]
        raise validation_error(errors) from None


def _one_of(value: Any, loc: Loc, models: Mapping[str, type[BaseModel]], what: str) -> BaseModel:
    """An object whose ``type`` picks its model (``what`` describes the accepted types)."""
    if not isinstance(value, dict):
        raise _invalid(loc, f"expected an object ({what})")
    kind = value.get("type")
    model = models.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise _invalid((*loc, "type"), f"type {kind!r} is not supported here; use {what}.")
    return _check(model, value, loc)


def _parts(value: Any, loc: Loc, models: Mapping[str, type[BaseModel]]) -> Any:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _invalid(loc, "expected a string or a list of content parts")
    what = ", ".join(models)
    return [_one_of(p, (*loc, i), models, what) for i, p in enumerate(value)]


def _item(value: Any, i: int) -> InputItem:
    loc: Loc = ("input", i)
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "item_reference":
        raise _invalid((*loc, "type"), STATELESS, "unsupported_parameter")
    if kind in ("message", None) and isinstance(value, dict):
        content = _parts(value.get("content"), (*loc, "content"), PARTS)
        return _check(MessageItem, {**value, "content": content}, loc)
    if kind == "function_call_output":
        output = _parts(value.get("output"), (*loc, "output"), OUTPUT_PARTS)
        return _check(FunctionCallOutputItem, {**value, "output": output}, loc)
    what = ", ".join(ITEMS) + " items (hosted tools such as web search run on OpenAI only)"
    item = _one_of(value, loc, ITEMS, what)
    assert isinstance(item, FunctionCallItem)
    return item


def _refuse_stateful(data: dict[str, Any]) -> None:
    for name in ("previous_response_id", "conversation"):
        if data.get(name) is not None:
            message = f"'{name}' is not supported. {STATELESS}"
            raise ApiError(400, message, param=name, code="unsupported_parameter")
    if data.get("prompt") is not None:
        raise ApiError(
            400,
            "'prompt' (a stored prompt template) is not supported: this router stores no "
            "prompts. Send the text as 'instructions' and 'input'.",
            param="prompt",
            code="unsupported_parameter",
        )
    if data.get("background") is True:
        raise ApiError(
            400,
            "'background' responses are not supported: they are stored and polled, and this "
            "router is stateless. Send the request without background (stream: true gives "
            "the answer as it is generated).",
            param="background",
            code="unsupported_parameter",
        )
    if data.get("input") is None:
        message = f"'input' is required. {STATELESS}"
        raise ApiError(400, message, param="input", code="missing_required_parameter")


def parse_responses(data: dict[str, Any]) -> ResponsesCall:
    """Parsed body -> ``ResponsesCall`` (400 naming the bad or unsupported field)."""
    _refuse_stateful(data)
    req = _check(ResponsesRequest, data, ())
    raw = req.input
    if isinstance(raw, str):
        items: list[InputItem] = [MessageItem(role="user", content=raw)]
    elif isinstance(raw, list) and raw:
        items = [_item(v, i) for i, v in enumerate(raw)]
    else:
        raise _invalid(("input",), "expected a string or a non-empty list of input items")
    tools: list[FunctionTool] = []
    if req.tools is not None:
        if not isinstance(req.tools, list):
            raise _invalid(("tools",), "expected a list of tools")
        what = "function tools (hosted tools such as web search run on OpenAI only)"
        for i, value in enumerate(req.tools):
            tool = _one_of(value, ("tools", i), TOOLS, what)
            assert isinstance(tool, FunctionTool)
            tools.append(tool)
    choice = req.tool_choice
    if isinstance(choice, str) and choice not in TOOL_CHOICE_MODES:
        raise _invalid(("tool_choice",), f"expected one of {list(TOOL_CHOICE_MODES)}")
    if choice is not None and not isinstance(choice, str):
        choice = _one_of(choice, ("tool_choice",), TOOL_CHOICES, "function, allowed_tools")
    text = None
    if req.text is not None:
        if not isinstance(req.text, dict):
            raise _invalid(("text",), "expected an object ({'format': ..., 'verbosity': ...})")
        fmt = req.text.get("format")
        if fmt is not None:
            fmt = _one_of(fmt, ("text", "format"), FORMATS, ", ".join(FORMATS))
        text = _check(TextConfig, {**req.text, "format": fmt}, ("text",))
    return ResponsesCall(req, items, tools, choice, text)
