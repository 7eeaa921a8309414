"""Every HTTP request -> a fresh request id in the ASGI scope and on the response.

A plain ASGI middleware (no BaseHTTPMiddleware: that would add a task and a copy per
request). Handlers read the id with ``pipeline.request_id``; responses that do not set
``X-Router-Request-Id`` themselves get it here."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router_service.api.pipeline import REQUEST_ID_KEY

_HEADER = b"x-router-request-id"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        scope[REQUEST_ID_KEY] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(k.lower() == _HEADER for k, _ in headers):
                    headers.append((_HEADER, rid.encode()))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)
