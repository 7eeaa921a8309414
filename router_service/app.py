"""Settings (+ environment) -> the FastAPI application of the routing service.

``create_app`` validates the policy file (a bad one fails here with a message naming the
file and the field), loads the scorer (falling back to the heuristic), builds one pooled
HTTP client per backend and the decision log; the lifespan starts the log and closes
everything on shutdown. Nothing is built at import time."""

from __future__ import annotations

import asyncio
import gc
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from router_service import __version__
from router_service.api import (
    admin,
    chat,
    classify,
    completions_endpoint,
    dashboard,
    info,
    messages_endpoint,
    openapi,
    responses_endpoint,
)
from router_service.api.middleware import RequestIdMiddleware
from router_service.api.pipeline import REQUEST_ID_KEY
from router_service.api.state import RouterState, build_state
from router_service.errors import install_error_handlers
from router_service.probe_server import ProbeServer
from router_service.settings import Settings

Handler = Callable[[Request], Awaitable[Response]]


class RouterApp(FastAPI):
    """FastAPI with a direct lane for the request-path endpoints.

    ``POST /v1/chat/completions`` and ``POST /v1/classify`` are handlers that never raise
    (every failure becomes an OpenAI error envelope) and set their own request-id and
    ``X-Router-*`` headers, so the middleware stack (server-error, exception, body-limit,
    exit-stack and request-id middlewares, route matching: ~15% of the router's CPU per
    request) adds nothing to them. ``direct_routes`` are dispatched before it; everything
    else, including those paths with another method, takes the full stack."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.direct_routes: dict[tuple[str, str], Handler] = {}

    def add_direct_route(self, path: str, handler: Handler) -> None:
        self.direct_routes[("POST", path)] = handler
        self.add_route(path, handler, methods=["POST"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self.direct_routes.get((scope["method"], scope["path"]))
            if handler is not None:
                scope["app"] = self
                scope[REQUEST_ID_KEY] = uuid.uuid4().hex
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    env: Mapping[str, str] | None = None,
    tracer_provider: Any = None,
) -> FastAPI:
    """-> the app. ``env`` (default ``os.environ``) is where backend API keys are read;
    ``tracer_provider``: the OpenTelemetry provider when ``settings.otel`` (default: the
    SDK's, configured by the ``OTEL_*`` variables)."""
    settings = settings if settings is not None else Settings()
    state = build_state(settings, os.environ if env is None else env, tracer_provider)

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        await state.log.start()
        await app_.state.model_loop.start()  # model hot reload (file watch)
        if settings.health_cache_seconds > 0:
            info.prefetch_health(state)
        probe = None
        if settings.probe_port is not None:
            probe = ProbeServer(
                state, asyncio.get_running_loop(), settings.probe_host, settings.probe_port
            )
            probe.start()
        app_.state.probe = probe
        # Everything built so far (model, tokenizer caches, policy, clients) lives as long
        # as the process: keep it out of the garbage collector's full scans, which would
        # otherwise walk it again and again on the request path (p99).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if probe is not None:
                probe.stop()
            await app_.state.model_loop.stop()
            await state.drain_logs()  # background log rows (log_wait=false)
            if state.health.refresh is not None:  # a background /health re-probe
                state.health.refresh.cancel()
            await state.upstream.aclose()
            await state.log.close()

    app = RouterApp(
        title="learned-router",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's built-in OpenTelemetry hooks check the global providers on every
        # request (~20 µs); the router exports its own Prometheus metrics instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.router = state
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    # Plain Starlette routes: the handlers take the Request and return a Response, so
    # FastAPI's dependency/validation layer would only add per-request cost.
    app.add_direct_route(chat.ENDPOINT, chat.chat_completions)
    app.add_direct_route(classify.ENDPOINT, classify.classify)
    app.add_direct_route(responses_endpoint.ENDPOINT, responses_endpoint.responses)
    app.add_direct_route(messages_endpoint.ENDPOINT, messages_endpoint.messages)
    app.add_direct_route(messages_endpoint.COUNT_TOKENS, messages_endpoint.count_tokens)
    app.add_direct_route(completions_endpoint.ENDPOINT, completions_endpoint.completions)
    for path, handler in (*info.ROUTES, *dashboard.ROUTES):
        app.add_route(path, handler, methods=["GET"])
    app.add_route("/openapi.json", openapi.openapi_json, methods=["GET"])
    admin.install(app, state)  # hot reload + shadow; /v1/feedback, /v1/shadow, /admin/*
    return app


def router_state(app: FastAPI) -> RouterState:
    """The ``RouterState`` of an app built by ``create_app`` (for tests and tools)."""
    state: RouterState = app.state.router
    return state
