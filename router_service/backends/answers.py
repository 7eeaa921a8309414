"""What a backend call hands back: ``Completion`` (a whole answer's status and OpenAI-shaped
bytes), ``UpstreamStream`` (an open stream whose first event has arrived, read one event
at a time within the idle and total timeouts) and the ``UsageStats`` both fill for the log
and the metrics; ``MALFORMED`` is what translating an unexpected upstream shape raises."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from router_service.backends.errors import UpstreamError

if TYPE_CHECKING:
    from router_service.backends.base import Backend

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
                "connect", f"{self.backend.name}: stream broke: {describe(exc)}"
            ) from None
        except MALFORMED as exc:  # a translator choked on an unexpected event shape
            raise UpstreamError(
                "protocol", f"{self.backend.name}: malformed stream event: {describe(exc)}"
            ) from None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Shielded: closing must finish even when the request task is being cancelled
        # (client disconnect); it drops the upstream connection so generation stops.
        await asyncio.shield(close_quietly(self._events, self._response))


async def close_quietly(events: AsyncIterator[bytes], response: UpstreamResponse) -> None:
    aclose = getattr(events, "aclose", None)
    try:
        if aclose is not None:
            await aclose()
    except Exception:
        pass
    with contextlib.suppress(Exception):
        await response.aclose()


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
