"""One configured backend -> OpenAI-shaped answers (whole or streamed) over a pooled client.

``Backend`` owns one ``httpx.AsyncClient`` (keep-alive pool) and the timeouts. Subclasses
only say how to build the upstream request and how to turn the upstream answer into OpenAI
bytes. Failures are ``UpstreamError`` with a ``kind`` the fallback logic acts on; a stream
is returned only once its first event has arrived, so everything before that can fall back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson

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
# What translating an unexpected upstream JSON shape can raise (-> a protocol error).
MALFORMED = (ValueError, KeyError, TypeError, AttributeError, IndexError)


class UpstreamResponse(Protocol):
    """What ``Backend`` reads of an upstream response: an ``httpx.Response`` or, on the
    pooled fast transport, a ``transport.RawResponse``."""

    status_code: int

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class UsageStats:
    """What the router learns from an answer, for the log and the metrics."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    answer_parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None

    @property
    def answer(self) -> str:
        return "".join(self.answer_parts)

    def take_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(p, int):
                self.prompt_tokens = p
            if isinstance(c, int):
                self.completion_tokens = c


@dataclass(slots=True)
class Completion:
    """A whole (non-streaming) answer: status and OpenAI-shaped body bytes."""

    status: int
    body: bytes
    stats: UsageStats
    ttfb_s: float


class UpstreamStream:
    """An open upstream stream whose first OpenAI SSE event already arrived."""

    def __init__(
        self,
        backend: Backend,
        response: UpstreamResponse,
        events: AsyncIterator[bytes],
        first: bytes,
        stats: UsageStats,
        started: float,
        ttfb_s: float,
    ) -> None:
        self.backend = backend
        self._response = response
        self._events = events
        self.first = first
        self.stats = stats
        self.ttfb_s = ttfb_s
        self._deadline = started + backend.config.timeouts.total
        self._closed = False

    async def next_event(self) -> bytes | None:
        """The next SSE event (bytes) or None at the end; ``UpstreamError`` on failure."""
        t = self.backend.config.timeouts
        budget = min(t.idle, self._deadline - time.monotonic())
        if budget <= 0:
            raise UpstreamError("timeout", f"total timeout of {t.total:g}s exceeded mid-stream")
        try:
            async with asyncio.timeout(budget):
                return await anext(self._events, None)
        except TimeoutError:
            what = "idle" if budget == t.idle else "total"
            raise UpstreamError(
                "timeout", f"{self.backend.name}: no data for {budget:.3g}s ({what} timeout)"
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(
                "connect", f"{self.backend.name}: stream broke: {_describe(exc)}"
            ) from None
        except MALFORMED as exc:  # a translator choked on an unexpected event shape
            raise UpstreamError(
                "protocol", f"{self.backend.name}: malformed stream event: {_describe(exc)}"
            ) from None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Shielded: closing must finish even when the request task is being cancelled
        # (client disconnect); it drops the upstream connection so generation stops.
        await asyncio.shield(_close_quietly(self._events, self._response))


async def _close_quietly(events: AsyncIterator[bytes], response: UpstreamResponse) -> None:
    aclose = getattr(events, "aclose", None)
    try:
        if aclose is not None:
            await aclose()
    except Exception:
        pass
    with contextlib.suppress(Exception):
        await response.aclose()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


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

    # -- machinery ---------------------------------------------------------------------
    def build_request(self, body: dict[str, Any], stream: bool) -> httpx.Request:
        return httpx.Request(
            "POST",
            self._chat_url,
            headers=self._headers,
            content=self.request_body(body, stream),
            extensions={"timeout": self._timeout_ext},
        )

    async def _send(self, body: dict[str, Any], stream: bool) -> UpstreamResponse:
        """OpenAI request -> the upstream response, once its head has arrived."""
        t = self.config.timeouts
        try:
            async with asyncio.timeout(min(t.first_byte, t.total)):
                if self._raw is None:
                    return await self.transport.handle_async_request(
                        self.build_request(body, stream)
                    )
                content = self.request_body(body, stream)
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
            raise UpstreamError(kind, f"{self.name}: {_describe(exc)}") from None
        except httpx.HTTPError as exc:
            raise UpstreamError("connect", f"{self.name}: {_describe(exc)}") from None

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

    async def _error_from(self, response: UpstreamResponse) -> UpstreamError:
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
        body = self.redact(self.translate_error(status, self.redact(raw[:MAX_ERROR_BODY])))
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

    async def complete(self, body: dict[str, Any]) -> Completion:
        """Non-streaming call -> ``Completion`` (2xx or a non-retryable client error)."""
        started = time.monotonic()
        response = await self._send(body, stream=False)
        ttfb = time.monotonic() - started
        if response.status_code >= 400:
            err = await self._error_from(response)
            if err.retryable:
                raise err
            return Completion(err.status or 400, err.body or b"", UsageStats(), ttfb)
        try:
            raw = await self._read_body(response, ttfb)
        except httpx.HTTPError as exc:
            raise UpstreamError("connect", f"{self.name}: {_describe(exc)}") from None
        finally:
            await response.aclose()
        stats = UsageStats()
        try:
            out = self.translate_completion(response.status_code, raw, stats)
        except MALFORMED as exc:
            raise UpstreamError("protocol", f"{self.name}: malformed response: {exc}") from None
        return Completion(response.status_code, out, stats, ttfb)

    async def open_stream(self, body: dict[str, Any]) -> UpstreamStream | Completion:
        """Streaming call -> an ``UpstreamStream`` holding its first event, or a
        ``Completion`` carrying a non-retryable client error from the backend."""
        started = time.monotonic()
        response = await self._send(body, stream=True)
        if response.status_code >= 400:
            err = await self._error_from(response)
            if err.retryable:
                raise err
            return Completion(err.status or 400, err.body or b"", UsageStats(), 0.0)
        stats = UsageStats()
        events = self.stream_events(response.aiter_bytes(), body, stats)
        t = self.config.timeouts
        remaining = min(t.first_byte, t.total) - (time.monotonic() - started)
        try:
            async with asyncio.timeout(max(remaining, 0.001)):
                first = await anext(events, None)
        except TimeoutError:
            await _close_quietly(events, response)
            raise UpstreamError(
                "timeout", f"{self.name}: no stream data within {t.first_byte:g}s (first_byte)"
            ) from None
        except UpstreamError:
            await _close_quietly(events, response)
            raise
        except httpx.HTTPError as exc:
            await _close_quietly(events, response)
            raise UpstreamError("connect", f"{self.name}: {_describe(exc)}") from None
        except MALFORMED as exc:
            await _close_quietly(events, response)
            raise UpstreamError(
                "protocol", f"{self.name}: malformed stream event: {_describe(exc)}"
            ) from None
        except BaseException:  # cancelled: do not leak the connection
            await asyncio.shield(_close_quietly(events, response))
            raise
        if first is None:
            await _close_quietly(events, response)
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
            return {"reachable": False, "error": _describe(exc)}
        latency_ms = round((time.monotonic() - started) * 1000, 1)
        ok = response.status_code < 400
        out: dict[str, Any] = {"reachable": True, "ok": ok, "http_status": response.status_code}
        out["latency_ms"] = latency_ms
        return out

    async def aclose(self) -> None:
        await self.client.aclose()
