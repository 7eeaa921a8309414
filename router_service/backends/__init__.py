"""Backends: a resolved policy backend -> an object that talks to that server.

``build_backend`` picks the class for the backend's ``type`` (openai, ollama, anthropic)."""

from __future__ import annotations

import httpx

from router_service.backends.answers import Completion, UpstreamStream, UsageStats
from router_service.backends.anthropic import AnthropicBackend
from router_service.backends.base import Backend
from router_service.backends.errors import UpstreamError
from router_service.backends.ollama import OllamaBackend
from router_service.backends.openai import OpenAIBackend
from router_service.policy import ResolvedBackend

BACKEND_CLASSES: dict[str, type[Backend]] = {
    "openai": OpenAIBackend,
    "ollama": OllamaBackend,
    "anthropic": AnthropicBackend,
}


def build_backend(
    resolved: ResolvedBackend, transport: httpx.AsyncBaseTransport | None = None
) -> Backend:
    return BACKEND_CLASSES[resolved.config.type](resolved, transport)


__all__ = [
    "BACKEND_CLASSES",
    "Backend",
    "Completion",
    "UpstreamError",
    "UpstreamStream",
    "UsageStats",
    "build_backend",
]
