"""``GET /v1/shadow``: how the shadow candidate would have routed the sampled live traffic
(agreement with the champion, tier shares, estimated cost difference), or
``{"enabled": false}`` when no shadow model runs. Client auth like every ``/v1`` route."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from router_service.api.auth import check_client_auth
from router_service.api.state import RouterState
from router_service.shadow import disabled_report

router = APIRouter()


@router.get("/v1/shadow", include_in_schema=False)
async def shadow_report(request: Request) -> Response:
    state: RouterState = request.app.state.router
    check_client_auth(state.settings, request.headers)
    shadow = request.app.state.model_loop.shadow
    body = shadow.report() if shadow is not None else disabled_report()
    body["champion_version"] = state.scorer.version
    return Response(orjson.dumps(body), media_type="application/json")
