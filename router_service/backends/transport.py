"""Request bytes -> a response over a lean HTTP/1.1 keep-alive pool.

An ``httpx.AsyncBaseTransport`` on plain asyncio protocols with the ``httptools`` C parser
(installed with uvicorn[standard]): one ``write`` per request (head and body together),
no per-request cancel scopes or task look-ups, and a closed response stream drops its
connection when the body was not read to the end (that is how a client disconnect stops
upstream generation). ``Backend`` calls ``send_raw`` with a pre-serialised request and
reads a ``RawResponse`` (no httpx models on the request path: ~10% of the router's CPU per
request); ``handle_async_request`` serves httpx clients (health probes). ``Settings.
upstream_client = "httpx"`` switches back to httpx's own transport (e.g. for HTTP proxies).

Timeouts other than connect are the caller's (``Backend`` wraps reads in deadlines).

Saturation: a server with a short accept queue (llama.cpp's HTTP server listens with a
backlog of a few connections) drops the SYNs of a burst of new connections, and the kernel
resends them only after a second, past a short connect timeout. A connect that times out
while the same server holds other live connections of this pool is that, not a dead host:
it is tried again until the caller's ``saturation_deadline``, and only then fails, with
``Saturated`` (counted as its own fallback reason, never as a connect error)."""

from __future__ import annotations

import asyncio
import ssl
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import cast

import httptools
import httpx

_Key = tuple[str, str, int]


class Saturated(httpx.ConnectTimeout):
    """No new connection within the deadline although the server is up (it holds live
    connections of this pool): it is at capacity."""


_PAUSE_AT = 1 << 20  # buffered body bytes before reading from the socket pauses


def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()


