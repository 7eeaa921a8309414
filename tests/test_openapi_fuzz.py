"""schemathesis against the running router, from the document it serves at ``GET /openapi.json``.

Every documented operation is fuzzed with requests generated from the schema, valid ones
(positive) and schema-violating ones (negative); every answer must be no 5xx and declared
in the schema (errors in OpenAI's envelope, 200s with the declared content type). Fake
upstreams on loopback answer the routed requests, so a 5xx can only be the router's fault."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from router_service.api.openapi import openapi_document

OPERATIONS = [
    op.ok() for op in schemathesis.openapi.from_dict(openapi_document()).get_all_operations()
]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


CASES = [  # a GET has little to violate (a path string is any string): positive only
    pytest.param(op, mode, id=f"{op.label} {mode.value}")
    for op in OPERATIONS
    for mode in MODES
    if op.method.upper() == "POST" or mode == schemathesis.GenerationMode.POSITIVE
]


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_every_operation_answers_within_its_schema(
    fakes, policy, make_router, operation: Any, mode: Any
) -> None:
    router = make_router(policy)

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = case.call(base_url=router.url, timeout=30)
        assert response.status_code < 500, (case.body, response.text)
        case.validate_response(response)

    check()


def test_the_document_is_served_and_names_the_client_operations(fakes, policy, make_router):
    router = make_router(policy)
    served = httpx.get(f"{router.url}/openapi.json").json()
    assert served == openapi_document()
    assert set(served["paths"]) == {
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/completions",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/classify",
        "/v1/feedback",
        "/v1/models",
        "/v1/models/{model_id}",
        "/health",
    }
    chat = served["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert chat["4XX"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorEnvelope")
