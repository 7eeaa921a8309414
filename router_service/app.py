"""Settings (+ environment) -> the FastAPI application of the routing service.

``create_app`` validates the policy file (a bad one fails here with a message naming the
file and the field), loads the scorer (falling back to the heuristic), builds one pooled
HTTP client per backend and the decision log; the lifespan starts the log and closes
everything on shutdown. Nothing is built at import time."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from router_service import __version__
from router_service.api import admin, chat, classify, info
from router_service.api.middleware import RequestIdMiddleware
from router_service.api.state import RouterState, build_state
from router_service.errors import install_error_handlers
from router_service.settings import Settings


def create_app(
    settings: Settings | None = None, *, env: Mapping[str, str] | None = None
) -> FastAPI:
    """-> the app. ``env`` (default ``os.environ``) is where backend API keys are read."""
    settings = settings if settings is not None else Settings()
    state = build_state(settings, os.environ if env is None else env)

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        await state.log.start()
        await app_.state.model_loop.start()  # model hot reload (file watch)
        try:
            yield
        finally:
            await app_.state.model_loop.stop()
            await state.drain_logs()  # background log rows (log_wait=false)
            await state.upstream.aclose()
            await state.log.close()

    app = FastAPI(
        title="learned-router",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.router = state
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    # Plain Starlette routes: the handlers take the Request and return a Response, so
    # FastAPI's dependency/validation layer would only add per-request cost.
    app.add_route(chat.ENDPOINT, chat.chat_completions, methods=["POST"])
    app.add_route(classify.ENDPOINT, classify.classify, methods=["POST"])
    for path, handler in info.ROUTES:
        app.add_route(path, handler, methods=["GET"])
    admin.install(app, state)  # hot reload + shadow; /v1/feedback, /v1/shadow, /admin/*
    return app


def router_state(app: FastAPI) -> RouterState:
    """The ``RouterState`` of an app built by ``create_app`` (for tests and tools)."""
    state: RouterState = app.state.router
    return state