class _Connection(asyncio.Protocol):
    """One TCP connection and the response currently being read from it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.error: Exception | None = None
        self.used = 0
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.head_done = False
        self.complete = False
        self.got_bytes = False
        self.keep_alive = True
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    # -- asyncio protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_done and not self.complete and self._until_close():
            self.complete = True  # body delimited by the end of the connection
            self.keep_alive = False
        elif not self.complete:
            what = "while reading the body" if self.head_done else "before the response"
            self._fail(httpx.RemoteProtocolError(f"server closed the connection {what}"))
        self._wake()

    # -- httptools callbacks --------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(bytes(body))
        self.buffered += len(body)
        if self.buffered > _PAUSE_AT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # -- helpers ------------------------------------------------------------------------
    def _until_close(self) -> bool:
        names = {k.lower() for k, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _fail(self, exc: Exception) -> None:
        if self.error is None:
            self.error = exc
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def send(self, payload: bytes) -> None:
        self._reset()
        assert self.transport is not None
        self.transport.write(payload)
        while not self.head_done:
            if self.error is not None:
                raise self.error
            await self.wait()

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            if self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self.paused and self.buffered < _PAUSE_AT // 2 and self.transport is not None:
                    self.paused = False
                    self.transport.resume_reading()
                yield chunk
                continue
            if self.complete:
                return
            if self.error is not None:
                raise httpx.ReadError(str(self.error))
            await self.wait()


def request_head(method: str, url: httpx.URL, headers: Mapping[str, str]) -> bytes:
    """The head of a request whose body follows, up to and including ``content-length: ``
    (the caller appends the length, a blank line and the body), as httpx would send it."""
    head = [f"{method} ".encode(), url.raw_path, b" HTTP/1.1\r\nhost: ", url.netloc, b"\r\n"]
    for name, value in headers.items():
        head += [name.encode(), b": ", value.encode(), b"\r\n"]
    head.append(b"content-length: ")
    return b"".join(head)


def pool_key(url: httpx.URL) -> _Key:
    return (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))


class RawResponse:
    """An upstream response read straight off its pooled connection: ``status_code``, the
    header pairs, and the body via ``aiter_bytes``/``aread`` (``httpx.ReadError`` if the
    connection breaks); ``aclose`` returns the connection to the pool, or drops it when the
    body was not read to the end."""

    __slots__ = ("_conn", "_done", "_key", "_pool", "raw_headers", "status_code")

    def __init__(self, pool: FastTransport, key: _Key, conn: _Connection) -> None:
        self.status_code = conn.status
        self.raw_headers = conn.headers
        self._pool = pool
        self._key = key
        self._conn = conn
        self._done = False

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self._conn.body()

    def buffered_body(self) -> bytes | None:
        """The whole body if it has already arrived (a small answer usually comes in the
        same read as its head), else None."""
        conn = self._conn
        if not conn.complete or conn.error is not None:
            return None
        body = b"".join(conn.chunks)
        conn.chunks.clear()
        conn.buffered = 0
        return body

    async def aread(self) -> bytes:
        parts = [chunk async for chunk in self._conn.body()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        self._pool._release(self._key, self._conn)


class _Body(httpx.AsyncByteStream):
    """A ``RawResponse`` as the stream of an ``httpx.Response``."""

    def __init__(self, raw: RawResponse) -> None:
        self._raw = raw

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._raw.aiter_bytes():
            yield chunk

    async def aclose(self) -> None:
        await self._raw.aclose()


class FastTransport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 connection pool, one per backend."""

    def __init__(self, max_connections: int = 256, keepalive_expiry: float = 30.0) -> None:
        self._idle: dict[_Key, deque[_Connection]] = {}
        # Connections this pool opened per server; weak, so dropped ones leave by themselves.
        self._live: dict[_Key, weakref.WeakSet[_Connection]] = {}
        self.saturated_retries = 0  # connects retried because the server was busy
        self._active = 0
        self._max = max_connections
        self._slots: asyncio.Semaphore | None = None
        self._expiry = keepalive_expiry
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = (request.extensions.get("timeout") or {}).get("connect")
        payload = self._serialize(request, await request.aread())
        raw = await self.send_raw(pool_key(request.url), payload, timeout)
        return httpx.Response(
            raw.status_code,
            headers=raw.raw_headers,
            stream=_Body(raw),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def send_raw(
        self,
        key: _Key,
        payload: bytes,
        connect_timeout: float | None,
        saturation_deadline: float | None = None,
    ) -> RawResponse:
        """Serialised request -> the response once its head has arrived (a stale
        keep-alive connection that fails before answering is retried once on a new one;
        a connect timed out against a busy server is retried until ``saturation_deadline``,
        a ``time.monotonic()`` value)."""
        if self._closed:
            raise httpx.ConnectError("transport is closed")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max)
        await self._slots.acquire()
        conn: _Connection | None = None
        try:
            conn = self._take_idle(key)
            if conn is not None:
                try:
                    await conn.send(payload)
                except httpx.RemoteProtocolError:
                    if conn.got_bytes:
                        raise
                    conn.close()  # a stale keep-alive connection: retry once on a new one
                    conn = None
            if conn is None:
                conn = await self._connect(key, connect_timeout, saturation_deadline)
                await conn.send(payload)
        except BaseException:
            self._slots.release()
            if conn is not None:
                conn.close()
            raise
        conn.used += 1
        return RawResponse(self, key, conn)

    @staticmethod
    def _serialize(request: httpx.Request, body: bytes) -> bytes:
        target = request.url.raw_path
        head = [request.method.encode(), b" ", target, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        return b"".join(head) + body

    def _take_idle(self, key: _Key) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.closed or now - conn.idle_since > self._expiry:
                conn.close()
                continue
            return conn
        return None

    def server_busy(self, key: _Key) -> bool:
        """Whether the server holds a live connection of this pool (so it is up)."""
        return any(not c.closed for c in self._live.get(key, ()))

    async def _connect(
        self, key: _Key, timeout: float | None, saturation_deadline: float | None = None
    ) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        ssl_ctx = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = _ssl_context()
            ssl_ctx = self._ssl
        while True:
            try:
                async with asyncio.timeout(timeout):
                    _, conn = await loop.create_connection(
                        _Connection,
                        host,
                        port,
                        ssl=ssl_ctx,
                        server_hostname=host if ssl_ctx else None,
                    )
            except TimeoutError:
                if saturation_deadline is None or not self.server_busy(key):
                    raise httpx.ConnectTimeout(f"connect to {host}:{port} timed out") from None
                if time.monotonic() + (timeout or 0.0) > saturation_deadline:
                    raise Saturated(
                        f"{host}:{port} is up but accepted no new connection in time"
                    ) from None
                self.saturated_retries += 1
                continue
            except (OSError, ssl.SSLError) as exc:
                raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
            self._live.setdefault(key, weakref.WeakSet()).add(conn)
            return conn

    def _release(self, key: _Key, conn: _Connection) -> None:
        """A response is finished with: keep the connection if it is clean, else drop it."""
        if self._slots is not None:
            self._slots.release()
        if conn.complete and conn.keep_alive and not conn.closed and not self._closed:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(key, deque()).append(conn)
        else:
            conn.close()  # unread body (e.g. the client went away): stop the upstream

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
