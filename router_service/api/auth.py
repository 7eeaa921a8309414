"""Request headers + settings -> who is calling: client and admin keys (constant-time
comparison), the key's id for the decision log, and who may see operational detail.

``ROUTER_API_KEYS`` guards ``/v1/*`` (none set: open); ``ROUTER_ADMIN_KEY`` guards metrics
and the admin endpoints (``Authorization: Bearer`` or ``X-Admin-Key``)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from router_service.errors import ApiError
from router_service.settings import Settings


def bearer_token(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def client_token(headers: Mapping[str, str]) -> str | None:
    """The client's key: ``Authorization: Bearer`` (OpenAI's clients) or ``x-api-key``
    (Anthropic's)."""
    return bearer_token(headers) or headers.get("x-api-key")


def _key_ok(token: str | None, keys: Sequence[str]) -> bool:
    if token is None:
        return False
    encoded = token.encode()
    return any(hmac.compare_digest(encoded, k.encode()) for k in keys)


def check_client_auth(settings: Settings, headers: Mapping[str, str]) -> None:
    """401 unless no client keys are configured or a configured key is presented."""
    if settings.api_keys and not _key_ok(client_token(headers), settings.api_keys):
        raise ApiError(
            401,
            "Missing or invalid API key: send 'Authorization: Bearer <key>' (or "
            "'x-api-key: <key>') with a key configured in ROUTER_API_KEYS.",
            code="invalid_api_key",
        )


def check_admin(settings: Settings, headers: Mapping[str, str]) -> None:
    """401 unless no admin key is set or it is presented (Bearer or X-Admin-Key)."""
    if settings.admin_key is not None and not is_admin(settings, headers):
        raise ApiError(
            401, "This endpoint needs the admin key (ROUTER_ADMIN_KEY).", code="invalid_api_key"
        )


def is_admin(settings: Settings, headers: Mapping[str, str]) -> bool:
    """Whether the admin key is set and presented (Bearer or X-Admin-Key)."""
    if settings.admin_key is None:
        return False
    return _key_ok(headers.get("x-admin-key") or bearer_token(headers), [settings.admin_key])


def client_key_id(settings: Settings, headers: Mapping[str, str]) -> str | None:
    """The presented client key -> a stable, non-reversible id for the log (sha256, 16 hex
    digits), or None when no client keys are configured. Scopes feedback to its key."""
    token = client_token(headers)
    if not settings.api_keys or token is None:
        return None
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def may_see_internals(settings: Settings, headers: Mapping[str, str]) -> bool:
    """Whether the caller may see operational detail (backend hosts, scorer errors): always
    when no keys are configured; else the admin key, or any client key when no admin key
    is set (the same rule as ``check_admin``, plus client authentication)."""
    if not settings.api_keys and settings.admin_key is None:
        return True
    if settings.admin_key is not None:
        return is_admin(settings, headers)
    return _key_ok(bearer_token(headers), settings.api_keys)


def check_internals(settings: Settings, headers: Mapping[str, str]) -> None:
    """401 unless ``may_see_internals``: open when no keys are configured, else the admin
    key (or, when only client keys are set, a client key)."""
    if may_see_internals(settings, headers):
        return
    if settings.admin_key is not None:
        message = (
            "This endpoint needs the admin key (ROUTER_ADMIN_KEY): send "
            "'Authorization: Bearer <key>' or 'X-Admin-Key: <key>'."
        )
    else:
        message = (
            "This endpoint needs a client key (ROUTER_API_KEYS): send "
            "'Authorization: Bearer <key>'."
        )
    raise ApiError(401, message, code="invalid_api_key")
