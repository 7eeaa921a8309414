"""``learned-router classify``: single prompts, JSONL batches, bad input, model fallback."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from router_service.cli import main
from router_service.intents import INTENTS

DECISION_KEYS = {
    "intent",
    "intent_confidence",
    "intent_scores",
    "strong_win_rate",
    "tier",
    "reason",
    "scorer",
    "decision_us",
    "model_version",
    "complexity",
}


def run_cli(capsys, *argv: str) -> tuple[int, list[dict], str]:
    code = main(["classify", *argv])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def assert_decision(obj: dict) -> None:
    assert set(obj) >= DECISION_KEYS
    assert list(obj["intent_scores"]) == list(INTENTS)
    assert math.isclose(sum(obj["intent_scores"].values()), 1.0, rel_tol=1e-9)
    assert obj["intent"] in INTENTS
    assert obj["tier"] in {"local", "primary", "strong"}
    assert 0.0 <= obj["strong_win_rate"] <= 1.0
    assert obj["decision_us"] >= 0


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_single_prompt(capsys) -> None:
    code, out, err = run_cli(capsys, "--scorer", "heuristic", "Write a haiku about rain")
    assert code == 0 and err == ""
    assert len(out) == 1
    assert_decision(out[0])
    assert out[0]["intent"] == "creative_writing"
    assert out[0]["scorer"] == "heuristic" and out[0]["model_version"] == "heuristic-1"
    assert "line" not in out[0]


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_empty_single_prompt_is_a_usage_error(capsys, prompt: str) -> None:
    code, out, err = run_cli(capsys, "--scorer", "heuristic", prompt)
    assert code == 2 and out == []
    assert "prompt is empty" in err


def test_prompt_and_input_together_or_neither(capsys, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "--scorer", "heuristic")
    assert code == 2 and "--input" in err
    file = write_lines(tmp_path / "p.jsonl", [b'{"prompt": "hi"}'])
    code, _, err = run_cli(capsys, "--scorer", "heuristic", "--input", str(file), "hello")
    assert code == 2


def test_missing_model_falls_back_to_heuristic(capsys, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    code, out, err = run_cli(capsys, "--model-dir", str(missing), "What is DNA?")
    assert code == 0
    assert str(missing) in err and "heuristic" in err
    assert out[0]["scorer"] == "heuristic"


def test_corrupt_model_falls_back_to_heuristic(capsys, tmp_path: Path) -> None:
    model = tmp_path / "broken"
    model.mkdir()
    for name in ("model.onnx", "manifest.json", "router.onnx", "metadata.json", "tokenizer.json"):
        (model / name).write_bytes(b"\x00not a model{")
    code, out, err = run_cli(capsys, "--scorer", "learned", "--model-dir", str(model), "hi there")
    assert code == 0
    assert str(model) in err
    assert_decision(out[0])
    assert out[0]["scorer"] == "heuristic"


def test_batch_of_bad_and_good_lines_keeps_order(capsys, tmp_path: Path) -> None:
    big = "Explain the causes of the French Revolution. " + "x" * 1_000_000
    lines = [
        b'{"prompt": "hello!"}',  # 1
        b"",  # 2: blank, skipped
        b"not json at all",  # 3
        b'{"prompt": ""}',  # 4
        b'{"prompt": "   "}',  # 5
        b'{"text": "no prompt key"}',  # 6
        b'["a", "list"]',  # 7
        b'{"prompt": 42}',  # 8
        b'{"prompt": "caf\xc3\xa9 \xff\xfe broken utf-8 translate to German"}',  # 9
        b'{"messages": [{"role": "wizard", "content": "Summarize our chat"}]}',  # 10
        b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "Solve for x: '
        b'2x+1=5"}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}',  # 11
        b'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}',
        b'{"messages": []}',  # 13
        b'{"messages": ["just a string"]}',  # 14
        b'{"prompt": "a", "messages": [{"role": "user", "content": "b"}]}',  # 15
        json.dumps({"prompt": big}).encode(),  # 16: ~1 MB prompt
        b'{"prompt": "thanks", "intent": "chitchat", "id": 7}',  # 17: extra keys are fine
        b"[" * 100_000,  # 18: deeply nested JSON
    ]
    file = write_lines(tmp_path / "in.jsonl", lines)
    code, out, err = run_cli(capsys, "--scorer", "heuristic", "--input", str(file))
    assert code == 0
    assert [o["line"] for o in out] == [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]
    by_line = {o["line"]: o for o in out}
    decided = {n for n, o in by_line.items() if "error" not in o}
    assert decided == {1, 9, 10, 11, 16, 17}
    for n in decided:
        assert_decision(by_line[n])
    for n in set(by_line) - decided:
        assert set(by_line[n]) == {"line", "error"} and by_line[n]["error"]
    assert "invalid JSON" in by_line[3]["error"]
    assert by_line[4]["error"] == by_line[5]["error"] == "prompt is empty"
    assert "missing" in by_line[6]["error"]
    assert "JSON object" in by_line[7]["error"]
    assert "must be a string" in by_line[8]["error"]
    assert "no text content" in by_line[12]["error"]
    assert "non-empty list" in by_line[13]["error"]
    assert "messages[0]" in by_line[14]["error"]
    assert "not both" in by_line[15]["error"]
    assert by_line[9]["intent"] == "translation"
    assert by_line[10]["intent"] == "summarization"  # unknown role still scored
    assert by_line[11]["intent"] == "math"  # text part scored, image part skipped
    assert by_line[16]["tier"] != "local"  # over the local token cap
    assert "line 9: invalid UTF-8" in err
    assert "11 of 17 line(s) failed" in err


def test_all_lines_failing_exits_1(capsys, tmp_path: Path) -> None:
    file = write_lines(tmp_path / "bad.jsonl", [b"{", b'{"prompt": null}'])
    code, out, _ = run_cli(capsys, "--scorer", "heuristic", "--input", str(file))
    assert code == 1
    assert [o["line"] for o in out] == [1, 2] and all("error" in o for o in out)


def test_empty_input_exits_1(capsys, tmp_path: Path) -> None:
    file = tmp_path / "empty.jsonl"
    file.write_bytes(b"\n  \n")
    code, out, err = run_cli(capsys, "--scorer", "heuristic", "--input", str(file))
    assert code == 1 and out == [] and "no prompts" in err


def test_missing_input_file_exits_2(capsys, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "--input", str(tmp_path / "nope.jsonl"))
    assert code == 2 and out == [] and "nope.jsonl" in err


def test_utf8_bom_and_crlf(capsys, tmp_path: Path) -> None:
    file = tmp_path / "bom.jsonl"
    file.write_bytes(b'\xef\xbb\xbf{"prompt": "hi"}\r\n{"prompt": "bye"}\r\n')
    code, out, _ = run_cli(capsys, "--scorer", "heuristic", "--input", str(file))
    assert code == 0 and [o["intent"] for o in out] == ["chitchat", "chitchat"]


def test_stdin_input(capsys, monkeypatch, tmp_path: Path) -> None:
    data = b'{"prompt": "Write a SQL query for the top customers"}\n{"prompt": "hi"}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    code, out, _ = run_cli(capsys, "--scorer", "heuristic", "--input", "-")
    assert code == 0 and [o["intent"] for o in out] == ["coding", "chitchat"]


def test_policy_file_changes_the_tier(capsys, tmp_path: Path) -> None:
    prompt = "Implement a thread-safe LRU cache in Rust and explain the trade-offs"
    _, default, _ = run_cli(capsys, "--scorer", "heuristic", prompt)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "tiers: {}\nrouting:\n  heuristic:\n    threshold: 5\n    strong_threshold: 6\n"
    )
    code, custom, _ = run_cli(capsys, "--scorer", "heuristic", "--policy", str(policy), prompt)
    assert code == 0
    assert default[0]["tier"] != "strong" and custom[0]["tier"] == "strong"


def test_policy_without_routing_section_uses_defaults(capsys, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("tiers: {}\n")
    code, out, _ = run_cli(capsys, "--scorer", "heuristic", "--policy", str(policy), "hi")
    assert code == 0 and out[0]["tier"] == "local"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("routing:\n  heuristic:\n    threshold: 500\n", "invalid routing section"),
        (
            "routing:\n  intents:\n    astrology: {local_below: 0.1, strong_above: 0.2}\n",
            "astrology",
        ),
        ("routing: [\n", "cannot read policy file"),
        ("- just\n- a list\n", "mapping"),
    ],
)
def test_bad_policy_file_exits_2(capsys, tmp_path: Path, content: str, message: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(content)
    code, out, err = run_cli(capsys, "--scorer", "heuristic", "--policy", str(policy), "hi")
    assert code == 2 and out == []
    assert message in err and str(policy) in err


def test_real_subprocess_with_stdin_and_model_dir_env(tmp_path: Path) -> None:
    missing = tmp_path / "env-model"
    env = {**os.environ, "ROUTER_MODEL_DIR": str(missing)}
    data = b'{"prompt": "Translate good morning into Spanish"}\nnope\n{"prompt": "\xff\xfe"}\n'
    script = Path(sys.executable).with_name("learned-router")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "router_service.cli"]
    proc = subprocess.run(
        [*command, "classify", "--input", "-"],
        input=data,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [o["line"] for o in out] == [1, 2, 3]
    assert out[0]["intent"] == "translation" and out[0]["scorer"] == "heuristic"
    assert "error" in out[1]
    assert_decision(out[2])  # replacement characters are still a (meaningless) prompt
    stderr = proc.stderr.decode()
    assert str(missing) in stderr and "Traceback" not in stderr


def test_reader_closing_the_pipe_early_is_not_an_error(tmp_path: Path) -> None:
    file = write_lines(tmp_path / "many.jsonl", [b'{"prompt": "hello"}'] * 20_000)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "router_service.cli",
            "classify",
            "--scorer",
            "heuristic",
            "--input",
            str(file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert json.loads(first)["intent"] == "chitchat"
    assert "Traceback" not in stderr
