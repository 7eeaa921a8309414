"""Upstream failures -> ``UpstreamError`` (kind, status, body, retryable, Retry-After), the
header helpers it needs and ``json_object`` (an event payload or a protocol error). The
fallback logic (``router_service.upstream``) acts on these."""

from __future__ import annotations

import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import orjson

ErrorKind = Literal["connect", "timeout", "status", "protocol", "saturated"]


# Upstream 401/403: the router's own credentials (clients' keys are never forwarded) were
# refused, so the backend is misconfigured; another backend may still answer.
AUTH_STATUSES = frozenset({401, 403})
REDACTED = b"[REDACTED]"


class UpstreamError(Exception):
    """A backend failed. ``retryable``: another backend may be tried (nothing was sent
    to the client yet). ``retry_after``: seconds from the upstream's ``Retry-After``."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        body: bytes | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.body = body
        self.retryable = retryable
        self.retry_after = retry_after


def json_object(data: str | bytes, name: str, what: str) -> dict[str, Any]:
    """One upstream event's JSON payload -> the object; anything else is a ``protocol``
    error naming the backend and ``what`` it was ("SSE event", "NDJSON line")."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            "protocol", f"{name}: malformed {what} (not JSON): {data[:120]!r}"
        ) from None
    if not isinstance(obj, dict):
        raise UpstreamError("protocol", f"{name}: malformed {what}: {data[:120]!r}")
    return obj


def header_value(response: Any, name: str) -> str | None:
    """A response header (case-insensitive) of an ``httpx.Response`` or a ``RawResponse``."""
    raw = getattr(response, "raw_headers", None)
    if raw is not None:
        key = name.lower().encode()
        for k, v in raw:
            if bytes(k).lower() == key:
                return bytes(v).decode("latin-1")
        return None
    headers = getattr(response, "headers", None)
    return headers.get(name) if headers is not None else None


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` value (delta-seconds or an HTTP date) -> seconds, or None."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
    return max(seconds, 0.0) if seconds == seconds else None  # NaN -> None
