"""A minimal HTTP/1.1 keep-alive client on asyncio streams -> per-request latencies.

The load generator of ``bench_proxy``: one ``Connection`` per concurrent client sends
pre-encoded POST requests and reads each response completely (``content-length`` or
``chunked``), so per-request client overhead is a few microseconds and the measured time
is the server's. Only loopback addresses are accepted. Every loop is bounded by a request
count and a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def encode_request(host: str, port: int, path: str, payload: dict, extra: str = "") -> bytes:
    body = orjson.dumps(payload)
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: keep-alive\r\n{extra}\r\n"
    )
    return head.encode("latin-1") + body


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    def __init__(self, host: str, port: int) -> None:
        if host not in LOOPBACK:
            raise ValueError(f"load is only sent to loopback addresses, not {host!r}")
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()

    async def send(self, raw: bytes) -> Response:
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            body = b"".join(parts)
        else:
            body = await self.reader.read()
        return Response(status, headers, body)


@dataclass
class LoadResult:
    sent: int = 0
    completed: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    latencies_us: list[float] = field(default_factory=list)
    first_error: str | None = None

    @property
    def rps(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0


Check = Callable[[Response], bool]


async def closed_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    concurrency: int,
    total: int,
    deadline_s: float,
    check: Check,
) -> LoadResult:
    """``concurrency`` clients each send the next request as soon as their previous answer
    is read, until ``total`` requests are done or ``deadline_s`` passes."""
    result = LoadResult()
    conns = [await Connection(host, port).open() for _ in range(concurrency)]
    counter = iter(range(total))
    start = time.perf_counter()
    stop_at = start + deadline_s

    async def client(conn: Connection) -> None:
        for i in counter:
            if time.perf_counter() > stop_at:
                return
            result.sent += 1
            t0 = time.perf_counter_ns()
            try:
                resp = await conn.send(requests[i % len(requests)])
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                result.errors += 1
                result.first_error = result.first_error or repr(exc)
                await conn.close()
                await conn.open()
                continue
            result.latencies_us.append((time.perf_counter_ns() - t0) / 1000.0)
            if check(resp):
                result.completed += 1
            else:
                result.errors += 1
                result.first_error = result.first_error or f"{resp.status}: {resp.body[:200]!r}"

    try:
        await asyncio.wait_for(asyncio.gather(*(client(c) for c in conns)), timeout=deadline_s + 30)
    finally:
        result.elapsed_s = time.perf_counter() - start
        for c in conns:
            await c.close()
    return result


# port, the encoded request for a prompt, the check its answer must pass
Target = tuple[int, Callable[[str], bytes], Check]


async def rotating_rounds(
    host: str,
    targets: dict[str, Target],
    prompts: Sequence[str],
    pairs: int,
    rounds: int,
    warmup: int,
) -> tuple[dict[str, list[list[float]]], dict[str, int]]:
    """One request at a time to every target with the same prompt, the order rotating from
    one prompt to the next -> ({target: per-round latencies in µs}, {target: failed checks}).
    One keep-alive connection per target; ``warmup`` prompts first, not timed."""
    names = list(targets)
    conns = {n: await Connection(host, port).open() for n, (port, _, _) in targets.items()}
    samples: dict[str, list[list[float]]] = {n: [] for n in names}
    errors = dict.fromkeys(names, 0)
    try:
        for i in range(warmup):
            for n in names:
                await conns[n].send(targets[n][1](prompts[i % len(prompts)]))
        for r in range(rounds):
            got: dict[str, list[float]] = {n: [] for n in names}
            for i in range(pairs):
                prompt = prompts[(r * pairs + i) % len(prompts)]
                for n in names[i % len(names) :] + names[: i % len(names)]:
                    _, make, check = targets[n]
                    raw = make(prompt)
                    t0 = time.perf_counter_ns()
                    resp = await conns[n].send(raw)
                    got[n].append((time.perf_counter_ns() - t0) / 1000.0)
                    errors[n] += not check(resp)
            for n in names:
                samples[n].append(got[n])
    finally:
        for c in conns.values():
            await c.close()
    return samples, errors
