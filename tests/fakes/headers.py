"""The ``X-Router-*`` headers every routed answer carries, whatever API it came in on."""

from __future__ import annotations

ROUTER_HEADERS = (
    "x-router-tier",
    "x-router-model",
    "x-router-intent",
    "x-router-confidence",
    "x-router-decision-us",
    "x-router-scorer",
    "x-router-request-id",
    "x-router-model-version",
    "x-router-strong-win-rate",
    "x-router-reason",
)
