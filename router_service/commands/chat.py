"""``learned-router chat``: an interactive terminal chat through a running router.

    learned-router chat                                    # http://127.0.0.1:8080/v1
    learned-router chat --base-url http://host:9000/v1 --force strong

Answers stream as they arrive; after each one a line shows the tier, model, intent and
strong-win rate the router chose. Commands: ``/route`` (the last routing decision in full,
with its reason), ``/info`` (router health and models), ``/clear`` (forget the
conversation), ``/help``, ``/exit``. In a terminal the prompt has line editing and history
(readline); Ctrl-C stops the answer being streamed (the conversation is kept), Ctrl-D or
``/exit`` quits."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import httpx
import orjson

from router_service.backends.sse import SSEParser

HELP = "commands: /route  /info  /clear  /help  /exit"
HELP_TEXT = """\
  /route   the last routing decision: tier, model, intent, strong-win rate, reason
  /info    router health, scorer and backends
  /clear   forget the conversation
  /help    this list
  /exit    quit (also Ctrl-D); Ctrl-C stops an answer being streamed"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="interactive terminal chat through a running router",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument(
        "--base-url",
        default=os.environ.get("ROUTER_BASE_URL", "http://127.0.0.1:8080/v1"),
        help="the router's OpenAI base URL (default $ROUTER_BASE_URL or 127.0.0.1:8080/v1)",
    )
    parser.add_argument("--model", default="auto", help="auto, local, primary, strong or a name")
    parser.add_argument("--force", choices=("local", "primary", "strong"), help="X-Force-Route")
    parser.add_argument("--api-key", default=os.environ.get("ROUTER_API_KEY", ""))
    parser.add_argument("--system", help="a system prompt for the conversation")
    parser.add_argument("--no-stream", action="store_true", help="wait for whole answers")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.set_defaults(func=run)


@dataclass
class ChatSession:
    """The conversation and the last routing decision; no terminal I/O in here."""

    client: httpx.Client
    model: str = "auto"
    force: str | None = None
    system: str | None = None
    stream: bool = True
    history: list[dict[str, Any]] = field(default_factory=list)
    last_route: dict[str, str] = field(default_factory=dict)

    def messages(self) -> list[dict[str, Any]]:
        prefix = [{"role": "system", "content": self.system}] if self.system else []
        return prefix + self.history

    def ask(self, text: str) -> Iterator[str]:
        """User text -> answer pieces (streamed); records the turn and the route."""
        self.history.append({"role": "user", "content": text})
        body = {"model": self.model, "messages": self.messages(), "stream": self.stream}
        headers = {"X-Force-Route": self.force} if self.force else {}
        parts: list[str] = []
        try:
            with self.client.stream("POST", "chat/completions", json=body, headers=headers) as resp:
                self.last_route = {
                    k.lower(): v
                    for k, v in resp.headers.items()
                    if k.lower().startswith("x-router-")
                }
                if resp.status_code >= 400:
                    resp.read()
                    raise ChatError(_error_message(resp))
                for piece in self._pieces(resp):
                    parts.append(piece)
                    yield piece
        except BaseException:
            self.history.pop()
            raise
        self.history.append({"role": "assistant", "content": "".join(parts)})

    def _pieces(self, resp: httpx.Response) -> Iterator[str]:
        if not self.stream:
            data = orjson.loads(resp.read())
            yield data["choices"][0]["message"].get("content") or ""
            return
        parser = SSEParser()
        for chunk in resp.iter_bytes():
            for ev in parser.feed(chunk):
                if ev.data is None or ev.data == "[DONE]":
                    continue
                data = orjson.loads(ev.data)
                if "error" in data:
                    raise ChatError(str(data["error"].get("message", data["error"])))
                for choice in data.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        yield content

    def route_line(self) -> str:
        r = self.last_route
        if not r:
            return "no request yet"
        line = (
            f"[{r.get('x-router-tier', '?')} · {r.get('x-router-model', '?')} · "
            f"{r.get('x-router-intent', '?')} {r.get('x-router-confidence', '')} · "
            f"strong-win {r.get('x-router-strong-win-rate', '?')}]"
        )
        if "x-router-fallback" in r:
            line += f" fallback: {r['x-router-fallback']}"
        return line

    def route_details(self) -> str:
        if not self.last_route:
            return "no request yet"
        return "\n".join(f"  {k[9:]}: {v}" for k, v in sorted(self.last_route.items()))

    def info(self) -> str:
        root = str(self.client.base_url).rstrip("/").removesuffix("/v1")
        health = self.client.get(f"{root}/health").json()
        lines = [f"router {root}: {health.get('status')}  scorer: {health['scorer']['name']}"]
        for name, b in health.get("backends", {}).items():
            if not b.get("enabled"):
                state = f"disabled ({b.get('reason')})"
            else:
                state = "reachable" if b.get("reachable") else f"unreachable ({b.get('error')})"
                state += f", circuit {b.get('circuit')}"
            lines.append(f"  {b['tier']:<8} {name:<20} {b.get('model', ''):<24} {state}")
        return "\n".join(lines)


class ChatError(Exception):
    pass


def _error_message(resp: httpx.Response) -> str:
    try:
        return f"HTTP {resp.status_code}: {resp.json()['error']['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {resp.status_code}: {resp.text[:300]}"


def read_line(stdin: IO[str], out: IO[str], interactive: bool) -> str | None:
    """The next line (None at end of input). In a terminal: ``input`` with readline's line
    editing and history; Ctrl-C at the prompt gives a fresh prompt, not an exit."""
    if not interactive:
        line = stdin.readline()
        return line or None
    while True:
        try:
            return input("\nyou> ")
        except KeyboardInterrupt:
            out.write("\n(Ctrl-D or /exit to quit)")
        except EOFError:
            out.write("\n")
            return None


def repl(session: ChatSession, stdin: IO[str], out: IO[str], interactive: bool) -> int:
    """Read lines, answer them, handle commands; -> exit status."""
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (importing it gives input() line editing)
    out.write(f"learned-router chat ({session.client.base_url}); {HELP}\n")
    while True:
        line = read_line(stdin, out, interactive)
        if line is None:
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command = text.split()[0].lower()
            if command in ("/exit", "/quit"):
                return 0
            if command == "/route":
                out.write(session.route_details() + "\n")
            elif command == "/help":
                out.write(HELP_TEXT + "\n")
            elif command == "/clear":
                session.history.clear()
                out.write("conversation cleared\n")
            elif command == "/info":
                try:
                    out.write(session.info() + "\n")
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    out.write(f"error: cannot reach the router: {exc}\n")
            else:
                out.write(f"unknown command {command}; {HELP}\n")
            continue
        out.write("assistant> ")
        try:
            for piece in session.ask(text):
                out.write(piece)
                out.flush()
            out.write("\n" + session.route_line() + "\n")
        except KeyboardInterrupt:  # stop this answer, keep the session (and the history)
            out.write("\n[interrupted]\n")
        except ChatError as exc:
            out.write(f"\nerror: {exc}\n")
        except httpx.HTTPError as exc:
            out.write(f"\nerror: cannot reach the router at {session.client.base_url}: {exc}\n")
        out.flush()


def run(args: argparse.Namespace) -> int:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    base = args.base_url.rstrip("/") + "/"
    with httpx.Client(base_url=base, headers=headers, timeout=args.timeout) as client:
        session = ChatSession(
            client, args.model, args.force, args.system, stream=not args.no_stream
        )
        try:
            return repl(session, sys.stdin, sys.stdout, sys.stdin.isatty())
        except KeyboardInterrupt:
            sys.stdout.write("\n")
            return 130
