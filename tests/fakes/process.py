"""A router (or any HTTP server) in a child process, for the tests that need a real one:
a free loopback port, start, wait until it answers, stop (SIGTERM, then kill)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A loopback port nothing listens on (closed again before the caller binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(
    command: Sequence[str],
    url: str,
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path | None,
    ready_path: str = "/v1/models",
    timeout: float = 60.0,
    error: type[Exception] = RuntimeError,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until ``url + ready_path`` answers 200; stop it on exit. Its output
    goes to ``log_path`` (None: discarded), shown in the ``error`` raised when it dies or
    never gets ready."""

    def tail() -> str:
        return log_path.read_text(errors="replace")[-3000:] if log_path else ""

    with open(log_path or os.devnull, "w") as log:
        proc = subprocess.Popen(
            list(command), env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise error(f"{command[0]} exited with {proc.returncode}\n{tail()}")
                try:
                    if httpx.get(url + ready_path, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise error(f"not ready after {timeout:g} s\n{tail()}")
                time.sleep(0.1)
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
