"""Response classes that run the request's bookkeeping (decision log + metrics) at the
right moment relative to the answer.

``commit_first=False`` (``ROUTER_LOG_WAIT=false``, the default): the answer goes out
completely, then ``on_finish`` runs (it only queues the log row), so nothing waits for the
database. ``commit_first=True``: ``on_finish`` (which then awaits the row's COMMIT) runs
before the answer's last byte: the whole body of a plain response, the final event of a
stream (``is_final``: chat's ``[DONE]``; the Responses API's ``response.completed`` ...).
A client that received the complete answer can rely on its row being committed.

``RelayResponse`` sends SSE events as they arrive; a client disconnect is noticed at once
(not only at the next write) and cancels the relay, which closes the upstream request;
``on_finish`` runs exactly once, after the last event or after the disconnect."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

Finish = Callable[[], Awaitable[None]]


def _is_done_event(chunk: bytes) -> bool:
    return chunk.lstrip().startswith(b"data: [DONE]")


class LoggedResponse(Response):
    def __init__(
        self,
        content: bytes,
        status_code: int,
        headers: Mapping[str, str],
        on_finish: Finish,
        *,
        commit_first: bool = False,
        media_type: str = "application/json",
    ) -> None:
        super().__init__(content, status_code, dict(headers), media_type)
        self._on_finish = on_finish
        self._commit_first = commit_first

    async def _finish(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._on_finish()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._commit_first:
            await self._finish()
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            await send({"type": "http.response.body", "body": self.body})
        except OSError:
            pass  # the client went away (servers on ASGI spec >= 2.4 raise on send)
        finally:
            if not self._commit_first:
                await self._finish()


class RelayResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        headers: Mapping[str, str],
        on_finish: Finish,
        *,
        commit_first: bool = False,
        is_final: Callable[[bytes], bool] = _is_done_event,
    ) -> None:
        self.status_code = 200
        self.background = None
        self._events = events
        self._is_final = is_final
        self._on_finish = on_finish
        self._commit_first = commit_first
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
            held: list[bytes] = []  # commit_first: the final event waits for the commit
            async for chunk in self._events:
                if self._commit_first and self._is_final(chunk):
                    held.append(chunk)
                    continue
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await self._close_events()
            await self._finish()
            for chunk in held:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
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
