"""The lean upstream HTTP/1.1 transport against raw asyncio servers (keep-alive reuse,
stale connections, chunked and close-delimited bodies, dropped connections), and the
router's main paths with httpx's own transport instead (``upstream_client="httpx"``)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import httpx
import openai
import pytest

from router_service.backends.transport import FastTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + (await reader.readexactly(length) if length else b"")


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def _ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


def test_keep_alive_reuse_and_request_bytes():
    seen: list[bytes] = []
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                seen.append(await _read_request(reader))
                writer.write(_ok(b'{"n": %d}' % len(seen)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def run() -> list[bytes]:
        server, url = await _serve(handler)
        t = FastTransport()
        out = []
        for _ in range(3):
            req = httpx.Request("POST", url + "/v1/x?q=1", content=b'{"a":1}')
            resp = await t.handle_async_request(req)
            out.append(await resp.aread())
            await resp.aclose()
        await t.aclose()
        server.close()
        return out

    assert asyncio.run(run()) == [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']
    assert connections == 1
    assert seen[0].startswith(b"POST /v1/x?q=1 HTTP/1.1\r\n")
    assert b"content-length: 7\r\n" in seen[0].lower() and seen[0].endswith(b'{"a":1}')


def test_stale_keep_alive_connection_is_retried_once():
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(_ok(b"fresh"))  # keep-alive promised, but the server then goes away
        await writer.drain()
        writer.close()

    async def run() -> list[bytes]:
        server, url = await _serve(handler)
        t = FastTransport()
        out = []
        for _ in range(2):
            resp = await t.handle_async_request(httpx.Request("GET", url))
            out.append(await resp.aread())
            await resp.aclose()
            await asyncio.sleep(0)  # let the close arrive (or not): both paths must work
        await t.aclose()
        server.close()
        return out

    assert asyncio.run(run()) == [b"fresh", b"fresh"]
    assert connections == 2


def test_chunked_and_close_delimited_bodies():
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for part in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async def run() -> tuple[list[bytes], bytes]:
        s1, u1 = await _serve(chunked)
        s2, u2 = await _serve(until_close)
        t = FastTransport()
        r1 = await t.handle_async_request(httpx.Request("GET", u1))
        parts = [p async for p in r1.aiter_raw()]
        await r1.aclose()
        r2 = await t.handle_async_request(httpx.Request("GET", u2))
        body = await r2.aread()
        await t.aclose()
        s1.close()
        s2.close()
        return parts, body

    parts, body = asyncio.run(run())
    assert b"".join(parts) == b"data: 1\n\ndata: 2\n\n"
    assert body == b"all of it"


def test_errors_are_httpx_errors():
    async def dies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()
        writer.close()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    async def run() -> None:
        t = FastTransport()
        s1, u1 = await _serve(dies)
        resp = await t.handle_async_request(httpx.Request("GET", u1))
        with pytest.raises(httpx.ReadError, match="closed the connection"):
            await resp.aread()
        s2, u2 = await _serve(garbage)
        with pytest.raises(httpx.RemoteProtocolError, match="invalid HTTP"):
            await t.handle_async_request(httpx.Request("GET", u2))
        s1.close()
        s2.close()
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        port = dead.getsockname()[1]
        dead.close()
        with pytest.raises(httpx.ConnectError):
            await t.handle_async_request(httpx.Request("GET", f"http://127.0.0.1:{port}"))
        await t.aclose()

    asyncio.run(run())


def test_router_paths_with_the_httpx_transport(fakes, policy, make_router):
    from fakes.server import Reply

    router = make_router(policy, upstream_client="httpx")
    c = openai.OpenAI(base_url=router.base_url, api_key="x", max_retries=0)
    out = c.chat.completions.create(model="strong", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content == "hello from strong"
    stream = c.chat.completions.create(
        model="claude-fake", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices) == (
        "hello from claude"
    )
    fakes.local.script(Reply.json({"error": {"message": "x"}}, status=500))
    raw = c.chat.completions.with_raw_response.create(
        model="local", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-router-fallback"] == "local/local-llamacpp: http_500"
    assert httpx.get(f"{router.url}/health").json()["backends"]["local-ollama"]["reachable"]
