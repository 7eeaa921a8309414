"""Response classes that finish their bookkeeping before the response completes.

``LoggedResponse``: the body goes out, then ``on_finish`` (decision log + metrics) is
awaited, then the response is closed, so a row is committed before the request ends.
``RelayResponse``: SSE events are sent as they arrive; a client disconnect is noticed at
once (not only at the next write) and cancels the relay, which closes the upstream
request; ``on_finish`` runs after the last chunk, or after the disconnect."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

Finish = Callable[[], Awaitable[None]]


class LoggedResponse(Response):
    def __init__(
        self,
        content: bytes,
        status_code: int,
        headers: Mapping[str, str],
        on_finish: Finish,
        media_type: str = "application/json",
    ) -> None:
        super().__init__(content, status_code, dict(headers), media_type)
        self._on_finish = on_finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body, "more_body": True})
        with anyio.CancelScope(shield=True):
            await self._on_finish()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class RelayResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        headers: Mapping[str, str],
        on_finish: Finish,
    ) -> None:
        self.status_code = 200
        self.background = None
        self._events = events
        self._on_finish = on_finish
        self._finished = False
        self.init_headers({**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            with anyio.CancelScope(shield=True):
                await self._on_finish()

    async def _stream(self, send: Send, done: anyio.CancelScope) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self._events:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await self._close_events()
            await self._finish()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away (servers on ASGI spec >= 2.4 raise on send)
        finally:
            await self._close_events()
            done.cancel()

    async def _close_events(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._events.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._stream, send, tg.cancel_scope)
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        break
                tg.cancel_scope.cancel()
        finally:
            await self._finish()
