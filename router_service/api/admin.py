"""Admin endpoints of the model loop, and ``install`` which wires the loop into an app.

* ``POST /admin/reload``: reload the served model from its directory now (refused models
  -> 409, the old one keeps serving). ``GET /admin/model``: served version, reload history.
* ``POST /admin/shadow`` ``{"model_dir", "sample_rate"?}``: run a candidate in shadow;
  ``DELETE /admin/shadow`` stops it.

All need ``Authorization: Bearer <ROUTER_ADMIN_KEY>`` (401 otherwise) and do not exist
(404) when no admin key is configured."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from router_service.api import feedback as feedback_api
from router_service.api import shadow as shadow_api
from router_service.api.auth import check_admin
from router_service.api.pipeline import read_body
from router_service.api.state import RouterState, resolve_path, served_model_dir
from router_service.decision import Scorer
from router_service.errors import ApiError, validation_error
from router_service.model_store import ModelLoop, ModelStore, default_loader, validate_scorer
from router_service.protocol import parse_json_object
from router_service.shadow import ShadowCollector, ShadowEvaluator, tier_prices

log = logging.getLogger("router_service")
router = APIRouter()


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _require_admin(request: Request) -> RouterState:
    state: RouterState = request.app.state.router
    if not state.settings.admin_key:
        raise ApiError(
            404,
            "Admin endpoints are disabled: set ROUTER_ADMIN_KEY to enable them.",
            code="admin_disabled",
        )
    check_admin(state.settings, request.headers)
    return state


def model_loop(request: Request) -> ModelLoop:
    loop: ModelLoop = request.app.state.model_loop
    return loop


@router.post("/admin/reload", include_in_schema=False)
async def reload_model(request: Request) -> Response:
    _require_admin(request)
    result = await model_loop(request).reload(force=True)
    if result.status == "refused":
        raise ApiError(
            409,
            f"Model reload refused ({result.message}); still serving {result.version}.",
            code="model_refused",
        )
    return _json({"object": "model.reload", **result.as_dict()})


@router.get("/admin/model", include_in_schema=False)
async def model_status(request: Request) -> Response:
    _require_admin(request)
    return _json({"object": "model.status", **model_loop(request).status()})


class ShadowBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_dir: str = Field(min_length=1)
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)


def load_shadow(state: RouterState, model_dir: Path, sample_rate: float) -> ShadowEvaluator:
    """Model dir -> a started-able ``ShadowEvaluator`` (raises on an unusable model)."""
    candidate: Scorer = default_loader(model_dir)
    validate_scorer(candidate)
    return ShadowEvaluator(
        candidate,
        state.policy.routing,
        tier_prices(state.backends),
        sample_rate=sample_rate,
        model_dir=str(model_dir),
    )


def models_root(state: RouterState) -> Path:
    settings = state.settings
    if settings.models_root is not None:
        return resolve_path(settings.models_root).resolve()
    return served_model_dir(settings).resolve().parent


def inside_models_root(state: RouterState, requested: str) -> Path:
    """A requested candidate dir -> its resolved path, or 403 when it lies outside the models
    root (checked before anything touches the path, so the answer says nothing about what
    exists elsewhere on the machine)."""
    root = models_root(state)
    candidate = Path(requested)
    if candidate.is_absolute():
        options = [candidate.resolve()]
    else:  # relative to the root, else (a dev checkout) to the working dir / repository
        options = [(root / candidate).resolve(), resolve_path(candidate).resolve()]
    inside = [p for p in options if p.is_relative_to(root)]
    for path in inside:
        if path.is_dir():
            return path
    if not inside:
        raise ApiError(
            403,
            "model_dir must be a directory under the models root (ROUTER_MODELS_ROOT); "
            "give it relative to that root.",
            param="model_dir",
            code="path_not_allowed",
        )
    return inside[0]  # inside the root but missing: loading it fails with the reason


@router.post("/admin/shadow", include_in_schema=False)
async def start_shadow(request: Request) -> Response:
    state = _require_admin(request)
    data = parse_json_object(await read_body(request, state.settings.max_body_bytes))
    try:
        body = ShadowBody.model_validate(data)
    except ValidationError as exc:
        raise validation_error(list(exc.errors()), status=422) from None
    model_dir = inside_models_root(state, body.model_dir)
    try:
        shadow = await asyncio.to_thread(load_shadow, state, model_dir, body.sample_rate)
    except Exception as exc:
        raise ApiError(
            409, f"Shadow model refused: {exc}", param="model_dir", code="model_refused"
        ) from None
    model_loop(request).set_shadow(shadow)
    return _json({"object": "shadow", **shadow.report()})


@router.delete("/admin/shadow", include_in_schema=False)
async def stop_shadow(request: Request) -> Response:
    _require_admin(request)
    loop = model_loop(request)
    last = loop.shadow.report() if loop.shadow is not None else None
    await asyncio.to_thread(loop.set_shadow, None)
    return _json({"object": "shadow", "enabled": False, "last_report": last})


def install(app: FastAPI, state: RouterState) -> ModelLoop:
    """Create the model loop (hot reload + optional shadow) for ``state`` and add the
    feedback, shadow and admin routes. The app's lifespan must ``await loop.start()`` and
    ``await loop.stop()``."""
    settings = state.settings

    def publish(scorer: Scorer) -> None:
        state.scorer = scorer  # one reference assignment: requests take it once each
        state.scorer_error = None

    store = None
    if settings.scorer == "learned":
        store = ModelStore(served_model_dir(settings), state.scorer)
    loop = ModelLoop(store, publish, poll_seconds=settings.model_watch_seconds, served=state.scorer)
    if settings.shadow_model_dir is not None:
        path = resolve_path(settings.shadow_model_dir)
        try:
            loop.set_shadow(load_shadow(state, path, settings.shadow_sample_rate))
            log.info("shadow model from %s (sample rate %g)", path, settings.shadow_sample_rate)
        except Exception as exc:
            log.error("shadow model NOT started: %s is not usable (%s)", path, exc)
    state.metrics.registry.register(ShadowCollector(lambda: loop.shadow))
    app.state.model_loop = loop
    app.include_router(feedback_api.router)
    app.include_router(shadow_api.router)
    app.include_router(router)
    return loop
