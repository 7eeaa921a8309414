"""One configured backend -> OpenAI-shaped answers (whole or streamed) over a pooled client.

``Backend`` owns one ``httpx.AsyncClient`` (keep-alive pool) and the timeouts. Subclasses
only say how to build the upstream request and how to turn the upstream answer into OpenAI
bytes (``answers``: what a call hands back); one that speaks a client's own API (Anthropic's
Messages) also takes that API's requests untranslated (the ``native_*`` hooks). Failures
are ``UpstreamError`` with a ``kind`` the fallback logic acts on; a stream is returned only
once its first event has arrived, so everything before that can fall back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from router_service.backends.answers import (
    MALFORMED,
    Completion,
    UpstreamResponse,
    UpstreamStream,
    UsageStats,
    close_quietly,
    describe,
)
from router_service.backends.errors import (
    AUTH_STATUSES,
    REDACTED,
    ErrorKind,
    UpstreamError,
    header_value,
    retry_after_seconds,
)
from router_service.backends.transport import (
    FastTransport,
    RawResponse,
    Saturated,
    pool_key,
    request_head,
)
from router_service.policy import ResolvedBackend

MAX_ERROR_BODY = 64 * 1024


class Backend:
    """Base class: subclasses implement the four translation hooks."""

    kind: str = "base"
    chat_path: str = ""

    def __init__(
        self, resolved: ResolvedBackend, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.resolved = resolved
        self.config = resolved.config
        self.name = resolved.name
        self.tier = resolved.tier
        self.model = resolved.config.model
        t = self.config.timeouts
        limits = httpx.Limits(
            max_connections=self.config.max_connections,
            max_keepalive_connections=self.config.max_connections,
            keepalive_expiry=30.0,
        )
        # The hot path talks to the pooled transport directly (no per-request URL merging,
        # cookie jar, auth or redirect machinery); the client (same pool) serves probes.
        self.transport = transport or httpx.AsyncHTTPTransport(limits=limits, retries=0)
        self.client = httpx.AsyncClient(
            base_url=self.config.base_url,
            timeout=httpx.Timeout(t.connect, read=t.first_byte),
            headers=self.auth_headers(),
            transport=self.transport,
        )
        self._chat_url = httpx.URL(self.config.base_url + self.chat_path)
        self._headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream, application/x-ndjson",
            "user-agent": "learned-router",
            **{k.lower(): v for k, v in self.auth_headers().items()},
        }
        read = max(t.first_byte, t.idle)
        self._timeout_ext = {
            "connect": t.connect,
            "read": read,
            "write": t.connect,
            "pool": t.connect,
        }
        # On the fast transport the request head is serialised once, here.
        self._raw = self.transport if isinstance(self.transport, FastTransport) else None
        self._raw_key = pool_key(self._chat_url)
        self._raw_head = request_head("POST", self._chat_url, self._headers)
        self._secrets = self.secrets()

    # -- hooks -------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        """Configured headers plus ``Authorization: Bearer <key>`` when a key is set."""
        headers = dict(self.config.headers)
        if self.resolved.api_key:
            headers["Authorization"] = f"Bearer {self.resolved.api_key}"
        return headers

    @staticmethod
    def completion_bytes(completion: dict[str, Any], stats: UsageStats) -> bytes:
        """A translated OpenAI ``chat.completion`` -> its bytes, recording usage and answer."""
        choice = completion["choices"][0]
        stats.take_usage(completion["usage"])
        stats.answer_parts.append(choice["message"]["content"] or "")
        stats.finish_reason = choice["finish_reason"]
        return orjson.dumps(completion)

    def request_body(self, body: dict[str, Any], stream: bool) -> bytes:
        """OpenAI chat request -> the upstream's request body bytes."""
        raise NotImplementedError

    def translate_completion(self, status: int, raw: bytes, stats: UsageStats) -> bytes:
        """2xx upstream body -> OpenAI ``chat.completion`` bytes (fill ``stats``)."""
        raise NotImplementedError

    def translate_error(self, status: int, raw: bytes) -> bytes:
        """Non-2xx upstream body -> OpenAI error envelope bytes."""
        raise NotImplementedError

    def stream_events(
        self, chunks: AsyncIterator[bytes], body: dict[str, Any], stats: UsageStats
    ) -> AsyncIterator[bytes]:
        """Upstream body chunks -> OpenAI SSE events (each a complete ``data: ...\\n\\n``)."""
        raise NotImplementedError

    def probe_path(self) -> str:
        raise NotImplementedError

    # -- native pass-through: a client API this backend speaks itself (Anthropic's
    # Messages on an Anthropic backend) is forwarded and answered untranslated ----------
    def speaks(self, api: str) -> bool:
        """Does this backend take the client API ``api``'s requests as they are?"""
        return False

    def native_body(self, body: dict[str, Any], stream: bool) -> bytes:
        """The client's own request body -> the upstream's (this backend's model)."""
        raise NotImplementedError

    def read_native(self, raw: bytes, stats: UsageStats) -> bytes:
        """A 2xx native answer -> the bytes to relay, filling ``stats`` from them."""
        raise NotImplementedError

    def native_error(self, status: int, raw: bytes) -> bytes:
        """A non-2xx native answer -> the client API's own error body."""
        raise NotImplementedError

    def native_events(
        self, chunks: AsyncIterator[bytes], stats: UsageStats
    ) -> AsyncIterator[bytes]:
        """Upstream body chunks -> the client API's own events, untouched."""
        raise NotImplementedError

    def _content(self, body: dict[str, Any], native: dict[str, Any] | None, stream: bool) -> bytes:
        if native is not None:
            return self.native_body(native, stream)
        return self.request_body(body, stream)

    # -- machinery ---------------------------------------------------------------------
    def build_request(self, content: bytes) -> httpx.Request:
        return httpx.Request(
            "POST",
            self._chat_url,
            headers=self._headers,
            content=content,
            extensions={"timeout": self._timeout_ext},
        )

    async def _send(self, content: bytes) -> UpstreamResponse:
        """Request body bytes -> the upstream response, once its head has arrived."""
        t = self.config.timeouts
        try:
            async with asyncio.timeout(min(t.first_byte, t.total)):
                if self._raw is None:
                    return await self.transport.handle_async_request(self.build_request(content))
                payload = b"%s%d\r\n\r\n%s" % (self._raw_head, len(content), content)
                # A busy server (SYNs dropped) is waited for, not failed over, until a
                # connect attempt could no longer finish before the first-byte deadline.
                deadline = time.monotonic() + min(t.first_byte, t.total)
                return await self._raw.send_raw(self._raw_key, payload, t.connect, deadline)
        except Saturated as exc:
            raise UpstreamError("saturated", f"{self.name}: at capacity ({exc})") from None
        except TimeoutError:
            raise UpstreamError(
                "timeout", f"{self.name}: no response within {t.first_byte:g}s (first_byte)"
            ) from None
        except httpx.TimeoutException as exc:
            kind: ErrorKind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "timeout"
            raise UpstreamError(kind, f"{self.name}: {describe(exc)}") from None
        except httpx.HTTPError as exc:
            raise UpstreamError("connect", f"{self.name}: {describe(exc)}") from None

    def secrets(self) -> list[bytes]:
        """The credentials this backend sends (API key, configured header values), longest
        first: they are cut out of every upstream text the router relays or logs."""
        values = {v for v in self.auth_headers().values() if len(v) >= 8}
        if self.resolved.api_key:
            values.add(self.resolved.api_key)
        return sorted((v.encode() for v in values), key=len, reverse=True)

    def redact(self, raw: bytes) -> bytes:
        for secret in self._secrets:
            if secret in raw:
                raw = raw.replace(secret, REDACTED)
        return raw

    async def _error_from(self, response: UpstreamResponse, native: bool) -> UpstreamError:
        status = response.status_code
        retry_after = retry_after_seconds(header_value(response, "retry-after"))
        try:
            async with asyncio.timeout(self.config.timeouts.idle):
                raw = b""
                async for part in response.aiter_bytes():
                    raw += part
                    if len(raw) > MAX_ERROR_BODY:
                        break
        except (TimeoutError, httpx.HTTPError):
            raw = b""
        finally:
            await response.aclose()
        retryable = status == 429 or status >= 500 or status in AUTH_STATUSES
        translate = self.native_error if native else self.translate_error
        body = self.redact(translate(status, self.redact(raw[:MAX_ERROR_BODY])))
        why = " (the router's credentials were refused)" if status in AUTH_STATUSES else ""
        return UpstreamError(
            "status",
            f"{self.name}: HTTP {status}{why}",
            status=status,
            body=body,
            retryable=retryable,
            retry_after=retry_after,
        )

    async def _read_body(self, response: UpstreamResponse, ttfb: float) -> bytes:
        """The rest of a non-streaming body: each chunk within ``idle`` of the previous one,
        the whole within ``total`` (a body that stalls after its head fails over fast)."""
        if isinstance(response, RawResponse):
            buffered = response.buffered_body()
            if buffered is not None:
                return buffered
        t = self.config.timeouts
        deadline = time.monotonic() + max(t.total - ttfb, 0.001)
        parts: list[bytes] = []
        chunks = response.aiter_bytes()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise UpstreamError("timeout", f"{self.name}: body not complete within total")
            try:
                async with asyncio.timeout(min(t.idle, left)):
                    part = await anext(chunks, None)
            except TimeoutError:
                which = "idle" if t.idle < left else "total"
                raise UpstreamError(
                    "timeout", f"{self.name}: body stalled for {min(t.idle, left):g}s ({which})"
                ) from None
            if part is None:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            parts.append(part)

    async def complete(
        self, body: dict[str, Any], native: dict[str, Any] | None = None
    ) -> Completion:
        """Non-streaming call -> ``Completion`` (2xx or a non-retryable client error).
        ``native``: the client's own body, sent and answered untranslated instead."""
        started = time.monotonic()
        response = await self._send(self._content(body, native, False))
        ttfb = time.monotonic() - started
        if response.status_code >= 400:
            err = await self._error_from(response, native is not None)
            if err.retryable:
                raise err
            return Completion(err.status or 400, err.body or b"", UsageStats(), ttfb)
        try:
            raw = await self._read_body(response, ttfb)
        except httpx.HTTPError as exc:
            raise UpstreamError("connect", f"{self.name}: {describe(exc)}") from None
        finally:
            await response.aclose()
        stats = UsageStats()
        try:
            if native is not None:
                out = self.read_native(raw, stats)
            else:
                out = self.translate_completion(response.status_code, raw, stats)
        except MALFORMED as exc:
            raise UpstreamError("protocol", f"{self.name}: malformed response: {exc}") from None
        return Completion(response.status_code, out, stats, ttfb)

    async def open_stream(
        self, body: dict[str, Any], native: dict[str, Any] | None = None
    ) -> UpstreamStream | Completion:
        """Streaming call -> an ``UpstreamStream`` holding its first event, or a
        ``Completion`` carrying a non-retryable client error from the backend.
        ``native``: the client's own body; the stream then carries its own events."""
        started = time.monotonic()
        response = await self._send(self._content(body, native, True))
        if response.status_code >= 400:
            err = await self._error_from(response, native is not None)
            if err.retryable:
                raise err
            return Completion(err.status or 400, err.body or b"", UsageStats(), 0.0)
        stats = UsageStats()
        if native is not None:
            events = self.native_events(response.aiter_bytes(), stats)
        else:
            events = self.stream_events(response.aiter_bytes(), body, stats)
        t = self.config.timeouts
        remaining = min(t.first_byte, t.total) - (time.monotonic() - started)
        try:
            async with asyncio.timeout(max(remaining, 0.001)):
                first = await anext(events, None)
        except TimeoutError:
            await close_quietly(events, response)
            raise UpstreamError(
                "timeout", f"{self.name}: no stream data within {t.first_byte:g}s (first_byte)"
            ) from None
        except UpstreamError:
            await close_quietly(events, response)
            raise
        except httpx.HTTPError as exc:
            await close_quietly(events, response)
            raise UpstreamError("connect", f"{self.name}: {describe(exc)}") from None
        except MALFORMED as exc:
            await close_quietly(events, response)
            raise UpstreamError(
                "protocol", f"{self.name}: malformed stream event: {describe(exc)}"
            ) from None
        except BaseException:  # cancelled: do not leak the connection
            await asyncio.shield(close_quietly(events, response))
            raise
        if first is None:
            await close_quietly(events, response)
            raise UpstreamError("protocol", f"{self.name}: stream ended before any event")
        ttfb = time.monotonic() - started
        return UpstreamStream(self, response, events, first, stats, started, ttfb)

    async def probe(self, timeout: float) -> dict[str, Any]:
        """Reachability: any HTTP answer on the probe path within ``timeout``."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                response = await self.client.get(self.probe_path(), timeout=timeout)
        except TimeoutError:
            return {"reachable": False, "error": f"no answer within {timeout:g}s"}
        except (httpx.HTTPError, OSError) as exc:
            return {"reachable": False, "error": describe(exc)}
        latency_ms = round((time.monotonic() - started) * 1000, 1)
        ok = response.status_code < 400
        out: dict[str, Any] = {"reachable": True, "ok": ok, "http_status": response.status_code}
        out["latency_ms"] = latency_ms
        return out

    async def aclose(self) -> None:
        await self.client.aclose()
