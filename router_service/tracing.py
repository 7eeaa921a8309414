"""Routed requests -> OpenTelemetry spans (optional: ``pip install 'learned-router[otel]'``
and ``ROUTER_OTEL=true``; off by default).

One SERVER span per chat request (``chat <requested model>``), with children:

* ``route``: the decision (intent, tier, strong_win_rate, scorer, model version), timed by
  the decision itself;
* one CLIENT span per upstream attempt (``chat <backend model>``), following the GenAI
  semantic conventions (``gen_ai.operation.name``, ``gen_ai.system``,
  ``gen_ai.request.model``, ``server.address``); a failed attempt carries ``error.type`` =
  its fallback reason (``http_503``, ``timeout``, ``saturated`` ...);
* ``decision_log.write``: queueing (or committing, with ``ROUTER_LOG_WAIT``) the row.

The request span ends when the answer has gone out (a stream: after its last event) and
records the tier that served, the fallbacks, token usage and the status. The exporter is
configured by the SDK's standard ``OTEL_*`` variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_SERVICE_NAME``...); with no endpoint set the spans go nowhere unless a test passes
its own exporter. Off, ``NO_TRACING`` is used: every method is an empty call and
opentelemetry is never imported."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

SYSTEMS = {"openai": "openai", "anthropic": "anthropic", "ollama": "ollama"}
_NOTHING = contextlib.nullcontext()


class NoTracing:
    """Tracing switched off: nothing is recorded, nothing is imported."""

    enabled = False

    def start_request(self, name: str, attributes: dict[str, Any]) -> Any:
        return None

    def activate(self, span: Any) -> contextlib.AbstractContextManager[Any]:
        return _NOTHING  # one shared, reusable no-op context: no allocation per request

    def decision(self, decision: Any) -> None:
        pass

    def attempt(self, backend: Any, seconds: float, category: str | None) -> None:
        pass

    def span(self, name: str) -> contextlib.AbstractContextManager[Any]:
        return _NOTHING

    def end_request(self, span: Any, attributes: dict[str, Any], error: str | None) -> None:
        pass


NO_TRACING = NoTracing()


class Tracing(NoTracing):
    """Spans through an OpenTelemetry tracer (``provider``: the SDK's, or a test's)."""

    enabled = True

    def __init__(self, provider: Any = None) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._provider = provider or _default_provider()
        self.tracer = self._provider.get_tracer("learned-router")

    def start_request(self, name: str, attributes: dict[str, Any]) -> Any:
        kind = self._trace.SpanKind.SERVER
        return self.tracer.start_span(name, kind=kind, attributes=_clean(attributes))

    def activate(self, span: Any) -> contextlib.AbstractContextManager[Any]:
        if span is None:
            return _NOTHING
        return self._trace.use_span(span, end_on_exit=False)

    def decision(self, decision: Any) -> None:
        end = time.time_ns()
        start = end - int(decision.decision_us * 1000)
        span = self.tracer.start_span("route", start_time=start)
        span.set_attributes(
            _clean(
                {
                    "router.intent": decision.intent,
                    "router.intent_confidence": decision.intent_confidence,
                    "router.strong_win_rate": decision.strong_win_rate,
                    "router.tier": decision.tier,
                    "router.reason": decision.reason,
                    "router.scorer": decision.scorer,
                    "router.model_version": decision.model_version,
                }
            )
        )
        span.end(end_time=end)

    def attempt(self, backend: Any, seconds: float, category: str | None) -> None:
        """One upstream call that took ``seconds`` (recorded when it is over)."""
        end = time.time_ns()
        span = self.tracer.start_span(
            f"chat {backend.model}",
            kind=self._trace.SpanKind.CLIENT,
            start_time=end - int(seconds * 1e9),
            attributes=_clean(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.system": SYSTEMS.get(backend.kind, backend.kind),
                    "gen_ai.request.model": backend.model,
                    "server.address": _host(backend.config.base_url),
                    "router.backend": backend.name,
                    "router.tier": backend.tier,
                    "error.type": category,
                }
            ),
        )
        if category is not None:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, category))
        span.end(end_time=end)

    def span(self, name: str) -> contextlib.AbstractContextManager[Any]:
        return self.tracer.start_as_current_span(name)

    def end_request(self, span: Any, attributes: dict[str, Any], error: str | None) -> None:
        if span is None:
            return
        span.set_attributes(_clean(attributes))
        if error is not None:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error[:200]))
        span.end()


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry attribute values: no None, sequences as tuples of str."""
    out: dict[str, Any] = {}
    for k, v in attributes.items():
        if v is None:
            continue
        out[k] = tuple(str(x) for x in v) if isinstance(v, list | tuple) else v
    return out


def _host(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0]


def _default_provider() -> Any:
    """The SDK provider with an OTLP/HTTP exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
    the traces-specific variable) is set; the standard variables configure the rest."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", "learned-router")}
    )
    provider = TracerProvider(resource=resource)
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def make_tracing(enabled: bool, provider: Any = None) -> NoTracing:
    """Settings -> ``Tracing`` or ``NO_TRACING``; a clear error when the extra is missing."""
    if not enabled:
        return NO_TRACING
    try:
        return Tracing(provider)
    except ImportError as exc:
        raise RuntimeError(
            f"ROUTER_OTEL=true needs the otel extra ({exc.name} is missing): "
            "pip install 'learned-router[otel]'"
        ) from None
