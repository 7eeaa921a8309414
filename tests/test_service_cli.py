"""``learned-router serve`` and ``learned-router chat``: the real server process on a
loopback port, and the chat REPL against a served router."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import yaml

from router_service.cli import main
from router_service.commands.chat import ChatSession, repl


def session_for(router, **kw) -> ChatSession:
    return ChatSession(httpx.Client(base_url=router.base_url + "/", timeout=30), **kw)


def test_chat_repl_streams_and_shows_the_route(fakes, policy, make_router):
    router = make_router(policy)
    session = session_for(router, force="primary")
    out = io.StringIO()
    stdin = io.StringIO("hello there\n/route\n/info\n/bogus\n/clear\nand again\n/exit\n")
    assert repl(session, stdin, out, interactive=False) == 0
    text = out.getvalue()
    assert "assistant> hello from primary\n[primary · primary-model · " in text
    assert "  tier: primary" in text and "  request-id: " in text
    assert "local-llamacpp" in text and "reachable" in text
    assert "unknown command /bogus" in text
    assert "conversation cleared" in text
    # /clear forgot the first exchange: the second request carries one user message
    assert [m["role"] for m in fakes.primary.calls[-1].json()["messages"]] == ["user"]
    assert fakes.primary.calls[-1].json()["stream"] is True


class InterruptOnce(io.StringIO):
    """A terminal whose user presses Ctrl-C while the first answer streams in."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = True

    def write(self, text: str) -> int:
        if self.armed and "hello" in text:
            self.armed = False
            raise KeyboardInterrupt
        return super().write(text)


def test_chat_help_route_reason_and_ctrl_c_keeps_the_session(fakes, policy, make_router):
    router = make_router(policy)
    session = session_for(router, force="primary")
    out = InterruptOnce()
    stdin = io.StringIO("first question\n/help\nsecond question\n/route\n/exit\n")
    assert repl(session, stdin, out, interactive=False) == 0
    text = out.getvalue()
    assert "[interrupted]" in text  # the first answer was cut, the session went on
    assert "/route   the last routing decision" in text
    assert "assistant> hello from primary\n[primary · primary-model · " in text
    assert "· strong-win " in text
    assert "  strong-win-rate: " in text and "  reason: " in text
    # the interrupted turn is not in the history; the answered one is
    assert [m["content"] for m in session.history] == ["second question", "hello from primary"]


def test_chat_keeps_history_and_reports_errors(fakes, policy, make_router):
    router = make_router(policy, env={})
    session = session_for(router, model="local", system="be brief", stream=False)
    assert "".join(session.ask("one")) == "hello from local"
    assert "".join(session.ask("two")) == "hello from local"
    roles = [m["role"] for m in fakes.local.calls[-1].json()["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    session.model = "strong"  # disabled: no key
    out = io.StringIO()
    repl(session, io.StringIO("three\n"), out, interactive=False)
    assert "error: HTTP 503" in out.getvalue()
    assert len(session.history) == 4, "a failed turn is not kept"


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_serve_runs_the_router_process(fakes, policy, tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    port = _free_port()
    env = {
        **os.environ,
        "FAKE_OPENAI_KEY": "k",
        "ROUTER_SQLITE_PATH": str(tmp_path / "log.db"),
        "ROUTER_SCORER": "heuristic",
    }
    cmd = [sys.executable, "-m", "router_service.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--policy", str(path), "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.05)
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        out = c.chat.completions.create(
            model="primary", messages=[{"role": "user", "content": "x"}]
        )
        assert out.choices[0].message.content == "hello from primary"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def test_serve_rejects_a_bad_policy(tmp_path: Path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("tiers:\n  local:\n    backends:\n      - {name: x, type: nope}\n")
    assert main(["serve", "--policy", str(path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "tiers.local.backends[0].type" in err


def test_training_command_without_the_training_extra_says_what_to_install() -> None:
    """The serving install has ``training`` but not its dependencies: a clear message and
    exit code 2, not a traceback. ``rich`` is made unimportable in a child interpreter."""
    code = (
        "import sys; sys.modules['rich'] = None\n"
        "from router_service.cli import main\n"
        "sys.exit(main(['train', '--config', 'tiny']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "needs the training extra (missing module 'rich')" in proc.stderr
    assert "pip install 'learned-router[train]'" in proc.stderr
    assert "Traceback" not in proc.stderr
