"""``POST /v1/feedback``: a user's rating of one routed answer -> the ``feedback`` table.

Body: ``{"request_id", "thumbs": "up"|"down", "score": 1-10, "comment"?}`` with at least
one of ``thumbs`` / ``score``. Stored with source ``"user"``; posting again for the same
request replaces the earlier rating. Decision rows still being written when the feedback
arrives are committed first, so a rating posted right after its answer finds its request.
Unknown request id -> 404; a body that is not a JSON
object -> 400; a JSON object with invalid fields -> 422 (OpenAI error envelopes)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Request
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    model_validator,
)
from starlette.responses import Response

from router_service.api.auth import check_client_auth, client_key_id, is_admin
from router_service.api.pipeline import read_body
from router_service.api.state import RouterState
from router_service.errors import ApiError, validation_error
from router_service.protocol import parse_json_object

router = APIRouter()
MAX_COMMENT_CHARS = 4000


def _whole_float(value: Any) -> Any:
    """7.0 -> 7: the same JSON number (JSON Schema calls it an integer); 7.5, "7", true stay
    as they are and are refused by the strict integer check."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128)
    thumbs: Literal["up", "down"] | None = None
    # JSON's integers: 7 and 7.0 (the same number in JSON Schema); never "7", true or 7.5.
    score: Annotated[StrictInt | None, BeforeValidator(_whole_float)] = Field(
        default=None, ge=1, le=10
    )
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)

    @model_validator(mode="after")
    def _something_to_say(self) -> FeedbackBody:
        if self.thumbs is None and self.score is None:
            raise ValueError("give 'thumbs' ('up' or 'down') and/or 'score' (1-10)")
        return self


def parse_feedback(raw: bytes) -> FeedbackBody:
    """Body bytes -> ``FeedbackBody`` or ``ApiError`` (400 not JSON, 422 bad fields)."""
    data = parse_json_object(raw)
    try:
        return FeedbackBody.model_validate(data)
    except ValidationError as exc:
        raise validation_error(list(exc.errors()), status=422) from None


def store_feedback(
    state: RouterState, body: FeedbackBody, client_key: str | None = None, admin: bool = False
) -> dict[str, Any]:
    """Validated feedback -> a ``feedback`` row (blocking; run in a thread).

    With client keys configured a key may rate only the requests it made (``client_key``:
    ``auth.client_key_id``); another key's request answers 404 as if it did not exist.
    The admin key may rate any request."""
    exists, owner = state.log.request_client(body.request_id)
    if exists and state.settings.api_keys and not admin and owner != client_key:
        exists = False
    if not exists:
        raise ApiError(
            404,
            f"No routed request with id '{body.request_id}' (take it from the "
            "X-Router-Request-Id response header).",
            param="request_id",
            code="request_not_found",
        )
    thumbs = None if body.thumbs is None else (1 if body.thumbs == "up" else -1)
    state.log.add_feedback(
        body.request_id,
        "user",
        score=body.score,
        thumbs=thumbs,
        rationale=body.comment,
        replace=True,
    )
    return {
        "object": "feedback",
        "request_id": body.request_id,
        "source": "user",
        "thumbs": body.thumbs,
        "score": body.score,
        "stored": True,
    }


@router.post("/v1/feedback", include_in_schema=False)
async def post_feedback(request: Request) -> Response:
    state: RouterState = request.app.state.router
    admin = is_admin(state.settings, request.headers)
    if not admin:
        check_client_auth(state.settings, request.headers)
    body = parse_feedback(await read_body(request, state.settings.max_body_bytes))
    # The rated request's row may still be on its way to the database (rows are written
    # after the answer by default): let the rows in flight land before looking it up.
    await state.drain_logs()
    key = client_key_id(state.settings, request.headers)
    out = await asyncio.to_thread(store_feedback, state, body, key, admin)
    return Response(orjson.dumps(out), media_type="application/json")
