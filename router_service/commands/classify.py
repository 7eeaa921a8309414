"""``learned-router classify``: prompts -> one JSON routing decision per prompt on stdout.

    learned-router classify "prompt text"              # one decision
    learned-router classify --input prompts.jsonl      # one output line per input line
    learned-router classify --input - < prompts.jsonl  # same, from stdin

Batch input is JSON Lines: ``{"prompt": "..."}`` or ``{"messages": [...]}`` per line (other
keys are ignored). Semantics, chosen so that output lines can always be matched to input:

* every non-blank input line gives exactly one output line, in input order: the decision
  (``Decision.to_dict()`` plus ``"line"``) or ``{"line": n, "error": "..."}``; blank lines
  are skipped; ``n`` counts physical lines from 1;
* errors: invalid JSON, not an object, no/both of ``prompt``/``messages``, a non-string
  prompt, malformed messages, or no text at all (empty/whitespace prompt, image-only
  content). Unknown roles and content given as a list of parts are accepted (text parts
  are scored, others skipped);
* invalid UTF-8 is replaced (U+FFFD) and the line is still classified, with a warning on
  stderr;
* exit status: 0 if at least one prompt was classified, 1 if there were lines but all of
  them failed or there were none, 2 for usage errors (missing file, bad policy file,
  empty single prompt), 141 when the reader closes the pipe early (``| head``).

A missing or corrupt learned model is reported on stderr (naming the path) and the
heuristic scorer decides; each decision's ``scorer`` field says which one did."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from router_service.decision import Scorer
from router_service.features import messages_from_payload
from router_service.routing import RoutingPolicy, decide
from router_service.scoring import DEFAULT_MODEL_DIR, SCORER_KINDS, load_scorer

PROG = "learned-router classify"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="print the routing decision for a prompt or a JSONL file of prompts",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument("prompt", nargs="?", help="the prompt text (or use --input)")
    parser.add_argument(
        "--input",
        "-i",
        metavar="FILE",
        help='JSONL file with {"prompt": ...} or {"messages": [...]} per line; "-" for stdin',
    )
    parser.add_argument("--scorer", choices=SCORER_KINDS, default="learned")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help=f"exported model directory (default: $ROUTER_MODEL_DIR or {DEFAULT_MODEL_DIR})",
    )
    parser.add_argument(
        "--policy", type=Path, default=None, help="policy YAML; its routing: section is used"
    )
    parser.set_defaults(func=run)


def _error(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def load_policy(path: Path | None) -> RoutingPolicy:
    """Policy YAML file -> ``RoutingPolicy`` from its ``routing:`` section (defaults if absent).

    Raises ``ValueError`` with a readable message for unreadable or invalid files."""
    if path is None:
        return RoutingPolicy()
    import yaml
    from pydantic import ValidationError

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read policy file {path}: {exc}") from exc
    if data is None:
        return RoutingPolicy()
    if not isinstance(data, dict):
        raise ValueError(f"policy file {path}: expected a mapping at the top level")
    section = data.get("routing")
    if section is None:
        return RoutingPolicy()
    try:
        return RoutingPolicy.model_validate(section)
    except ValidationError as exc:
        raise ValueError(f"policy file {path}: invalid routing section: {exc}") from exc


def payload_from_record(record: Any) -> str | list[dict[str, Any]]:
    """One parsed JSONL record -> a prompt string or messages; ``ValueError`` says why not."""
    if not isinstance(record, dict):
        raise ValueError('expected a JSON object with "prompt" or "messages"')
    has_prompt, has_messages = "prompt" in record, "messages" in record
    if has_prompt and has_messages:
        raise ValueError('give either "prompt" or "messages", not both')
    if has_prompt:
        prompt = record["prompt"]
        if not isinstance(prompt, str):
            raise ValueError(f'"prompt" must be a string, got {type(prompt).__name__}')
        if not prompt.strip():
            raise ValueError("prompt is empty")
        return prompt
    if not has_messages:
        raise ValueError('missing "prompt" or "messages"')
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise ValueError('"messages" must be a non-empty list of message objects')
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"messages[{i}] must be an object with role and content")
    if not any(m["content"].strip() for m in messages_from_payload(messages)):
        raise ValueError("messages contain no text content")
    return messages


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, str, bool]]:
    """Binary stream -> (line number, decoded text, had invalid UTF-8) per physical line."""
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield number, raw.decode("utf-8"), False
        except UnicodeDecodeError:
            yield number, raw.decode("utf-8", errors="replace"), True


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def classify_stream(stream: IO[bytes], scorer: Scorer, policy: RoutingPolicy) -> tuple[int, int]:
    """JSONL bytes -> decisions/errors on stdout. Returns (classified, failed) counts."""
    ok = failed = 0
    for number, text, replaced in _lines(stream):
        if not text.strip():
            continue
        if replaced:
            _error(f"line {number}: invalid UTF-8 replaced with U+FFFD")
        try:
            payload = payload_from_record(json.loads(text))
        except json.JSONDecodeError as exc:
            _emit({"line": number, "error": f"invalid JSON: {exc.msg} (column {exc.colno})"})
            failed += 1
            continue
        except (ValueError, RecursionError) as exc:
            _emit({"line": number, "error": str(exc) or type(exc).__name__})
            failed += 1
            continue
        try:
            decision = decide(scorer, policy, payload)
        except Exception as exc:  # a scorer bug must not lose the other lines
            _emit({"line": number, "error": f"scoring failed: {type(exc).__name__}: {exc}"})
            failed += 1
            continue
        _emit({**decision.to_dict(), "line": number})
        ok += 1
    return ok, failed


def _open_input(name: str) -> IO[bytes]:
    if name == "-":
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is not None:
            return buffer
        import io

        return io.BytesIO(sys.stdin.read().encode("utf-8", "surrogatepass"))
    return open(name, "rb")


def run(args: argparse.Namespace) -> int:
    if (args.prompt is None) == (args.input is None):
        _error('give a prompt argument or --input FILE (use "-" for stdin), not both')
        return 2
    try:
        policy = load_policy(args.policy)
    except ValueError as exc:
        _error(str(exc))
        return 2
    model_dir = args.model_dir or Path(os.environ.get("ROUTER_MODEL_DIR") or DEFAULT_MODEL_DIR)
    scorer, load_error = load_scorer(args.scorer, model_dir, log=False)
    if load_error:
        _error(load_error)

    if args.prompt is not None:
        if not args.prompt.strip():
            _error("prompt is empty")
            return 2
        try:
            decision = decide(scorer, policy, args.prompt)
        except Exception as exc:  # a scorer bug: report it, do not print a traceback
            _error(f"scoring failed: {type(exc).__name__}: {exc}")
            return 1
        _emit(decision.to_dict())
        return 0

    try:
        stream = _open_input(args.input)
    except OSError as exc:
        _error(f"cannot read input {args.input}: {exc.strerror or exc}")
        return 2
    try:
        ok, failed = classify_stream(stream, scorer, policy)
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is silent
        return 141
    finally:
        if stream is not getattr(sys.stdin, "buffer", None):
            stream.close()
    if failed:
        _error(f"{failed} of {ok + failed} line(s) failed; see the error objects on stdout")
    if ok == 0:
        if failed == 0:
            _error("no prompts in the input")
        return 1
    return 0
