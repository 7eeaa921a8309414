"""A fast fake OpenAI upstream for the proxy benchmarks: HTTP/1.1 on 127.0.0.1 -> canned
chat completions (JSON, or SSE with numbered chunks so a client can check their order).

The wire format comes from ``tests/fakes/llm.py`` (the same bodies the test fakes send);
this server only replaces the scriptable uvicorn/h11 fake with a bare asyncio protocol
(uvloop when installed), so the upstream is never what limits a throughput measurement.

Run: ``python -m benchmarks.upstream --port 0 [--stream-chunks 32 --chunk-delay 0.004]``
(``--answer-delay 5`` makes it a slow model, ``--backlog`` sets the listen backlog);
it prints ``PORT <n>`` once listening and exits when stdin closes (or on SIGTERM)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import orjson

from benchmarks.common import REPO_ROOT

if str(REPO_ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "tests"))

from fakes.llm import openai_completion, openai_stream_chunks

ANSWER = "The quick brown fox jumps over the lazy dog."


def stream_piece(i: int) -> str:
    """Content of stream chunk ``i`` (clients check they arrive as 0, 1, 2, ...)."""
    return f"t{i:05d} "


class _Handler(asyncio.Protocol):
    def __init__(self, server: FakeOpenAI) -> None:
        self.server = server
        self.buf = b""
        self.transport: Any = None
        self.busy = False  # a streamed answer is being written on this connection

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._drain()

    def _drain(self) -> None:
        while not self.busy:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", "0") or 0)
            if len(self.buf) < end + 4 + n:
                return
            body = self.buf[end + 4 : end + 4 + n]
            self.buf = self.buf[end + 4 + n :]
            parts = head[0].split(" ")
            self._respond(parts[0], parts[1] if len(parts) > 1 else "/", body)

    def _write(self, status: str, ctype: str, payload: bytes) -> None:
        self.transport.write(
            f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {len(payload)}\r\n"
            f"connection: keep-alive\r\n\r\n".encode("latin-1")
            + payload
        )

    def _respond(self, method: str, path: str, body: bytes) -> None:
        self.server.requests += 1
        if method == "GET":
            self._write("200 OK", "application/json", b'{"object":"list","data":[]}')
            return
        if method != "POST" or not path.endswith("/chat/completions"):
            self._write("404 Not Found", "application/json", b'{"error":{"message":"no route"}}')
            return
        try:
            req = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            self._write("400 Bad Request", "application/json", b'{"error":{"message":"bad json"}}')
            return
        model = str(req.get("model", "fake"))
        if req.get("stream"):
            self.busy = True
            self.server.tasks.add(task := asyncio.ensure_future(self._stream(model)))
            task.add_done_callback(self.server.tasks.discard)
            return
        answer = orjson.dumps(openai_completion(ANSWER, model))
        if self.server.answer_delay:  # a slow model: the answer comes after a while
            loop = asyncio.get_running_loop()
            loop.call_later(self.server.answer_delay, self._late, answer)
            return
        self._write("200 OK", "application/json", answer)

    def _late(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._write("200 OK", "application/json", answer)

    async def _stream(self, model: str) -> None:
        pieces = [stream_piece(i) for i in range(self.server.stream_chunks)]
        t = self.transport
        t.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
        )
        try:
            for i, event in enumerate(openai_stream_chunks(pieces, model)):
                if i and self.server.chunk_delay:
                    await asyncio.sleep(self.server.chunk_delay)
                if t.is_closing():
                    return
                t.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            t.write(b"0\r\n\r\n")
        finally:
            self.busy = False
        if self.buf:
            self._drain()


class FakeOpenAI:
    def __init__(
        self,
        stream_chunks: int = 32,
        chunk_delay: float = 0.004,
        answer_delay: float = 0.0,
        backlog: int = 1024,
    ) -> None:
        self.stream_chunks = stream_chunks
        self.chunk_delay = chunk_delay
        self.answer_delay = answer_delay
        self.backlog = backlog
        self.requests = 0
        self.tasks: set[asyncio.Future[None]] = set()  # streams being written

    async def serve(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Handler(self), host, port, backlog=self.backlog)
        bound = server.sockets[0].getsockname()[1]
        print(f"PORT {bound}", flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.read(1) else None)
        async with server:
            await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stream-chunks", type=int, default=32)
    parser.add_argument("--chunk-delay", type=float, default=0.004)
    parser.add_argument("--answer-delay", type=float, default=0.0, help="seconds (non-stream)")
    parser.add_argument("--backlog", type=int, default=1024, help="listen backlog")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the fake upstream only listens on loopback")
    fake = FakeOpenAI(args.stream_chunks, args.chunk_delay, args.answer_delay, args.backlog)
    coro = fake.serve(args.host, args.port)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
