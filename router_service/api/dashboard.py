"""HTTP glue of the dashboard: ``GET /dashboard`` (+ its script and style sheet) and
``GET /dashboard/data?window=900&limit=2000&recent=50`` -> JSON
(``router_service.dashboard.data.dashboard_data``).

The page is public static HTML (it holds no data) under a strict Content-Security-Policy:
its own script and styles only, no inline code, requests to this origin only. The data
needs what ``/health``'s full view needs (``auth.check_internals``): nothing when no keys
are configured, else the admin key (``Authorization: Bearer`` or ``X-Admin-Key``) or, when
only client keys are set, a client key. Bad query values -> 400, in OpenAI's envelope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from router_service.api.auth import check_internals
from router_service.api.state import RouterState
from router_service.dashboard import static_asset
from router_service.dashboard.data import dashboard_data
from router_service.errors import ApiError

# name -> (default, minimum, maximum); ``window`` in seconds.
PARAMS: dict[str, tuple[int, int, int]] = {
    "window": (900, 60, 7 * 24 * 3600),
    "limit": (2000, 1, 10_000),
    "recent": (50, 1, 200),
}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def parse_params(query: Mapping[str, str]) -> dict[str, int]:
    """Query string -> ``{"window", "limit", "recent"}`` (defaults filled in), or a 400
    naming the first value that is not an integer within its range."""
    out: dict[str, int] = {}
    for name, (default, low, high) in PARAMS.items():
        raw = query.get(name)
        if raw is None or raw == "":
            out[name] = default
            continue
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise ApiError(
                400,
                f"'{name}' must be an integer from {low} to {high}.",
                param=name,
                code="invalid_value",
            )
        out[name] = value
    return out


def _asset(name: str) -> Response:
    found = static_asset(name)
    assert found is not None, name  # the three names below are always shipped
    body, media_type = found
    return Response(body, media_type=media_type, headers=PAGE_HEADERS)


async def page(_: Request) -> Response:
    return _asset("index.html")


async def script(_: Request) -> Response:
    return _asset("dashboard.js")


async def stylesheet(_: Request) -> Response:
    return _asset("dashboard.css")


async def data(request: Request) -> Response:
    state: RouterState = request.app.state.router
    check_internals(state.settings, request.headers)
    params = parse_params(request.query_params)
    body: dict[str, Any] = await dashboard_data(
        state,
        request.app.state.model_loop,
        window_s=params["window"],
        limit=params["limit"],
        recent=params["recent"],
    )
    return Response(
        orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


ROUTES = (
    ("/dashboard", page),
    ("/dashboard/dashboard.js", script),
    ("/dashboard/dashboard.css", stylesheet),
    ("/dashboard/data", data),
)
