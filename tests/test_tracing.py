"""OpenTelemetry spans of routed requests, caught by the SDK's in-memory exporter: one
server span per request, the decision, every upstream attempt (a failed one with its
fallback reason) and the log write beneath it, GenAI attributes on the model calls."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from fakes.server import Reply

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for span in exporter.get_finished_spans():
        out.setdefault(span.name, []).append(span)
    return out


def test_a_fallback_request_is_one_trace(fakes, policy, make_router, spans) -> None:
    provider, exporter = spans
    fakes.local.script(Reply.json({"error": {"message": "busy"}}, status=503))
    router = make_router(policy, otel=True, tracer_provider=provider)
    body = {"model": "auto", "messages": MSG}
    r = httpx.post(f"{router.base_url}/chat/completions", json=body)
    assert r.status_code == 200 and r.headers["x-router-tier"] == "local"
    router.stop()
    named = by_name(exporter)
    [root] = named["chat"]
    [route] = named["route"]
    [failed] = named["chat local-model"]
    [served] = named["chat llama-fake"]
    [write] = named["decision_log.write"]
    assert root.kind == SpanKind.SERVER and root.parent is None
    for child in (route, failed, served, write):
        assert child.context.trace_id == root.context.trace_id
        assert child.parent is not None and child.parent.span_id == root.context.span_id
    assert route.attributes["router.tier"] == "local"
    assert 0.0 <= route.attributes["router.strong_win_rate"] <= 1.0
    assert failed.kind == SpanKind.CLIENT and failed.attributes["error.type"] == "http_503"
    assert failed.status.status_code == StatusCode.ERROR
    assert served.attributes["gen_ai.operation.name"] == "chat"
    assert served.attributes["gen_ai.system"] == "ollama"
    assert served.attributes["gen_ai.request.model"] == "llama-fake"
    assert "error.type" not in served.attributes
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["router.backend"] == "local-ollama"
    assert root.attributes["router.fallbacks"] == ("local/local-llamacpp: http_503",)
    assert root.attributes["gen_ai.request.model"] == "auto"
    assert root.end_time >= write.end_time


def test_a_stream_span_ends_after_the_last_event(fakes, policy, make_router, spans) -> None:
    provider, exporter = spans
    router = make_router(policy, otel=True, tracer_provider=provider)
    body = {"model": "primary", "messages": MSG, "stream": True}
    with httpx.stream("POST", f"{router.base_url}/chat/completions", json=body) as r:
        assert b"[DONE]" in b"".join(r.iter_bytes())
    router.stop()
    [root] = by_name(exporter)["chat"]
    assert root.attributes["router.stream"] is True
    assert root.attributes["router.tier"] == "primary"
    assert root.attributes["router.backend"] == "primary-openai"
    [call] = by_name(exporter)["chat primary-model"]
    assert call.end_time <= root.end_time  # the call span is the time to first event


def test_errors_end_the_span_with_their_status(fakes, policy, make_router, spans) -> None:
    provider, exporter = spans
    router = make_router(policy, otel=True, tracer_provider=provider)
    r = httpx.post(f"{router.base_url}/chat/completions", json={"model": "nope", "messages": MSG})
    assert r.status_code == 404
    router.stop()
    [root] = by_name(exporter)["chat"]
    assert root.attributes["http.response.status_code"] == 404
    assert root.status.status_code == StatusCode.ERROR
    assert "route" not in by_name(exporter)  # failed before any decision


def test_off_by_default_records_nothing(fakes, policy, make_router, spans) -> None:
    provider, exporter = spans
    router = make_router(policy, tracer_provider=provider)  # otel not enabled
    httpx.post(f"{router.base_url}/chat/completions", json={"model": "auto", "messages": MSG})
    router.stop()
    assert exporter.get_finished_spans() == ()
