"""A scriptable HTTP server on 127.0.0.1 (uvicorn in a background thread) -> recorded
requests and scripted replies: status, body chunks, delays, hangs, malformed streams.

Also ``ServedApp``: any ASGI app (the router) served the same way, so tests talk to it
over real HTTP with the official ``openai`` SDK."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Reply:
    """What the fake answers: ``chunks`` are sent one by one, ``chunk_delay`` apart."""

    status: int = 200
    chunks: list[bytes] = field(default_factory=list)
    content_type: str = "application/json"
    first_delay: float = 0.0  # before the status line (slow first byte)
    chunk_delay: float = 0.0
    hang: bool = False  # after the chunks, keep the response open until the client leaves
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers

    @classmethod
    def json(cls, body: Any, status: int = 200, **kw: Any) -> Reply:
        return cls(status=status, chunks=[orjson.dumps(body)], **kw)


Responder = Callable[[Recorded], Reply]


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no delayed-ACK stalls
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class _Served:
    """uvicorn running ``app`` on a loopback port in a daemon thread."""

    def __init__(self, app: Any, lifespan: str = "off", http: str = "h11") -> None:
        self._sock = _bind()
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan=lifespan,
            loop="asyncio",
            http=http,
            interface="asgi3",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.005)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self._sock.close()


class FakeUpstream:
    """A fake LLM server. ``script(...)`` queues replies; otherwise ``responder`` answers."""

    def __init__(self, name: str, responder: Responder) -> None:
        self.name = name
        self.responder = responder
        self.replies: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self.disconnected = threading.Event()
        self.completed = 0
        self._lock = threading.Lock()
        self._served = _Served(self._app)

    @property
    def url(self) -> str:
        return self._served.url

    @property
    def calls(self) -> list[Recorded]:
        """Requests other than health probes (GET)."""
        return [r for r in self.requests if r.method == "POST"]

    @property
    def bytes_received(self) -> int:
        return sum(len(r.body) for r in self.requests)

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.replies.clear()
            self.requests.clear()
            self.completed = 0
        self.disconnected.clear()

    def stop(self) -> None:
        self._served.stop()

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected.set()
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        rec = Recorded(scope["method"], scope["path"], headers, body)
        with self._lock:
            self.requests.append(rec)
            reply = self.replies.popleft() if self.replies else self.responder(rec)

        gone = asyncio.Event()

        async def watch() -> None:
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    gone.set()
                    self.disconnected.set()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            if reply.first_delay and await _wait(gone, reply.first_delay):
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": reply.status,
                    "headers": [
                        (b"content-type", reply.content_type.encode()),
                        *((k.encode(), v.encode()) for k, v in reply.headers.items()),
                    ],
                }
            )
            for i, chunk in enumerate(reply.chunks):
                if i and reply.chunk_delay and await _wait(gone, reply.chunk_delay):
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if reply.hang:
                await gone.wait()
                return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            with self._lock:
                self.completed += 1
        finally:
            watcher.cancel()


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``event`` fires first; True if it fired."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
        return True
    except TimeoutError:
        return False


class ServedApp:
    """The router app (with its lifespan) on a loopback port."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._served = _Served(app, lifespan="on", http="httptools")

    @property
    def url(self) -> str:
        return self._served.url

    def stop(self) -> None:
        self._served.stop()
