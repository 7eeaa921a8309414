"""Schemathesis against the router's own ``/openapi.json``: every schema-valid body of one
operation, with ``model`` set to a routable name, must be answered (200) with a body (JSON
or every SSE event) that matches the published schema."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from router_service.api.openapi import openapi_document

ROUTABLE_MODELS = ("auto", "local", "primary", "strong")


def operation(path: str) -> Any:
    """The published operation at ``path`` (POST)."""
    return next(
        op.ok()
        for op in schemathesis.openapi.from_dict(openapi_document()).get_all_operations()
        if op.ok().path == path
    )


def assert_routable_bodies_answered(router: Any, path: str, max_examples: int) -> None:
    """Fuzz ``path`` on a running router: each positive case, its model a tier or "auto",
    is a 200 matching the schema."""
    op = operation(path)

    @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(op.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE))
    def check(case: Any) -> None:
        case.body["model"] = ROUTABLE_MODELS[len(repr(case.body)) % len(ROUTABLE_MODELS)]
        response = case.call(base_url=router.url, timeout=30)
        assert response.status_code == 200, (case.body, response.text)
        case.validate_response(response)

    check()
