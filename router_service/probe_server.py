"""Router state -> a health listener on its own thread and port (``ROUTER_PROBE_PORT``).

``GET /health`` on the main port runs on the event loop, behind whatever request work is
queued there: when hundreds of slow answers complete at once, a liveness probe waits for
all of them (~0.6 ms of router CPU each) and a kubelet with a 1 s timeout may restart a
healthy router. This listener answers the same status from a plain thread: it reads the
backend probes the loop has cached (``api.info.cached_backends``) and the scorer and
backend flags, never awaits the loop, and asks the loop (thread-safely) for a re-probe
when the cache is stale. It only ever says ``{"status": "ok" | "degraded"}`` (what callers
without a key see on the main port), with 200 while the process serves, so it can listen
on the pod IP without exposing internals.

The thread shares the GIL with the loop; CPython hands it over at least every 5 ms
(``sys.getswitchinterval``), so an answer takes a few switch intervals however busy the
loop is (``tests/test_load_saturation.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from router_service.api.info import degraded_reasons, start_refresh, tier_reachability
from router_service.api.state import RouterState

logger = logging.getLogger(__name__)

PATHS = ("/health", "/healthz", "/livez", "/readyz")


def probe_status(state: RouterState) -> str:
    """The status ``/health`` reports, from cached probes only (no I/O, no awaiting)."""
    backends = state.health.result
    any_up = True if backends is None else any(tier_reachability(backends).values())
    return "degraded" if degraded_reasons(state, any_up) else "ok"


class ProbeServer:
    """``start()`` binds ``host:port`` (0 = any free port) and serves from a daemon thread;
    ``stop()`` shuts it down. ``loop``: the event loop that owns ``state``."""

    def __init__(
        self, state: RouterState, loop: asyncio.AbstractEventLoop, host: str, port: int
    ) -> None:
        self.state, self.loop = state, loop
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="router-probe", daemon=True
        )
        self._thread.start()
        logger.info("health probe listener on port %d", self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def status(self) -> str:
        self._refresh_if_stale()
        return probe_status(self.state)

    def _refresh_if_stale(self) -> None:
        cache, max_age = self.state.health, self.state.settings.health_cache_seconds
        if cache.result is not None and time.monotonic() - cache.checked_at <= max(max_age, 1.0):
            return
        with contextlib.suppress(RuntimeError):  # a closing loop: nothing to refresh
            self.loop.call_soon_threadsafe(start_refresh, self.state)  # runs on the loop


def _handler(server: ProbeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] not in PATHS:
                self._send(404, _error(f"no route {self.path!r}; this port serves /health"))
                return
            try:
                self._send(200, {"status": server.status()})
            except Exception:  # a probe must answer, never kill the thread
                logger.exception("health probe failed")
                self._send(200, {"status": "degraded"})

        def do_HEAD(self) -> None:
            self.do_GET()

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds: not worth a log line each

    return Handler


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "not_found", "param": None, "code": None}}
